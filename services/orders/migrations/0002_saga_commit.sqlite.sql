-- The saga's commit step (issue 16): after the capture, orders commits the reservation in
-- inventory before confirming. SQLite cannot change a CHECK constraint in place, so the table is
-- rebuilt with the new step allowed; nothing references it.
CREATE TABLE sagas_new (
    order_id        TEXT PRIMARY KEY REFERENCES orders (id),
    step            TEXT NOT NULL
        CHECK (step IN ('reserve', 'charge', 'commit', 'release', 'refund', 'confirmed', 'cancelled')),
    cancel_reason   TEXT
        CHECK (cancel_reason IN ('out_of_stock', 'payment_declined', 'payment_failed', 'timeout')),
    refund          BIGINT NOT NULL DEFAULT 0 CHECK (refund IN (0, 1)),
    attempts        BIGINT NOT NULL DEFAULT 0,
    deadline_at     BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    CHECK ((step IN ('release', 'refund', 'cancelled')) = (cancel_reason IS NOT NULL))
);
INSERT INTO sagas_new
    SELECT order_id, step, cancel_reason, refund, attempts, deadline_at, next_attempt_at,
           lease_owner, lease_until, last_error, updated_at
    FROM sagas;
DROP TABLE sagas;
ALTER TABLE sagas_new RENAME TO sagas;
CREATE INDEX sagas_runnable ON sagas (next_attempt_at)
    WHERE step NOT IN ('confirmed', 'cancelled');
