-- Wake the relay when outbox rows commit. One notification per inserting statement; PostgreSQL
-- delivers it at commit and folds duplicates within a transaction, so a burst costs little.
CREATE FUNCTION ordexa_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ordexa_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION ordexa_outbox_notify();
