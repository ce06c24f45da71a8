//! What differs on SQLite: writing transactions take the write lock up front, and "busy" is the
//! error worth another try.

use sqlx::{Sqlite, SqlitePool, Transaction};

/// Begins a transaction that will write.
///
/// `BEGIN IMMEDIATE` takes the database's write lock at once, waiting up to the pool's busy
/// timeout for it. A deferred `BEGIN` would read first and upgrade later, and two such
/// transactions can each hold what the other waits for: SQLite then fails one at once.
pub(super) async fn begin_write(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// SQLITE_BUSY or SQLITE_LOCKED (any extended code): another writer held the lock past the busy
/// timeout. Nothing was done, and the caller may try again.
pub(super) fn is_busy(err: &sqlx::Error) -> bool {
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
