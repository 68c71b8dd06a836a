-- Write model: the product catalog, orders with their items, the transactional outbox and
-- the HTTP idempotency records. Every command touches these in one transaction.

CREATE TABLE products (
    sku         text PRIMARY KEY,
    name        text        NOT NULL,
    unit_price  bigint      NOT NULL CHECK (unit_price >= 0),
    currency    char(3)     NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    user_id          text        NOT NULL,
    status           text        NOT NULL
        CHECK (status IN ('PENDING', 'CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
    currency         char(3)     NOT NULL,
    total            bigint      NOT NULL CHECK (total >= 0),
    shipping_address jsonb       NOT NULL,
    version          bigint      NOT NULL CHECK (version >= 1),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX orders_by_user_newest ON orders (user_id, created_at DESC, id DESC);

CREATE TABLE order_items (
    order_id   uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no    integer NOT NULL,
    sku        text    NOT NULL,
    name       text    NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price bigint  NOT NULL CHECK (unit_price >= 0),
    line_total bigint  NOT NULL CHECK (line_total >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- One row per event, written in the command's transaction. `payload` is `json`, not `jsonb`,
-- so the relay publishes exactly the bytes the command serialised.
CREATE TABLE outbox (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          uuid        NOT NULL UNIQUE,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL,
    event_type        text        NOT NULL,
    schema_version    integer     NOT NULL,
    payload           json        NOT NULL,
    headers           jsonb       NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (aggregate_id, aggregate_version)
);

-- The first response to a create carrying an Idempotency-Key, per user. The row is inserted
-- before the command runs, so a concurrent retry with the same key waits on it.
CREATE TABLE idempotency_keys (
    user_id         text        NOT NULL,
    key             text        NOT NULL,
    request_hash    bytea       NOT NULL,
    response_status integer,
    response_body   text,
    order_id        uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
