//! Carts in SQLite: a `carts` row (when it last changed) and its `cart_lines`.

use std::time::Duration;

use souk_chassis::Database;
use souk_chassis::db::inline::{SqliteReads, SqliteWriter};
use souk_chassis::db::{DatabaseConfig, DbError, begin_write_sqlite};
use sqlx::SqlitePool;
use uuid::Uuid;

use super::{MIGRATIONS, SetError, StoreError, now_ms};
use crate::domain::{Line, MAX_LINES, Quantity};

/// The SQLite cart store. Cheap to clone.
///
/// A cart is read on the chassis' [`SqliteReads`] and a line set on its [`SqliteWriter`] (on the
/// calling thread: one user's indexed rows); the rarer changes go through the sqlx pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Database,
    pool: SqlitePool,
    reads: SqliteReads,
    /// Adding to a cart, the hot write, runs on it; the rarer writes go through the pool.
    writer: SqliteWriter,
    abandoned_after: Duration,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database.
    pub(super) async fn open(
        config: &DatabaseConfig,
        abandoned_after: Duration,
    ) -> Result<Self, DbError> {
        let db = Database::connect(config).await?;
        db.migrate(&MIGRATIONS).await?;
        let Database::Sqlite(pool) = &db else {
            // `Store::open` sends only sqlite:// URLs here.
            return Err(DbError::UnsupportedScheme {
                scheme: db.engine().to_owned(),
            });
        };
        let reads = SqliteReads::open(pool).map_err(DbError::OpenInline)?;
        let writer = SqliteWriter::open(pool).map_err(DbError::OpenInline)?;
        Ok(Self {
            pool: pool.clone(),
            reads,
            writer,
            db,
            abandoned_after,
        })
    }

    /// The pool, for readiness checks and closing.
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub(super) async fn lines(&self, user: &str) -> Result<Vec<Line>, StoreError> {
        let rows: Vec<(String, i64)> = self.reads.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT product_id, quantity FROM cart_lines WHERE user_id = ?1 \
                 ORDER BY added_at, rowid",
            )?;
            let rows = statement.query_map([user], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<Result<_, rusqlite::Error>>()
        })?;
        rows.into_iter()
            .map(|(product_id, quantity)| {
                Ok(Line {
                    product_id: Uuid::parse_str(&product_id).map_err(|e| StoreError::Corrupt {
                        what: "product_id",
                        reason: e.to_string(),
                    })?,
                    quantity: Quantity::new(quantity).map_err(|reason| StoreError::Corrupt {
                        what: "quantity",
                        reason,
                    })?,
                })
            })
            .collect()
    }

    pub(super) async fn set(&self, user: &str, line: Line) -> Result<(), SetError> {
        let now = now_ms();
        let product = line.product_id.to_string();
        let quantity = i64::from(line.quantity.get());
        // An immediate transaction holds the write lock from the start, so the count below
        // cannot change before the insert: concurrent adds take turns and never pass the limit
        // together.
        self.writer
            .write(|tx| {
                touch(tx, user, now)?;
                let updated = tx
                    .prepare_cached(
                        "UPDATE cart_lines SET quantity = ?3, updated_at = ?4 \
                         WHERE user_id = ?1 AND product_id = ?2",
                    )?
                    .execute(rusqlite::params![user, product, quantity, now])?;
                if updated > 0 {
                    return Ok(());
                }
                let count: i64 = tx
                    .prepare_cached("SELECT COUNT(*) FROM cart_lines WHERE user_id = ?1")?
                    .query_row([user], |row| row.get(0))?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_LINES {
                    return Err(SetError::Full);
                }
                tx.prepare_cached(
                    "INSERT INTO cart_lines (user_id, product_id, quantity, added_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                )?
                .execute(rusqlite::params![user, product, quantity, now])?;
                Ok(())
            })
            .await
    }

    pub(super) async fn remove(&self, user: &str, product: Uuid) -> Result<(), StoreError> {
        let product = product.to_string();
        self.writer
            .write(|tx| {
                let removed = tx
                    .prepare_cached(
                        "DELETE FROM cart_lines WHERE user_id = ?1 AND product_id = ?2",
                    )?
                    .execute(rusqlite::params![user, product])?;
                if removed > 0 {
                    touch(tx, user, now_ms())?;
                }
                Ok(())
            })
            .await
    }

    pub(super) async fn remove_unchanged_since(
        &self,
        user: &str,
        product: Uuid,
        since: i64,
    ) -> Result<(), StoreError> {
        let product = product.to_string();
        self.writer
            .write(|tx| {
                let removed = tx
                    .prepare_cached(
                        "DELETE FROM cart_lines \
                         WHERE user_id = ?1 AND product_id = ?2 AND updated_at <= ?3",
                    )?
                    .execute(rusqlite::params![user, product, since])?;
                if removed > 0 {
                    touch(tx, user, now_ms())?;
                }
                Ok(())
            })
            .await
    }

    pub(super) async fn clear(&self, user: &str) -> Result<(), StoreError> {
        // Its lines go with it (ON DELETE CASCADE).
        self.writer
            .write(|tx| {
                tx.prepare_cached("DELETE FROM carts WHERE user_id = ?1")?
                    .execute([user])?;
                Ok(())
            })
            .await
    }

    pub(super) async fn purge_abandoned(&self) -> Result<u64, StoreError> {
        let age = i64::try_from(self.abandoned_after.as_millis()).unwrap_or(i64::MAX);
        let mut tx = begin_write_sqlite(&self.pool).await?;
        let deleted = sqlx::query("DELETE FROM carts WHERE touched_at < $1")
            .bind(now_ms().saturating_sub(age))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}

/// Records that `user`'s cart changed at `now` (creating its row on the first write).
fn touch(tx: &rusqlite::Connection, user: &str, now: i64) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "INSERT INTO carts (user_id, touched_at) VALUES (?1, ?2) \
         ON CONFLICT (user_id) DO UPDATE SET touched_at = excluded.touched_at",
    )?
    .execute(rusqlite::params![user, now])?;
    Ok(())
}
