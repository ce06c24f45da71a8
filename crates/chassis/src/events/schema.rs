//! The event tables, as migration entries each service puts in its own migration list.
//!
//! Versions 9_000_001 to 9_000_004 sit far above any service's own numbering, so adding them to
//! an existing list never collides; sqlx applies every listed migration that has not run yet,
//! whatever its place in the order. A producer lists the outbox and its meta
//! (`OUTBOX_MIGRATION_*`, `OUTBOX_META_MIGRATION_*`); a consumer the inbox and its retention
//! (`INBOX_MIGRATION_*`, `INBOX_RETENTION_MIGRATION_*`).

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

/// The outbox's epoch and retention watermark (issue 16), on SQLite: one row, made with a
/// random epoch when the outbox is, so a producer whose store is recreated serves another epoch
/// and its consumers notice. `purged_through`: the last sequence number deleted by retention.
pub const OUTBOX_META_MIGRATION_SQLITE: MigrationEntry = (
    9_000_003,
    "events outbox epoch and retention",
    "CREATE TABLE outbox_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch TEXT NOT NULL,
        purged_through BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO outbox_meta (id, epoch) VALUES (1, lower(hex(randomblob(16))));
    CREATE INDEX outbox_by_age ON outbox (created_ms);",
);

/// [`OUTBOX_META_MIGRATION_SQLITE`] on PostgreSQL.
pub const OUTBOX_META_MIGRATION_POSTGRES: MigrationEntry = (
    9_000_003,
    "events outbox epoch and retention",
    "CREATE TABLE outbox_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch TEXT NOT NULL,
        purged_through BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO outbox_meta (id, epoch) VALUES (1, md5(random()::text || clock_timestamp()::text));
    CREATE INDEX outbox_by_age ON outbox (created_ms);",
);

/// A consumer's retention (issue 16): the producer's epoch beside each offset, and indexes for
/// purging the inbox and dead letters by age. The same SQL runs on both engines.
const INBOX_RETENTION_SQL: &str = "ALTER TABLE event_offsets ADD COLUMN epoch TEXT;
    CREATE INDEX event_inbox_by_age ON event_inbox (handled_ms);
    CREATE INDEX event_dead_letters_by_age ON event_dead_letters (parked_ms);";

/// A consumer's retention on SQLite.
pub const INBOX_RETENTION_MIGRATION_SQLITE: MigrationEntry =
    (9_000_004, "events inbox retention", INBOX_RETENTION_SQL);

/// A consumer's retention on PostgreSQL.
pub const INBOX_RETENTION_MIGRATION_POSTGRES: MigrationEntry =
    (9_000_004, "events inbox retention", INBOX_RETENTION_SQL);
