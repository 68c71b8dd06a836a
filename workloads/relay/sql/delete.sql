-- Removes a batch Kafka acknowledged, on the deleter's own session.
DELETE FROM outbox WHERE id = ANY($1)
