-- Outbox rows Kafka refuses for good (larger than the broker or topic allows, a record Kafka
-- finds invalid) move here with the reason, so that the rows after them go on being published.
-- `ordexa outbox dead list|show|retry` inspects them and moves them back into the outbox (with a
-- new id, after everything published since). `id` is the row's id in the outbox when it moved.
CREATE TABLE outbox_dead_letters (
    id                bigint      PRIMARY KEY,
    event_id          uuid        NOT NULL,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL,
    event_type        text        NOT NULL,
    schema_version    integer     NOT NULL,
    payload           text        NOT NULL,
    headers           jsonb       NOT NULL,
    created_at        timestamptz NOT NULL,
    reason            text        NOT NULL,
    dead_lettered_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
