-- Inventory's schema, the same on SQLite and PostgreSQL. Only the inventory service reads or writes
-- these tables. Ids are hyphenated UUID text and times are Unix milliseconds, alike on both engines.

-- One row per product the catalog listed. The CHECKs are the invariant every write keeps.
CREATE TABLE stock (
    product_id TEXT PRIMARY KEY,            -- the catalog's product id
    sku        TEXT NOT NULL UNIQUE,        -- as the catalog last said; administrators set stock by it
    available  BIGINT NOT NULL CHECK (available >= 0),  -- units one can buy now
    reserved   BIGINT NOT NULL CHECK (reserved >= 0),   -- held for orders not yet confirmed
    sold       BIGINT NOT NULL CHECK (sold >= 0),
    received   BIGINT NOT NULL CHECK (received >= 0),   -- ever put on sale
    updated_at BIGINT NOT NULL,
    CHECK (received = available + reserved + sold)
);

-- One row per order inventory heard of, created with its lines in one transaction. A `released`
-- row without lines is a tombstone: the order was cancelled before (or instead of) reserving.
CREATE TABLE reservations (
    order_id   TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('held', 'released', 'committed', 'expired')),
    expires_at BIGINT,                      -- when a hold lapses; NULL for tombstones
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- What the expiry loop scans: only holds, by when they lapse.
CREATE INDEX reservations_held_by_expiry ON reservations (expires_at) WHERE state = 'held';

CREATE TABLE reservation_lines (
    order_id   TEXT NOT NULL REFERENCES reservations (order_id),
    product_id TEXT NOT NULL REFERENCES stock (product_id),
    quantity   BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    PRIMARY KEY (order_id, product_id)
);
