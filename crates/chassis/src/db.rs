//! Relational storage plumbing: connect to SQLite or PostgreSQL by URL, run embedded migrations,
//! and report readiness. Each service owns its schema; this module knows none of them.

pub mod inline;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use crate::config::Secret;
use crate::health::Check;

/// Database settings (`[<service>.database]` in config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user@host/db`.
    pub url: Secret,
    /// Upper bound on pooled connections.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://souk.db"),
            max_connections: 8,
            acquire_timeout_ms: 5_000,
        }
    }
}

impl DatabaseConfig {
    /// A config for `url` with the other settings at their defaults.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            ..Self::default()
        }
    }
}

/// A connection pool to the service's own database, of either kind.
#[derive(Debug, Clone)]
pub enum Database {
    /// An embedded SQLite file (WAL mode).
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database.
    #[error("database url must start with sqlite:// or postgres:// (got scheme {scheme:?})")]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// The URL could not be parsed (its text is withheld: it may hold a password).
    #[error("database url is invalid")]
    InvalidUrl(#[source] sqlx::Error),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the folder for the SQLite database {path}")]
    CreateDir {
        /// The folder.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database did not accept a connection.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// A database name that is not a plain identifier.
    #[error("{name:?} is not a usable database name")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// The migration lock file could not be taken.
    #[error("cannot lock {path} for migrations")]
    Lock {
        /// The lock file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("cannot migrate the database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The SQLite connections used on the calling thread (`inline`) could not be opened.
    #[error("cannot open the database's connections used on the calling thread")]
    OpenInline(#[source] rusqlite::Error),
}

/// Where a service's hot reads go: [`inline::SqliteReads`] on SQLite (on the calling thread, no
/// hop to sqlx's worker), the pool itself on PostgreSQL. Writes and everything else use the
/// [`Database`].
#[derive(Debug, Clone)]
pub enum Reads {
    /// Read-only connections to the SQLite file.
    Sqlite(inline::SqliteReads),
    /// The PostgreSQL pool.
    Postgres(PgPool),
}

impl Reads {
    /// The read path of `db`.
    pub fn open(db: &Database) -> Result<Self, DbError> {
        match db {
            Database::Sqlite(pool) => inline::SqliteReads::open(pool)
                .map(Self::Sqlite)
                .map_err(DbError::OpenInline),
            Database::Postgres(pool) => Ok(Self::Postgres(pool.clone())),
        }
    }
}

/// One service's migrations for both engines, embedded in its binary with `include_str!`.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// `(version, description, sql)` for SQLite, in order.
    pub sqlite: &'static [(i64, &'static str, &'static str)],
    /// `(version, description, sql)` for PostgreSQL, in order.
    pub postgres: &'static [(i64, &'static str, &'static str)],
}

impl Database {
    /// Opens a pool for `config.url`. SQLite files (and their folders) are created if missing.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, DbError> {
        let url = config.url.expose();
        let acquire = Duration::from_millis(config.acquire_timeout_ms);
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        match scheme {
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(DbError::InvalidUrl)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                create_parent_dir(options.get_filename())?;
                private_files(options.get_filename())?;
                // Switching a new file to WAL takes an exclusive lock that SQLite's busy handler
                // does not wait for: processes opening one file together take turns here.
                let file = options.get_filename().to_owned();
                let _turn = lock_beside(&file).await?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Self::Sqlite(pool))
            }
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url).map_err(DbError::InvalidUrl)?;
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Self::Postgres(pool))
            }
            other => Err(DbError::UnsupportedScheme {
                scheme: other.to_owned(),
            }),
        }
    }

    /// Applies `migrations` for this engine; already-applied ones are skipped (and checksummed).
    ///
    /// Several processes may migrate one database at once (`souk up --instances catalog=3`):
    /// PostgreSQL serialises them with sqlx's advisory lock, SQLite with a lock file beside the
    /// database, since sqlx takes no lock there.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        match self {
            Self::Sqlite(pool) => {
                let _lock = lock_beside(pool.connect_options().get_filename()).await?;
                migrator(migrations.sqlite)
                    .run(pool)
                    .await
                    .map_err(DbError::Migrate)
            }
            Self::Postgres(pool) => migrator(migrations.postgres)
                .run(pool)
                .await
                .map_err(DbError::Migrate),
        }
    }

    /// The engine's name, for logs and reports.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The process's turn to write, for a lone writing statement run on the pool outside a
    /// transaction (`UPDATE … WHERE`, with no `BEGIN`): on SQLite, the turn on the file that
    /// [`begin_write_sqlite`] and [`inline::SqliteWriter`] take, held until the guard drops, so
    /// the statement finds the lock free instead of polling for it in SQLite's busy handler
    /// while the process's transactions pass it the lock one after another; `None` on
    /// PostgreSQL, whose rows lock on their own. Take it right before the statement, never while
    /// holding a writing transaction of the same file (it would wait for itself).
    pub async fn write_turn(&self) -> Result<Option<WriteTurn>, sqlx::Error> {
        match self {
            Self::Sqlite(pool) => sqlite_turn(pool)
                .await
                .map(|turn| Some(WriteTurn { _turn: turn })),
            Self::Postgres(_) => Ok(None),
        }
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Self::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
    }
}

impl Check for Database {
    fn name(&self) -> &str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.ping().await.map_err(|err| err.to_string()) })
    }
}

fn migrator(steps: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = steps
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Holds an exclusive lock on `<database>.lock` until dropped (the OS releases it if we die).
async fn lock_beside(database: &std::path::Path) -> Result<Option<std::fs::File>, DbError> {
    if database.as_os_str().is_empty() || database == std::path::Path::new(":memory:") {
        return Ok(None);
    }
    let mut path = database.as_os_str().to_owned();
    path.push(".lock");
    let lock_error = |source| DbError::Lock {
        path: std::path::PathBuf::from(&path).display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(lock_error)?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|join| lock_error(std::io::Error::other(join)))?
        .map(Some)
        .map_err(lock_error)
}

/// Creates the database's folder, `0700` when souk makes it: the data of a shop is its owner's.
fn create_parent_dir(file: &std::path::Path) -> Result<(), DbError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => crate::private::dir(dir)
            .map_err(|source| DbError::CreateDir {
                path: dir.display().to_string(),
                source,
            }),
        _ => Ok(()),
    }
}

/// Makes the database file `0600` before SQLite opens it (SQLite gives its `-wal` and `-shm`
/// files the database's mode), and tightens the files an older version left readable.
fn private_files(file: &std::path::Path) -> Result<(), DbError> {
    if file.as_os_str().is_empty() || file == std::path::Path::new(":memory:") {
        return Ok(());
    }
    let create_error = |source| DbError::CreateDir {
        path: file.display().to_string(),
        source,
    };
    crate::private::touch(file).map_err(create_error)?;
    for suffix in ["-wal", "-shm", ".lock"] {
        let mut beside = file.as_os_str().to_owned();
        beside.push(suffix);
        crate::private::tighten(std::path::Path::new(&beside)).map_err(create_error)?;
    }
    Ok(())
}

/// Creates database `name` on the PostgreSQL server at `server_url` if it does not exist, and
/// returns the URL of that database. `name` must be a plain identifier (letters, digits, `_`).
pub async fn create_database_if_missing(server_url: &str, name: &str) -> Result<String, DbError> {
    use sqlx::ConnectOptions;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(DbError::InvalidName {
            name: name.to_owned(),
        });
    }
    let options = PgConnectOptions::from_str(server_url).map_err(DbError::InvalidUrl)?;
    let mut conn = options.connect().await.map_err(DbError::Connect)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .map_err(DbError::Connect)?;
    if exists.is_none() {
        // Two starters may race here; the loser's "already exists" is as good as success.
        if let Err(err) = sqlx::query(trusted_sql(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
        {
            let duplicate = err
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "42P04" || code == "23505");
            if !duplicate {
                return Err(DbError::Connect(err));
            }
        }
    }
    let Some((base, query)) = split_database(server_url) else {
        return Err(DbError::InvalidName {
            name: name.to_owned(),
        });
    };
    Ok(format!("{base}/{name}{query}"))
}

/// Splits `postgres://user@host:port/db?opts` into (`postgres://user@host:port`, `?opts`).
fn split_database(url: &str) -> Option<(&str, &str)> {
    let after_scheme = url.find("://")? + 3;
    let (head, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let base = match head[after_scheme..].find('/') {
        Some(slash) => &head[..after_scheme + slash],
        None => head,
    };
    Some((base, query))
}

/// Runs the same code on whichever pool `$db` (a [`Database`] or a reference to one) is: `$pool`
/// is a `SqlitePool` in one arm and a `PgPool` in the other, and `$body` is compiled for each.
///
/// ```ignore
/// let n: i64 = souk_chassis::on_pool!(&self.db, |pool| {
///     sqlx::query_scalar("SELECT COUNT(*) FROM things").fetch_one(pool).await?
/// });
/// ```
#[macro_export]
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$tx`, a transaction that will write, begun the engine's way
/// ([`begin_write_sqlite`], [`begin_write_postgres`]); each `$name` is bound to its SQLite value in
/// one arm and its PostgreSQL value in the other (an outbox append, an inbox record, an id
/// conversion). The body commits; a transaction dropped without commit rolls back. A failed
/// `BEGIN` returns early with `?`, converted `From<sqlx::Error>`.
///
/// ```ignore
/// souk_chassis::in_write_tx!(&self.db, |tx, append = (events::append_sqlite, events::append_postgres)| {
///     sqlx::query("UPDATE things SET n = n + 1").execute(&mut *tx).await?;
///     append(&mut tx, &event).await?;
///     tx.commit().await?
/// })
/// ```
#[macro_export]
macro_rules! in_write_tx {
    ($db:expr, |$tx:ident $(, $name:ident = ($sqlite:expr, $postgres:expr))* $(,)?| $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite(pool) => {
                #[allow(unused_mut)]
                let mut $tx = $crate::db::begin_write_sqlite(pool).await?;
                $(let $name = $sqlite;)*
                $body
            }
            $crate::db::Database::Postgres(pool) => {
                #[allow(unused_mut)]
                let mut $tx = $crate::db::begin_write_postgres(pool).await?;
                $(let $name = $postgres;)*
                $body
            }
        }
    };
}

/// Whether `err` means the database cannot be reached right now (a 503, try again) rather than
/// that a query went wrong (a 500). One decision for every service. SQLite's "busy" is one of
/// them: another writer held the lock past the busy timeout, and the statement did nothing.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    ) || is_busy(err)
}

/// Whether the transaction lost to a concurrent one and did nothing: SQLite busy or locked
/// ([`is_busy`]), or a PostgreSQL deadlock (`40P01`) or serialization failure (`40001`), which
/// PostgreSQL answers by rolling the transaction back. Trying the whole transaction again is safe.
pub fn is_contention(err: &sqlx::Error) -> bool {
    is_busy(err) || is_serialization_failure(err)
}

/// Whether `err` is worth a 503 and another try rather than a 500: the database cannot be
/// reached ([`is_unavailable`]) or the transaction lost a race ([`is_contention`]).
pub fn is_transient(err: &sqlx::Error) -> bool {
    is_unavailable(err) || is_contention(err)
}

/// SQLITE_BUSY or SQLITE_LOCKED (any extended code, BUSY_SNAPSHOT included): the lock was not
/// had in time; the transaction did nothing and may be tried again.
pub fn is_busy(err: &sqlx::Error) -> bool {
    let Some(db) = err.as_database_error() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_none() {
        return false;
    }
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// PostgreSQL's `40P01` (deadlock detected) or `40001` (serialization failure).
fn is_serialization_failure(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .is_some_and(|pg| matches!(pg.code(), "40P01" | "40001"))
}

/// Begins a SQLite transaction that will write.
///
/// `BEGIN IMMEDIATE` takes the database's write lock at once. A deferred `BEGIN` — or a lone
/// write statement, which runs in one — reads first and upgrades to the write lock later; in WAL
/// mode, when another connection committed in between, SQLite fails the upgrade at once with
/// SQLITE_BUSY_SNAPSHOT, whatever the timeout.
///
/// First it waits, asynchronously and in arrival order, for the process's turn on the file (the
/// one [`inline::SqliteWriter`] takes too), and holds it until the transaction ends: the
/// process's writers queue here instead of in SQLite's busy handler, which sleeps 1, 2, 5, 10…
/// up to 100 ms between looks at the lock and so let a writer lose it again and again under
/// load (checkout's acceptance p99 in `bench/results/cost.md`). Only another process's writer,
/// or a lone write statement outside a transaction, is still waited for there. A turn not had
/// within the busy timeout is [`sqlx::Error::PoolTimedOut`] ([`is_unavailable`]: a 503).
/// Never begin a second one while holding one: it would wait for itself until that timeout.
pub async fn begin_write_sqlite(pool: &sqlx::SqlitePool) -> Result<SqliteWriteTx, sqlx::Error> {
    let turn = sqlite_turn(pool).await?;
    let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    Ok(SqliteWriteTx { tx, _turn: turn })
}

/// Waits for the process's turn to write the file `pool` opens, up to the busy timeout.
async fn sqlite_turn(
    pool: &sqlx::SqlitePool,
) -> Result<tokio::sync::OwnedMutexGuard<()>, sqlx::Error> {
    let turn = inline::writer_turn(pool.connect_options().get_filename());
    tokio::time::timeout(SQLITE_BUSY_TIMEOUT, turn.lock_owned())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)
}

/// The process's turn to write a SQLite file ([`Database::write_turn`]), given up when dropped.
#[derive(Debug)]
pub struct WriteTurn {
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// A SQLite transaction that will write ([`begin_write_sqlite`]), holding the process's turn on
/// the file until it commits, rolls back or is dropped (which rolls it back). Use it as the
/// connection it derefs to: `.execute(&mut *tx)`.
#[derive(Debug)]
pub struct SqliteWriteTx {
    // Declared first, so dropped (rolled back) before the turn is given up.
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl SqliteWriteTx {
    /// Commits, then gives up the turn.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let Self { tx, _turn } = self;
        tx.commit().await
    }

    /// Rolls back, then gives up the turn.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        let Self { tx, _turn } = self;
        tx.rollback().await
    }
}

impl std::ops::Deref for SqliteWriteTx {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for SqliteWriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// How long SQLite waits for a lock (the pool's busy timeout).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Begins a PostgreSQL transaction that will write: a plain `BEGIN`, READ COMMITTED. Rows lock
/// as they are written, and a conditional `UPDATE` re-reads the row it waited for before deciding,
/// so stores that change state by conditional statements need nothing stronger; a deadlock
/// between two of them is [`is_contention`].
pub async fn begin_write_postgres(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin().await
}

/// Runs `sql` built at run time (identifiers that cannot be bound, such as a database name).
/// The caller promises the text is not attacker-controlled.
pub fn trusted_sql(sql: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: Migrations = Migrations {
        sqlite: &[(
            1,
            "things",
            "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        )],
        postgres: &[(
            1,
            "things",
            "CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        )],
    };

    /// A migrated SQLite database of `things` in `dir`.
    async fn things(dir: &tempfile::TempDir) -> Database {
        let url = format!("sqlite://{}/things.db", dir.path().display());
        let db = Database::connect(&DatabaseConfig::with_url(&url))
            .await
            .unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        db
    }

    #[tokio::test]
    async fn writes_run_in_an_immediate_transaction_with_the_engines_values() {
        let dir = tempfile::tempdir().unwrap();
        let db = things(&dir).await;
        let write = async {
            crate::in_write_tx!(&db, |tx, name = ("sqlite", "postgres")| {
                sqlx::query("INSERT INTO things (id, name) VALUES (1, $1)")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            })
        };
        write.await.unwrap();
        let name: String = crate::on_pool!(&db, |pool| {
            sqlx::query_scalar("SELECT name FROM things")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert_eq!(name, "sqlite");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn immediate_writers_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let db = things(&dir).await;
        let Database::Sqlite(pool) = &db else {
            panic!("expected sqlite")
        };
        sqlx::query("INSERT INTO things (id, name) VALUES (1, '0')")
            .execute(pool)
            .await
            .unwrap();
        // Read, pause, write back: lost updates if two ran at once.
        let writers = (0..24).map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut tx = begin_write_sqlite(&pool).await.unwrap();
                let n: String = sqlx::query_scalar("SELECT name FROM things WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
                let next = (n.parse::<u32>().unwrap() + 1).to_string();
                sqlx::query("UPDATE things SET name = $1 WHERE id = 1")
                    .bind(next)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            writer.await.unwrap();
        }
        // One that rolls back leaves nothing, and does not keep the turn.
        let mut tx = begin_write_sqlite(pool).await.unwrap();
        sqlx::query("UPDATE things SET name = 'gone' WHERE id = 1")
            .execute(&mut *tx)
            .await
            .unwrap();
        drop(tx);
        let tx = begin_write_sqlite(pool).await.unwrap();
        tx.rollback().await.unwrap();
        let name: String = sqlx::query_scalar("SELECT name FROM things WHERE id = 1")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(name, "24");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_waits_for_the_process_s_turn_not_in_sqlite_s_busy_handler() {
        let dir = tempfile::tempdir().unwrap();
        let db = things(&dir).await;
        let Database::Sqlite(pool) = &db else {
            panic!("expected sqlite")
        };
        let mut tx = begin_write_sqlite(pool).await.unwrap();
        sqlx::query("INSERT INTO things (id, name) VALUES (1, 'first')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let lone = tokio::spawn({
            let db = db.clone();
            async move {
                let _turn = db.write_turn().await?;
                on_pool!(&db, |pool| sqlx::query(
                    "UPDATE things SET name = 'second' WHERE id = 1"
                )
                .execute(pool)
                .await?
                .rows_affected());
                Ok::<_, sqlx::Error>(())
            }
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(100), db.write_turn())
                .await
                .is_err(),
            "the turn is the transaction's until it ends"
        );
        assert!(!lone.is_finished());
        tx.commit().await.unwrap();
        lone.await.unwrap().unwrap();
        let name: String = sqlx::query_scalar("SELECT name FROM things WHERE id = 1")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(name, "second", "it ran after the commit, and saw its row");
        assert!(
            Database::Postgres(PgPool::connect_lazy("postgres://nowhere/x").unwrap())
                .write_turn()
                .await
                .unwrap()
                .is_none(),
            "PostgreSQL takes no turn"
        );
    }

    #[test]
    fn pool_and_io_failures_are_transient_and_other_errors_are_not() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::Io(std::io::Error::other(
            "reset"
        ))));
        assert!(!is_contention(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }

    #[tokio::test]
    async fn sqlite_files_and_folders_are_created_and_migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/dir/test.db", dir.path().display());
        let db = Database::connect(&DatabaseConfig::with_url(&url))
            .await
            .unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        assert!(db.check().await.is_ok());
        let Database::Sqlite(pool) = &db else {
            panic!("expected sqlite")
        };
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(mode.0, "wal");
        #[cfg(unix)]
        {
            // Another user of the machine reads none of it, whatever the umask.
            use std::os::unix::fs::PermissionsExt;
            let mode_of = |path: std::path::PathBuf| {
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
            };
            let folder = dir.path().join("nested/dir");
            assert_eq!(mode_of(folder.clone()), 0o700);
            for file in ["test.db", "test.db-wal", "test.db-shm", "test.db.lock"] {
                assert_eq!(mode_of(folder.join(file)), 0o600, "{file}");
            }
        }
    }

    #[test]
    fn database_urls_are_split_at_the_database_name() {
        assert_eq!(
            split_database("postgres://u@h:5432/postgres"),
            Some(("postgres://u@h:5432", ""))
        );
        assert_eq!(
            split_database("postgres://u@h/db?sslmode=disable"),
            Some(("postgres://u@h", "?sslmode=disable"))
        );
        assert_eq!(
            split_database("postgres://u@h"),
            Some(("postgres://u@h", ""))
        );
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_echoing_the_url() {
        let err = Database::connect(&DatabaseConfig::with_url("mysql://root:pw@x/db"))
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::UnsupportedScheme { .. }));
        assert!(!err.to_string().contains("pw"));
    }
}
