-- The leader's claim: up to $1 rows in id order above $2 (the settled bound: every row at or
-- below it that is or will be visible has been claimed in this term), skipping $3 (the rows
-- claimed above $2 and still in the outbox). Runs first in a repeatable-read transaction, then
-- snapshot.sql in the same transaction when it returned rows.
SELECT id, aggregate_id, event_id, event_type, schema_version, payload::text AS payload,
       headers->>'traceparent' AS traceparent
FROM outbox
WHERE id > $2 AND id <> ALL($3)
ORDER BY id
LIMIT $1
