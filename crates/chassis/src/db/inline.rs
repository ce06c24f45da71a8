//! SQLite on the calling thread: reads, and a writer, without a thread hop per statement.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and sends it every statement
//! over a channel, then wakes the asking task with the answer: two context switches per
//! statement, each costing more than the point read it carries (profiled in
//! `bench/results/cost.md`: the worker threads took 44 % of the monolith's CPU, a quarter of it
//! SQLite's own work). [`SqliteReads`] serves the hot reads instead from a few read-only
//! connections of its own, on the calling thread, with their statements prepared once per
//! connection, memory-mapped pages and a page cache each.
//!
//! The trade-off: a read runs on the async runtime's thread and holds it for as long as SQLite
//! takes. That is right for what these connections are for — statements that touch an indexed
//! handful of rows and a bounded page (a `LIMIT`), which take microseconds, less than a hop to
//! another thread would. Scans, reports and anything whose cost grows with the data stay on
//! the sqlx pool. Writes always go through the pool (one writer at a time, as SQLite has it);
//! in WAL mode these readers never block it nor wait for it.
//!
//! [`SqliteWriter`] does the same for a service's hottest write: one connection, used by the
//! process's writers of that file one at a time, a whole transaction run here and now once the
//! turn is had (the turn the pool's writers take too: [`super::begin_write_sqlite`],
//! [`super::Database::write_turn`]). Waiting for the turn, and for the lock while another
//! process holds it, is asynchronous; only the transaction itself (microseconds: a few indexed rows,
//! appended to the WAL without an fsync) holds the thread. (SQLite's own busy handler, which
//! waits for a lock another process holds, sleeps 1, 2, 5, 10… ms between looks: under load
//! most of a write's latency, when the process's own writers waited in it too.) When a commit fills the WAL past its checkpoint size, that commit also
//! copies the WAL into the database file, a few milliseconds once every thousand pages.
//!
//! PostgreSQL has no counterpart: its driver speaks to a server over a socket, with no hop to
//! save.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::time::Instant;

/// Connections kept open between reads: as many as threads are likely to read at once.
const KEEP: usize = 4;
/// Statements kept prepared per connection.
const STATEMENTS: usize = 32;
/// Bytes of the file each connection maps (reads then copy no page through `pread`).
const MMAP_BYTES: i64 = 64 << 20;
/// Page cache per connection, in KiB (SQLite's negative `cache_size`).
const CACHE_KIB: i64 = 2048;
/// How long a read waits on a lock SQLite holds briefly (WAL recovery, a checkpoint's restart).
const BUSY: Duration = Duration::from_millis(250);

/// Read-only connections to one SQLite file, used on the calling thread.
#[derive(Clone)]
pub struct SqliteReads {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReads")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteReads {
    /// Read connections to the file `pool` writes. One is opened at once, so that a file that
    /// cannot be read fails at start-up rather than on the first request.
    pub fn open(pool: &sqlx::SqlitePool) -> Result<Self, rusqlite::Error> {
        let path = pool.connect_options().get_filename().to_owned();
        let first = connect(&path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(vec![first]),
            }),
        })
    }

    /// Runs `read` on an idle connection (a new one when all are busy), here and now.
    ///
    /// `read` should prepare its statements with [`Connection::prepare_cached`]: they are then
    /// parsed once per connection, not once per read.
    pub fn read<T, E>(&self, read: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let taken = self.idle().pop();
        let connection = match taken {
            Some(connection) => connection,
            None => connect(&self.inner.path)?,
        };
        let result = read(&connection);
        // A read that failed may have left a statement mid-way; every cached statement is reset
        // when it is handed out again, so the connection stays usable.
        let mut idle = self.idle();
        if idle.len() < KEEP {
            idle.push(connection);
        }
        result
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The list holds no invariant a panicking reader could break.
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One writing connection to a SQLite file, used on the calling thread in the process's turns.
#[derive(Clone)]
pub struct SqliteWriter {
    path: PathBuf,
    /// The process's turn on this file, shared with every other writer of it.
    turn: Arc<tokio::sync::Mutex<()>>,
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How long a writer waits for its turn and for another process's lock before giving up (the
/// pool's busy timeout).
const WRITE_WAIT: Duration = super::SQLITE_BUSY_TIMEOUT;

impl SqliteWriter {
    /// A writing connection to the file `pool` writes, set up as the pool's are (WAL,
    /// `synchronous = NORMAL`, foreign keys on).
    pub fn open(pool: &sqlx::SqlitePool) -> Result<Self, rusqlite::Error> {
        let path = pool.connect_options().get_filename().to_owned();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&path, flags)?;
        // Never wait inside SQLite, on the thread: a lock held by another process is waited
        // for between tries, asynchronously.
        connection.busy_timeout(Duration::ZERO)?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", true)?;
        connection.pragma_update(None, "cache_size", -CACHE_KIB)?;
        connection.set_prepared_statement_cache_capacity(STATEMENTS);
        crate::telemetry::sql::trace_sqlite(&connection);
        Ok(Self {
            turn: writer_turn(&path),
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `write` in an immediate transaction, committed when it returns `Ok` and rolled back
    /// when it returns `Err`. Waits (asynchronously) for the process's turn on this file, then
    /// for the write lock if another connection holds it, up to the busy timeout: a timeout is
    /// SQLITE_BUSY, which [`is_unavailable`] takes for a 503.
    pub async fn write<T, E>(
        &self,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let deadline = Instant::now() + WRITE_WAIT;
        let _turn = tokio::time::timeout_at(deadline, self.turn.lock())
            .await
            .map_err(|_| busy("waited too long for this process's turn to write"))?;
        let mut pause = Duration::from_millis(1);
        let mut write = Some(write);
        loop {
            let outcome = {
                let mut connection = self.connection();
                match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
                    Ok(tx) => write.take().map(|write| match write(&tx) {
                        Ok(value) => tx.commit().map(|()| value).map_err(E::from),
                        // Dropping the transaction rolls it back.
                        Err(err) => Err(err),
                    }),
                    Err(err) if is_busy(&err) => None,
                    Err(err) => Some(Err(E::from(err))),
                }
            };
            if let Some(outcome) = outcome {
                return outcome;
            }
            // Another connection (the pool's, another process's) holds the lock: wait off the
            // thread, then try again.
            if Instant::now() + pause > deadline {
                return Err(E::from(busy(
                    "another connection held the write lock too long",
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Only the holder of the turn locks it; a panic mid-transaction rolled that one back.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The turn lock of the database file at `path`, one per file in the process, shared by its
/// [`SqliteWriter`]s (looked up once, when one opens) and the pool's writing transactions
/// ([`super::begin_write_sqlite`]).
pub(super) fn writer_turn(path: &Path) -> Arc<tokio::sync::Mutex<()>> {
    type Turns = Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>;
    static TURNS: std::sync::OnceLock<Turns> = std::sync::OnceLock::new();
    let mut turns = TURNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(turn) = turns.get(path) {
        return turn.clone();
    }
    turns.entry(path.to_owned()).or_default().clone()
}

/// The placeholders [`bind_numbered`] knows, `$1` to `$16`.
const NUMBERED: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
];

/// Binds `params` to a statement written for both engines, with PostgreSQL's numbered
/// placeholders: `params[0]` to `$1` wherever it appears, and so on.
///
/// SQLite reads `$1` as a parameter *named* "$1", numbered in order of first appearance; binding
/// by position would silently swap values in a statement that names `$2` before `$1`. So each
/// is looked up by its name, and a statement whose placeholders are not exactly `$1`…`$n` for
/// `n` values is refused.
pub fn bind_numbered(
    statement: &mut rusqlite::Statement<'_>,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    let expected = statement.parameter_count();
    if params.len() != expected || expected > NUMBERED.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    for (param, name) in params.iter().zip(NUMBERED) {
        let index = statement
            .parameter_index(name)?
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_owned()))?;
        statement.raw_bind_parameter(index, param)?;
    }
    Ok(())
}

/// Runs `sql` (with `$1`… placeholders, see [`bind_numbered`]) on `connection`, its statement
/// prepared once per connection; the number of rows it changed.
pub fn execute_numbered(
    connection: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<usize> {
    let mut statement = connection.prepare_cached(sql)?;
    bind_numbered(&mut statement, params)?;
    statement.raw_execute()
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn busy(why: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some(why.to_owned()),
    )
}

/// Whether a read failed because the database could not answer now (busy or locked past the
/// wait, the file unreadable or gone) rather than because of the statement: worth a 503 and
/// another try, as [`super::is_unavailable`] is for the pool.
pub fn is_unavailable(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    err.sqlite_error_code().is_some_and(|code| {
        matches!(
            code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
        )
    })
}

fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(BUSY)?;
    connection.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    connection.pragma_update(None, "cache_size", -CACHE_KIB)?;
    connection.set_prepared_statement_cache_capacity(STATEMENTS);
    crate::telemetry::sql::trace_sqlite(&connection);
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, DatabaseConfig};

    async fn database(dir: &tempfile::TempDir) -> sqlx::SqlitePool {
        let url = format!("sqlite://{}", dir.path().join("reads.db").display());
        let Database::Sqlite(pool) = Database::connect(&DatabaseConfig::with_url(url))
            .await
            .expect("connect")
        else {
            panic!("not sqlite");
        };
        sqlx::query("CREATE TABLE t (n INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .expect("create");
        pool
    }

    fn count(reads: &SqliteReads) -> i64 {
        reads
            .read(|c| {
                c.prepare_cached("SELECT COUNT(*) FROM t")?
                    .query_row([], |row| row.get(0))
            })
            .expect("read")
    }

    #[tokio::test]
    async fn reads_see_every_committed_write_and_cannot_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = database(&dir).await;
        let reads = SqliteReads::open(&pool).expect("open");
        assert_eq!(count(&reads), 0);
        sqlx::query("INSERT INTO t (n) VALUES (1), (2)")
            .execute(&pool)
            .await
            .expect("insert");
        assert_eq!(count(&reads), 2, "a cached statement sees the new rows");
        let refused = reads.read(|c| c.execute("INSERT INTO t (n) VALUES (3)", []));
        assert!(refused.is_err(), "read connections are read-only");
        assert_eq!(count(&reads), 2);
    }

    #[tokio::test]
    async fn reads_at_once_open_more_connections_and_keep_a_few() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = database(&dir).await;
        let reads = SqliteReads::open(&pool).expect("open");
        // Nested reads hold connections at once, as reads on several threads do.
        fn nest(reads: &SqliteReads, depth: usize) -> Result<i64, rusqlite::Error> {
            reads.read(|c| {
                let here: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM t")?
                    .query_row([], |row| row.get(0))?;
                Ok(if depth == 0 {
                    here
                } else {
                    here + nest(reads, depth - 1)?
                })
            })
        }
        assert_eq!(nest(&reads, 2 * KEEP).expect("nested"), 0);
        assert_eq!(reads.idle().len(), KEEP);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_commit_or_roll_back_and_take_turns_without_losing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = database(&dir).await;
        let writer = SqliteWriter::open(&pool).expect("open");
        let reads = SqliteReads::open(&pool).expect("open");
        let writes = (0..40).map(|_| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(|tx| {
                        // Read, then write what was read plus one: lost if two overlapped.
                        let count: i64 =
                            tx.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?;
                        tx.execute("INSERT INTO t (n) VALUES (?1)", [count])?;
                        Ok::<_, rusqlite::Error>(())
                    })
                    .await
            })
        });
        for write in writes.collect::<Vec<_>>() {
            write.await.expect("joined").expect("written");
        }
        assert_eq!(count(&reads), 40);
        let distinct: i64 = reads
            .read(|c| c.query_row("SELECT COUNT(DISTINCT n) FROM t", [], |r| r.get(0)))
            .expect("read");
        assert_eq!(distinct, 40, "every write saw the one before it");
        let refused: Result<(), rusqlite::Error> = writer
            .write(|tx| {
                tx.execute("INSERT INTO t (n) VALUES (99)", [])?;
                Err(rusqlite::Error::QueryReturnedNoRows)
            })
            .await;
        assert!(refused.is_err());
        assert_eq!(count(&reads), 40, "an Err rolls the transaction back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_waits_off_the_thread_for_a_lock_another_connection_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = database(&dir).await;
        let writer = SqliteWriter::open(&pool).expect("open");
        // The lock as another process's writer holds it: without this process's turn.
        let mut held = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        sqlx::query("INSERT INTO t (n) VALUES (1)")
            .execute(&mut *held)
            .await
            .expect("insert");
        let waiting = tokio::spawn(async move {
            writer
                .write(|tx| tx.execute("INSERT INTO t (n) VALUES (2)", []))
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the lock is held");
        held.commit().await.expect("commit");
        assert_eq!(waiting.await.expect("joined").expect("written"), 1);
        let reads = SqliteReads::open(&pool).expect("open");
        assert_eq!(count(&reads), 2);
    }

    #[tokio::test]
    async fn a_failed_read_leaves_the_connection_usable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = database(&dir).await;
        let reads = SqliteReads::open(&pool).expect("open");
        let failed = reads.read(|c| c.prepare_cached("SELECT nope FROM t").map(drop));
        assert!(failed.is_err());
        assert_eq!(count(&reads), 0);
    }

    #[tokio::test]
    async fn numbered_placeholders_bind_by_number_not_by_first_appearance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = database(&dir).await;
        let writer = SqliteWriter::open(&pool).expect("open");
        // `$2` appears first: SQLite numbers it 1, so binding by position would swap the values.
        let written = writer
            .write(|tx| {
                execute_numbered(tx, "INSERT INTO t (n) VALUES ($1)", &[&7_i64])?;
                execute_numbered(tx, "UPDATE t SET n = $2 WHERE n = $1", &[&7_i64, &9_i64])
            })
            .await
            .expect("written");
        assert_eq!(written, 1);
        let reads = SqliteReads::open(&pool).expect("open");
        let n: i64 = reads
            .read(|c| {
                c.prepare_cached("SELECT n FROM t")?
                    .query_row([], |row| row.get(0))
            })
            .expect("read");
        assert_eq!(n, 9);
        // Too few values, or a placeholder that is not `$n`, is refused rather than bound wrong.
        let refused = writer
            .write(|tx| execute_numbered(tx, "UPDATE t SET n = $2 WHERE n = $1", &[&9_i64]))
            .await;
        assert!(matches!(
            refused,
            Err(rusqlite::Error::InvalidParameterCount(1, 2))
        ));
        let refused = writer
            .write(|tx| execute_numbered(tx, "UPDATE t SET n = :n", &[&9_i64]))
            .await;
        assert!(matches!(
            refused,
            Err(rusqlite::Error::InvalidParameterName(_))
        ));
    }
}
