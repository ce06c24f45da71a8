-- History's own schema, the same on SQLite and PostgreSQL: the purchase history read model.
-- Only the history service reads or writes it, and only its event consumers write: every row
-- is built from orders' and payments' events (see src/domain/purchase.rs for how they merge).
-- Order ids are UUID text; times are Unix milliseconds on both engines.

CREATE TABLE purchases (
    order_id      TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,            -- the buyer (orders' word wins over payments')
    stage         BIGINT NOT NULL CHECK (stage BETWEEN 0 AND 3),
                                            -- 0 only a payment seen (not shown), 1 pending,
                                            -- 2 confirmed, 3 cancelled: it only grows
    cancel_reason TEXT,
    lines         TEXT,                     -- JSON [{product_id, name, quantity, unit_price, line_total}]
    total_amount  BIGINT,
    currency      TEXT,
    placed_at     BIGINT,
    confirmed_at  BIGINT,
    payment_brand TEXT,                     -- a card is its brand and last four digits, no more
    payment_last4 TEXT,
    captured_at   BIGINT,
    refunded_at   BIGINT,
    CHECK (stage = 0
        OR (lines IS NOT NULL AND total_amount IS NOT NULL AND currency IS NOT NULL AND placed_at IS NOT NULL))
);

-- A user's purchases, newest first, paged by (placed_at, order_id).
CREATE INDEX purchases_by_user ON purchases (user_id, placed_at, order_id);
