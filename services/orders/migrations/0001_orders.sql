-- Orders' own schema, the same on SQLite and PostgreSQL. Only the orders service reads or writes
-- these tables. Ids are hyphenated UUID text and times are Unix milliseconds on both engines;
-- money is integer minor units.

-- An order, priced by the catalog when it was placed. `pending` until its saga ends.
CREATE TABLE orders (
    id                TEXT PRIMARY KEY,         -- UUIDv7: sorting by id sorts by placement
    user_id           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    cancel_reason     TEXT
        CHECK (cancel_reason IN ('out_of_stock', 'payment_declined', 'payment_failed', 'timeout')),
    total_amount      BIGINT NOT NULL CHECK (total_amount >= 0),
    currency          TEXT NOT NULL CHECK (length(currency) = 3),
    payment_method_id TEXT NOT NULL,            -- payments' id; the card itself is never seen here
    shipping_address  TEXT NOT NULL,            -- JSON {name, line1, line2, city, postal_code, country}
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CHECK ((status = 'cancelled') = (cancel_reason IS NOT NULL))
);
CREATE INDEX orders_by_user ON orders (user_id, id);

-- Its lines, in the cart's order, each product once. Prices are in the order's currency.
CREATE TABLE order_lines (
    order_id    TEXT NOT NULL REFERENCES orders (id),
    line_no     BIGINT NOT NULL,
    product_id  TEXT NOT NULL,
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    unit_amount BIGINT NOT NULL CHECK (unit_amount >= 0),
    line_amount BIGINT NOT NULL CHECK (line_amount = unit_amount * quantity),
    PRIMARY KEY (order_id, line_no),
    UNIQUE (order_id, product_id)
);

-- The checkout saga of each order: the step it runs next (or the end it reached), written before
-- and after every remote call. An instance works on a saga only while it holds its lease
-- (`lease_owner` until `lease_until`), and every write names the owner, so an instance that lost
-- its lease changes nothing.
CREATE TABLE sagas (
    order_id        TEXT PRIMARY KEY REFERENCES orders (id),
    step            TEXT NOT NULL
        CHECK (step IN ('reserve', 'charge', 'release', 'refund', 'confirmed', 'cancelled')),
    cancel_reason   TEXT
        CHECK (cancel_reason IN ('out_of_stock', 'payment_declined', 'payment_failed', 'timeout')),
    refund          BIGINT NOT NULL DEFAULT 0 CHECK (refund IN (0, 1)),
    attempts        BIGINT NOT NULL DEFAULT 0,  -- failed attempts at the current step
    deadline_at     BIGINT NOT NULL,            -- reserving and charging give up after this
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    CHECK ((step IN ('release', 'refund', 'cancelled')) = (cancel_reason IS NOT NULL))
);
CREATE INDEX sagas_runnable ON sagas (next_attempt_at)
    WHERE step NOT IN ('confirmed', 'cancelled');

-- Idempotency keys, per user. The row is inserted `in_progress` before the request runs (the
-- primary key lets one attempt in), and becomes `done` with the answer to replay — in the same
-- transaction as the order when one is placed. An attempt that dies leaves its row locked until
-- `locked_until`, then another may take it over.
CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,                 -- SHA-256 of the canonical request body
    state        TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
    owner        TEXT NOT NULL,                 -- the attempt holding it
    locked_until BIGINT NOT NULL,
    status       BIGINT,
    body         TEXT,
    location     TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    CHECK (state = 'in_progress' OR (status IS NOT NULL AND body IS NOT NULL))
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
