-- The outbox keeps only its primary key.
--
-- The outbox is a queue: the relay deletes each row once Kafka has it. A UNIQUE constraint on it
-- could only ever compare a new row with the rows not yet published, so it never guaranteed what
-- its name says, and it cost every write two more index insertions (one of them at a random place,
-- the order's uuid): under a steady write load they took about a quarter of PostgreSQL's CPU per
-- outbox row (docs/relay.md, "Measured").
--
-- What they stood for is guaranteed where it holds for all time:
-- * one event per order version: every command locks its order row (`SELECT … FOR UPDATE`) and
--   writes the next version and its outbox row in one transaction (the store, `orders.rs`);
-- * event ids: a fresh UUID (version 7) per event, made by `ordexa_domain`; and the projector
--   does not rely on them being unique: applying an order version again changes nothing.
ALTER TABLE outbox
    DROP CONSTRAINT IF EXISTS outbox_event_id_key,
    DROP CONSTRAINT IF EXISTS outbox_aggregate_id_aggregate_version_key;
