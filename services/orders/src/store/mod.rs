//! Orders' storage, on SQLite or PostgreSQL: one schema and one set of SQL for both (text ids,
//! Unix milliseconds), run on whichever pool is configured. The engines differ only in how a
//! writing transaction begins and how the outbox is appended to (`souk_chassis::in_write_tx!`).
//!
//! - `orders.rs`: placing an order (order, lines, saga, `order_placed` event and the idempotency
//!   key's answer in one transaction), reading and listing them;
//! - `sagas.rs`: claiming sagas under a lease, and every step change, each conditional on the
//!   lease (the confirm and cancel steps with their events, in one transaction);
//! - `keys.rs`: idempotency keys.

mod keys;
mod orders;
mod sagas;

use souk_chassis::Database;
use souk_chassis::db::inline::SqliteWriter;
use souk_chassis::db::{DatabaseConfig, DbError, Migrations};
use souk_chassis::events::{
    OUTBOX_META_MIGRATION_POSTGRES, OUTBOX_META_MIGRATION_SQLITE, OUTBOX_MIGRATION_POSTGRES,
    OUTBOX_MIGRATION_SQLITE,
};

pub use keys::{KeyClaim, KeyDone, StoredAnswer};
pub use orders::{NewOrder, Placed};
pub use sagas::SagaRow;

/// Orders' migrations for both engines, embedded in the binary: its own schema, then the
/// chassis' outbox table, then the saga's commit step (a rebuilt table on SQLite, whose CHECK
/// constraints cannot change in place), then the trace each saga continues.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        (
            1,
            "orders",
            include_str!("../../migrations/0001_orders.sql"),
        ),
        OUTBOX_MIGRATION_SQLITE,
        (
            2,
            "saga commit step",
            include_str!("../../migrations/0002_saga_commit.sqlite.sql"),
        ),
        OUTBOX_META_MIGRATION_SQLITE,
        (
            3,
            "saga trace context",
            include_str!("../../migrations/0003_saga_trace.sql"),
        ),
    ],
    postgres: &[
        (
            1,
            "orders",
            include_str!("../../migrations/0001_orders.sql"),
        ),
        OUTBOX_MIGRATION_POSTGRES,
        (
            2,
            "saga commit step",
            include_str!("../../migrations/0002_saga_commit.postgres.sql"),
        ),
        OUTBOX_META_MIGRATION_POSTGRES,
        (
            3,
            "saga trace context",
            include_str!("../../migrations/0003_saga_trace.sql"),
        ),
    ],
};

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The database failed or is unreachable, on the SQLite writer.
    #[error("database error")]
    Inline(#[from] rusqlite::Error),
    /// A stored value is not one this service writes.
    #[error("stored {column} is invalid: {reason}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// Whether the database is unreachable or contended (SQLite busy past its timeout, a
    /// PostgreSQL deadlock): worth a 503 and a retry, not a 500.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(err) => souk_chassis::db::is_transient(err),
            Self::Inline(err) => souk_chassis::db::inline::is_unavailable(err),
            Self::Corrupt { .. } => false,
        }
    }

    fn corrupt(column: &'static str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            column,
            reason: reason.into(),
        }
    }
}

/// Runs `$body` with `$tx`, a writing transaction (READ COMMITTED suffices on PostgreSQL: every
/// change is a single conditional statement), and `$append`, the engine's outbox append.
macro_rules! in_write_tx {
    ($db:expr, |$tx:ident, $append:ident| $body:expr) => {
        souk_chassis::in_write_tx!($db, |$tx, $append = (souk_chassis::events::append_sqlite, souk_chassis::events::append_postgres)| $body)
    };
}
pub(crate) use in_write_tx;

/// Orders' store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// On SQLite, the saga's writes go through the chassis' writer: a step's change is one
    /// statement of microseconds, and through the pool it cost a hop to sqlx's worker thread and
    /// back for each of `BEGIN`, the statement and `COMMIT` — with the process's turn on the file
    /// held across all of them (`bench/results/cost.md`, "Writers take turns").
    writer: Option<SqliteWriter>,
}

impl Store {
    /// Connects to the configured database and brings its schema up to date.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, DbError> {
        let db = Database::connect(config).await?;
        db.migrate(&MIGRATIONS).await?;
        let writer = match &db {
            Database::Sqlite(pool) => Some(SqliteWriter::open(pool).map_err(DbError::OpenInline)?),
            Database::Postgres(_) => None,
        };
        Ok(Self { db, writer })
    }

    /// The underlying pool (readiness checks, the outbox).
    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// Reads a UUID stored as text.
fn uuid(column: &'static str, text: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text).map_err(|e| StoreError::corrupt(column, e.to_string()))
}
