-- Moves rows Kafka refused for good ($1) into outbox_dead_letters with the reason ($2), in one
-- statement, on the deleter's session.
WITH moved AS (DELETE FROM outbox WHERE id = ANY($1) RETURNING *)
INSERT INTO outbox_dead_letters (id, event_id, aggregate_id, aggregate_version, event_type, schema_version,
                                 payload, headers, created_at, reason)
SELECT id, event_id, aggregate_id, aggregate_version, event_type, schema_version, payload::text, headers,
       created_at, $2
FROM moved
