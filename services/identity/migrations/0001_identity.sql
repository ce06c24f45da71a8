-- Identity's schema, the same on SQLite and PostgreSQL. Only the identity service reads or writes these tables.
-- Ids are hyphenated UUIDv7 text and times are Unix seconds, the same on both engines.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,      -- normalised: trimmed, lowercased
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,             -- PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    created_at    BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,             -- SHA-256 of the opaque token: the token itself is never stored
    family_id  TEXT NOT NULL,                -- every rotation of one login shares it
    user_id    TEXT NOT NULL REFERENCES users (id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,                       -- set when rotated; using it again revokes the family
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    pkcs8      TEXT NOT NULL,                -- base64 PKCS#8 of the Ed25519 private key
    public_x   TEXT NOT NULL,                -- base64url public key, as published in the JWKS
    created_at BIGINT NOT NULL,
    retired_at BIGINT                        -- no longer signs; still published until its tokens expire
);
