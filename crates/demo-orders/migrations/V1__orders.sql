-- The orders and their items as on SQLite (src/storage/sqlite.rs): ids never reused, the same
-- CHECKs, items going with their order, creation time as RFC 3339 text.
CREATE TABLE orders (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT NOT NULL CHECK (user_id > 0),
    status       TEXT NOT NULL,
    total_cents  BIGINT NOT NULL CHECK (total_cents >= 0),
    created_at   TEXT NOT NULL DEFAULT rfc3339_now()
);
CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE TABLE order_items (
    order_id          BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position          BIGINT NOT NULL,
    name              TEXT NOT NULL CHECK (length(name) > 0),
    quantity          BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_cents  BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, position)
);

-- Whether the demo orders were seeded; kept so deleting one does not bring it back on restart.
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
