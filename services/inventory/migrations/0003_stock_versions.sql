-- Administrators' changes of stock no longer race reservations (issue 16): every change of a
-- stock row moves its version (the ETag of `GET /v1/admin/stock/{sku}`, which `PUT` must name in
-- `If-Match`), and goods received or written off are recorded as adjustments.
ALTER TABLE stock ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- One row per adjustment an administrator made: received (+) or written off (-).
CREATE TABLE stock_adjustments (
    id              TEXT PRIMARY KEY,       -- UUIDv7
    product_id      TEXT NOT NULL REFERENCES stock (product_id),
    sku             TEXT NOT NULL,          -- as it was when adjusted
    delta           BIGINT NOT NULL CHECK (delta <> 0),
    reason          TEXT NOT NULL,
    actor           TEXT NOT NULL,          -- the administrator's account id
    idempotency_key TEXT,                   -- the request's Idempotency-Key, if it sent one
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX stock_adjustments_by_key ON stock_adjustments (product_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
