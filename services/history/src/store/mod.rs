//! History's storage, on SQLite or PostgreSQL: one schema and one set of SQL for both (text ids,
//! Unix milliseconds), run on whichever pool is configured.
//!
//! Each event's effect is one upsert that merges its fact into the purchase's row (see
//! `crate::domain::Fact` for why every merge commutes), made in the transaction that records the
//! event in the consumer's inbox: an event handled twice has one effect.

use souk_chassis::Database;
use souk_chassis::db::{DatabaseConfig, DbError, Migrations};
use souk_chassis::events::{
    self, INBOX_MIGRATION_POSTGRES, INBOX_MIGRATION_SQLITE, INBOX_RETENTION_MIGRATION_POSTGRES,
    INBOX_RETENTION_MIGRATION_SQLITE,
};
use souk_chassis::on_pool;
use uuid::Uuid;

use crate::domain::{Card, Fact, Instant, Line, Money, Purchase, Stage};

const SCHEMA: (i64, &str, &str) = (
    1,
    "history",
    include_str!("../../migrations/0001_history.sql"),
);

/// History's migrations for both engines, embedded in the binary: its schema, then the chassis'
/// inbox tables for its consumers.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        SCHEMA,
        INBOX_MIGRATION_SQLITE,
        INBOX_RETENTION_MIGRATION_SQLITE,
    ],
    postgres: &[
        SCHEMA,
        INBOX_MIGRATION_POSTGRES,
        INBOX_RETENTION_MIGRATION_POSTGRES,
    ],
};

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A stored value is not one this service writes.
    #[error("stored {column} is invalid: {reason}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn corrupt(column: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        column,
        reason: reason.to_string(),
    }
}

/// Where a page of a user's purchases starts: after this `(placed_at, order_id)`, going back in
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The last purchase's placing time, in milliseconds.
    pub placed_at: i64,
    /// The last purchase's order id.
    pub order_id: String,
}

/// Runs `$body` with `$tx`, a writing transaction, and `$record`, the engine's inbox record.
/// SQLite's `BEGIN IMMEDIATE` takes the write lock at once, so two consumers writing one row take
/// turns instead of failing on a lock upgrade.
macro_rules! in_write_tx {
    ($db:expr, |$tx:ident, $record:ident| $body:expr) => {
        souk_chassis::in_write_tx!($db, |$tx, $record = (events::inbox_record_sqlite, events::inbox_record_postgres)| $body)
    };
}

/// History's store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Connects to the configured database and brings its schema up to date.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, DbError> {
        let db = Database::connect(config).await?;
        db.migrate(&MIGRATIONS).await?;
        Ok(Self { db })
    }

    /// The underlying pool (readiness checks, the consumers' inbox and dead letters).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Merges `fact` from event `event_id` into its purchase, unless `consumer` handled that
    /// event before: `true` when it took effect now, `false` when it had already.
    pub async fn apply(
        &self,
        consumer: &str,
        event_id: &str,
        fact: &Fact,
    ) -> Result<bool, StoreError> {
        in_write_tx!(&self.db, |tx, record| {
            // First, so that a second instance handling the same event waits here.
            if !record(&mut tx, consumer, event_id).await? {
                return Ok(false);
            }
            match fact {
                Fact::Order(order) => {
                    let lines = serde_json::to_string(&order.lines)
                        .map_err(|e| corrupt("purchases.lines", e))?;
                    sqlx::query(sql::MERGE_ORDER)
                        .bind(order.order_id.to_string())
                        .bind(&order.user_id)
                        .bind(order.stage.rank())
                        .bind(order.cancel_reason.as_deref())
                        .bind(lines)
                        .bind(order.total.amount)
                        .bind(&order.total.currency)
                        .bind(order.placed_at.millis())
                        .bind(order.confirmed_at.map(Instant::millis))
                        .execute(&mut *tx)
                        .await?
                }
                Fact::Captured {
                    order_id,
                    user_id,
                    card,
                    captured_at,
                } => {
                    sqlx::query(sql::MERGE_CAPTURE)
                        .bind(order_id.to_string())
                        .bind(user_id)
                        .bind(&card.brand)
                        .bind(&card.last4)
                        .bind(captured_at.millis())
                        .execute(&mut *tx)
                        .await?
                }
                Fact::Refunded {
                    order_id,
                    user_id,
                    refunded_at,
                } => {
                    sqlx::query(sql::MERGE_REFUND)
                        .bind(order_id.to_string())
                        .bind(user_id)
                        .bind(refunded_at.millis())
                        .execute(&mut *tx)
                        .await?
                }
            };
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Up to `limit` of `user_id`'s purchases, newest first (by placing time, then order id),
    /// after `after` when given. Placeholders (a payment without its order yet) are left out.
    pub async fn purchases_of(
        &self,
        user_id: &str,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Purchase>, StoreError> {
        let limit = i64::from(limit);
        let rows: Vec<Row> = match after {
            None => on_pool!(&self.db, |pool| sqlx::query_as(sql::PAGE_FIRST)
                .bind(user_id)
                .bind(limit)
                .fetch_all(pool)
                .await?),
            Some(after) => on_pool!(&self.db, |pool| sqlx::query_as(sql::PAGE_AFTER)
                .bind(user_id)
                .bind(after.placed_at)
                .bind(&after.order_id)
                .bind(limit)
                .fetch_all(pool)
                .await?),
        };
        rows.into_iter().map(purchase_from_row).collect()
    }

    /// `user_id`'s purchase of order `order_id`; `None` when it is someone else's, a
    /// placeholder, or unknown.
    pub async fn purchase(
        &self,
        user_id: &str,
        order_id: Uuid,
    ) -> Result<Option<Purchase>, StoreError> {
        let row: Option<Row> = on_pool!(&self.db, |pool| sqlx::query_as(sql::ONE)
            .bind(order_id.to_string())
            .bind(user_id)
            .fetch_optional(pool)
            .await?);
        row.map(purchase_from_row).transpose()
    }
}

/// SQL shared by both engines (sqlx binds `$N` on SQLite too).
mod sql {
    /// An order event: sets what is not set yet, moves the stage forward, and takes the buyer
    /// from orders (a payment's placeholder may have been first).
    pub(super) const MERGE_ORDER: &str = "INSERT INTO purchases \
         (order_id, user_id, stage, cancel_reason, lines, total_amount, currency, placed_at, confirmed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (order_id) DO UPDATE SET \
         user_id = excluded.user_id, \
         stage = CASE WHEN excluded.stage > purchases.stage THEN excluded.stage ELSE purchases.stage END, \
         cancel_reason = COALESCE(purchases.cancel_reason, excluded.cancel_reason), \
         lines = COALESCE(purchases.lines, excluded.lines), \
         total_amount = COALESCE(purchases.total_amount, excluded.total_amount), \
         currency = COALESCE(purchases.currency, excluded.currency), \
         placed_at = COALESCE(purchases.placed_at, excluded.placed_at), \
         confirmed_at = COALESCE(purchases.confirmed_at, excluded.confirmed_at)";

    /// A capture: the card, once; a placeholder row when the order is not known yet.
    pub(super) const MERGE_CAPTURE: &str = "INSERT INTO purchases \
         (order_id, user_id, stage, payment_brand, payment_last4, captured_at) \
         VALUES ($1, $2, 0, $3, $4, $5) \
         ON CONFLICT (order_id) DO UPDATE SET \
         payment_brand = COALESCE(purchases.payment_brand, excluded.payment_brand), \
         payment_last4 = COALESCE(purchases.payment_last4, excluded.payment_last4), \
         captured_at = COALESCE(purchases.captured_at, excluded.captured_at)";

    /// A refund: its time, once; a placeholder row when the order is not known yet.
    pub(super) const MERGE_REFUND: &str = "INSERT INTO purchases \
         (order_id, user_id, stage, refunded_at) VALUES ($1, $2, 0, $3) \
         ON CONFLICT (order_id) DO UPDATE SET \
         refunded_at = COALESCE(purchases.refunded_at, excluded.refunded_at)";

    /// The columns a [`super::Row`] reads, then `$tail`.
    macro_rules! select {
        ($tail:literal) => {
            concat!(
                "SELECT order_id, user_id, stage, cancel_reason, lines, total_amount, currency, \
                 placed_at, confirmed_at, payment_brand, payment_last4, refunded_at \
                 FROM purchases ",
                $tail
            )
        };
    }

    /// A user's first page, newest first; placeholders (stage 0) are not purchases yet.
    pub(super) const PAGE_FIRST: &str =
        select!("WHERE user_id = $1 AND stage > 0 ORDER BY placed_at DESC, order_id DESC LIMIT $2");

    /// A user's page after `($2, $3)`.
    pub(super) const PAGE_AFTER: &str = select!(
        "WHERE user_id = $1 AND stage > 0 \
         AND (placed_at < $2 OR (placed_at = $2 AND order_id < $3)) \
         ORDER BY placed_at DESC, order_id DESC LIMIT $4"
    );

    /// One of a user's purchases.
    pub(super) const ONE: &str = select!("WHERE order_id = $1 AND user_id = $2 AND stage > 0");
}

type Row = (
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn purchase_from_row(row: Row) -> Result<Purchase, StoreError> {
    let (order_id, user_id, stage, cancel_reason, lines, amount, currency, placed_at) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let (confirmed_at, brand, last4, refunded_at) = (row.8, row.9, row.10, row.11);
    let status = Stage::from_rank(stage)
        .and_then(Stage::status)
        .ok_or_else(|| corrupt("purchases.stage", stage))?;
    let lines: Vec<Line> = serde_json::from_str(lines.as_deref().unwrap_or_default())
        .map_err(|e| corrupt("purchases.lines", e))?;
    let (Some(amount), Some(currency), Some(placed_at)) = (amount, currency, placed_at) else {
        return Err(corrupt("purchases", "an order without its total or time"));
    };
    Ok(Purchase {
        order_id: Uuid::parse_str(&order_id).map_err(|e| corrupt("purchases.order_id", e))?,
        user_id,
        status,
        cancel_reason,
        lines,
        total: Money { amount, currency },
        payment: brand.zip(last4).map(|(brand, last4)| Card { brand, last4 }),
        placed_at: Instant::from_millis(placed_at),
        confirmed_at: confirmed_at.map(Instant::from_millis),
        refunded_at: refunded_at.map(Instant::from_millis),
    })
}
