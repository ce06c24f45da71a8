//! The event tables, as migration entries each service puts in its own migration list.
//!
//! Versions 9_000_001 and 9_000_002 sit far above any service's own numbering, so adding them to
//! an existing list never collides; sqlx applies every listed migration that has not run yet,
//! whatever its place in the order.

/// `(version, description, sql)`, as in [`crate::db::Migrations`].
type MigrationEntry = (i64, &'static str, &'static str);

/// A producer's outbox on SQLite. `AUTOINCREMENT` never reuses a sequence number, and SQLite's
/// single writer assigns them in commit order.
pub const OUTBOX_MIGRATION_SQLITE: MigrationEntry = (
    9_000_001,
    "events outbox",
    "CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        subject TEXT NOT NULL,
        event TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        published_ms BIGINT
    );
    CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_ms IS NULL;",
);

/// A producer's outbox on PostgreSQL (appends take an advisory lock: see `append_postgres`).
pub const OUTBOX_MIGRATION_POSTGRES: MigrationEntry = (
    9_000_001,
    "events outbox",
    "CREATE TABLE outbox (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        subject TEXT NOT NULL,
        event TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        published_ms BIGINT
    );
    CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_ms IS NULL;",
);

/// A consumer's inbox (handled event ids), offsets and dead letters. The same SQL runs on both
/// engines.
const INBOX_SQL: &str = "CREATE TABLE event_inbox (
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        handled_ms BIGINT NOT NULL,
        PRIMARY KEY (consumer, event_id)
    );
    CREATE TABLE event_offsets (
        consumer TEXT PRIMARY KEY,
        position TEXT NOT NULL
    );
    CREATE TABLE event_dead_letters (
        id TEXT PRIMARY KEY,
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        parked_ms BIGINT NOT NULL,
        replayed_ms BIGINT
    );
    CREATE INDEX event_dead_letters_consumer ON event_dead_letters (consumer, parked_ms);";

/// A consumer's tables on SQLite.
pub const INBOX_MIGRATION_SQLITE: MigrationEntry = (9_000_002, "events inbox", INBOX_SQL);

/// A consumer's tables on PostgreSQL.
pub const INBOX_MIGRATION_POSTGRES: MigrationEntry = (9_000_002, "events inbox", INBOX_SQL);
