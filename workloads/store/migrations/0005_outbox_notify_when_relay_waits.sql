-- Notify the relay only while it waits for rows.
--
-- A notifying transaction takes a database-wide lock before its commit record and holds it until
-- the commit is flushed (PostgreSQL queues notifications in commit order), so with a NOTIFY in
-- every outbox write, writers commit one at a time, each waiting for its own WAL flush. A relay
-- that is busy publishing needs no notification: it claims again shortly by itself.
--
-- The relay holds advisory lock 8030591553882057829 ("ordxidle"; `ordexa_relay::IDLE_LOCK_KEY`),
-- exclusive and at session level, only while it waits. A writer's insert takes it shared for the
-- rest of its transaction, without waiting:
-- * it cannot: the relay is waiting, so the writer notifies, and its commit (after the relay took
--   the lock, hence after the relay began to LISTEN) wakes it;
-- * it can: the writer does not notify, and while it holds the lock the relay cannot start
--   waiting. The relay takes the lock only once every such writer has ended, then claims once
--   more before it waits, and that claim sees what they committed.
CREATE OR REPLACE FUNCTION ordexa_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(8030591553882057829) THEN
        PERFORM pg_notify('ordexa_outbox', '');
    END IF;
    RETURN NULL;
END
$$;
