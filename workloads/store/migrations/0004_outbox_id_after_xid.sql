-- The relay starts its claims past the outbox ids it has settled (docs/relay.md). That relies on
-- every writer's transaction holding a transaction id before it draws an outbox id, so that a
-- claim whose snapshot falls in between sees the writer in progress. The identity default broke
-- it for a transaction whose first write is its outbox row: a row's id is drawn before the row is
-- stored, and the transaction id only when it is. The id now comes from a function that takes
-- the transaction id first, whatever the writer did before.
LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE;

DO $$
DECLARE
    last_id bigint := COALESCE(pg_sequence_last_value(pg_get_serial_sequence('outbox', 'id')::regclass), 0);
BEGIN
    ALTER TABLE outbox ALTER COLUMN id DROP IDENTITY;
    CREATE SEQUENCE outbox_id_seq AS bigint OWNED BY outbox.id;
    -- Go on from the identity's last id, so that ids never go back (a running relay skips ids at
    -- or below those it has settled).
    PERFORM setval('outbox_id_seq', GREATEST(last_id, COALESCE((SELECT max(id) FROM outbox), 0), 1));
END
$$;

CREATE FUNCTION ordexa_outbox_id() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN nextval('outbox_id_seq');
END
$$;

ALTER TABLE outbox ALTER COLUMN id SET DEFAULT ordexa_outbox_id();
