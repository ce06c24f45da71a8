-- The cart's schema on SQLite. Only the cart service reads or writes these tables.
-- Times are Unix milliseconds. Prices are never stored: every read asks the catalog.

-- One row per cart that has been written to: when it last changed, for the purge of carts
-- abandoned longer than `abandoned_after_days`. Deleting it deletes its lines.
CREATE TABLE carts (
    user_id    TEXT PRIMARY KEY,
    touched_at INTEGER NOT NULL
);

CREATE INDEX carts_by_touched ON carts (touched_at);

CREATE TABLE cart_lines (
    user_id    TEXT NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    product_id TEXT NOT NULL,                   -- the catalog's UUID, hyphenated
    quantity   INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at   INTEGER NOT NULL,                -- first added: lines are shown in this order
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
