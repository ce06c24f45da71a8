-- The SIMULATED card processor's storage, the same on SQLite and PostgreSQL. These tables stand
-- for the external processor's systems (its card vault and its ledger): in production they are the
-- processor's, not ours, and payments holds only tokens. Only `src/processor/` reads or writes them;
-- the vault is the one place in the shop where a full card number rests.

CREATE TABLE processor_vault (
    token       TEXT PRIMARY KEY,               -- `tok_…`, handed to payments
    card_number TEXT NOT NULL,                  -- the whole number (the processor's, never ours)
    created_at  BIGINT NOT NULL
);

-- Charges, keyed by the caller's idempotency key: asking again with a key returns the first
-- charge, never a second one.
CREATE TABLE processor_charges (
    idempotency_key TEXT PRIMARY KEY,
    charge_id       TEXT NOT NULL UNIQUE,       -- `ch_…`
    token           TEXT NOT NULL REFERENCES processor_vault (token),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('approved', 'declined')),
    decline_code    TEXT,
    created_at      BIGINT NOT NULL
);

CREATE TABLE processor_refunds (
    idempotency_key TEXT PRIMARY KEY,
    refund_id       TEXT NOT NULL UNIQUE,       -- `re_…`
    charge_id       TEXT NOT NULL UNIQUE REFERENCES processor_charges (charge_id),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    created_at      BIGINT NOT NULL
);
