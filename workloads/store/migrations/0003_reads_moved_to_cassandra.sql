-- Order lists are served by the Cassandra read model now; PostgreSQL only looks orders up by
-- id. The per-user listing index would cost every insert for nothing.
DROP INDEX IF EXISTS orders_by_user_newest;
