-- Payments' own schema, the same on SQLite and PostgreSQL. Only the payments service reads or
-- writes these tables. Ids are hyphenated UUID text and times are Unix milliseconds on both engines.
-- No card number and no CVC is ever stored here: a card is its brand, last four digits, expiry and
-- the processor's token for it.

CREATE TABLE payment_methods (
    id         TEXT PRIMARY KEY,                -- UUIDv7
    owner      TEXT NOT NULL,                   -- the user's id, from their access token
    brand      TEXT NOT NULL CHECK (brand IN ('visa', 'mastercard', 'amex', 'unknown')),
    last4      TEXT NOT NULL CHECK (length(last4) = 4),
    exp_month  BIGINT NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year   BIGINT NOT NULL,
    token      TEXT NOT NULL UNIQUE,            -- the processor's token: what a charge names
    created_at BIGINT NOT NULL
);
CREATE INDEX payment_methods_by_owner ON payment_methods (owner, id);

-- One row per order payments heard of. The UNIQUE order_id is what makes a charge happen once:
-- the row is inserted `pending` before the processor is asked, so a concurrent duplicate finds it.
-- A `cancelled` row is a tombstone: the order was cancelled before any charge was taken (its
-- request is NULL when no charge was ever asked for), and a late charge for it is refused.
CREATE TABLE payments (
    id                  TEXT PRIMARY KEY,       -- UUIDv7
    order_id            TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL
        CHECK (status IN ('pending', 'captured', 'declined', 'refunded', 'cancelled')),
    user_id             TEXT,                   -- the request (user, method, amount); NULL in a tombstone
    payment_method_id   TEXT REFERENCES payment_methods (id),
    amount              BIGINT CHECK (amount > 0),
    currency            TEXT CHECK (length(currency) = 3),
    decline_code        TEXT CHECK (decline_code IN ('card_declined', 'insufficient_funds')),
    processor_charge_id TEXT,
    attempt_at          BIGINT NOT NULL,        -- when the current processor attempt began (the lease)
    created_at          BIGINT NOT NULL,
    captured_at         BIGINT,
    refunded_at         BIGINT,
    CHECK (status = 'cancelled'
        OR (user_id IS NOT NULL AND payment_method_id IS NOT NULL AND amount IS NOT NULL AND currency IS NOT NULL)),
    CHECK ((status = 'declined') = (decline_code IS NOT NULL)),
    CHECK (status IN ('pending', 'cancelled') OR processor_charge_id IS NOT NULL)
);

-- At most one refund per payment (refunds are always of the whole amount).
CREATE TABLE refunds (
    id                  TEXT PRIMARY KEY,       -- UUIDv7
    payment_id          TEXT NOT NULL UNIQUE REFERENCES payments (id),
    order_id            TEXT NOT NULL UNIQUE,
    amount              BIGINT NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL CHECK (length(currency) = 3),
    processor_refund_id TEXT NOT NULL,
    created_at          BIGINT NOT NULL
);
