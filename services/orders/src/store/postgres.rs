//! What differs on PostgreSQL: transactions begin plainly (rows lock as they are written), and a
//! deadlock or serialisation failure is worth another try.

use sqlx::{PgPool, Postgres, Transaction};

/// Begins a transaction that will write. READ COMMITTED suffices: every change is a single
/// conditional statement, which re-reads the row it waited for before deciding.
pub(super) async fn begin_write(
    pool: &PgPool,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin().await
}

/// `40P01` (deadlock detected) or `40001` (serialization failure): PostgreSQL rolled the
/// transaction back, and the caller may try again.
pub(super) fn is_retryable(err: &sqlx::Error) -> bool {
    let Some(db) = err.as_database_error() else {
        return false;
    };
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| matches!(pg.code(), "40P01" | "40001"))
}
