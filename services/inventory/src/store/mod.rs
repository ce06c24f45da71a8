//! Inventory's storage, on SQLite or PostgreSQL: one schema and one set of SQL for both (text ids,
//! Unix milliseconds), run on whichever pool is configured. The engines differ only in how a
//! writing transaction begins (`BEGIN IMMEDIATE` on SQLite; READ COMMITTED suffices on PostgreSQL,
//! as every stock change is a single conditional `UPDATE`), both `souk_chassis::in_write_tx!`.
//!
//! Every change of stock is a conditional `UPDATE` inside a transaction, so the database, not this
//! process, decides who gets the last unit: several instances may share one database. Stock rows
//! are always locked in product-id order, after the reservation's own row, so two transactions
//! never wait on each other in opposite orders.

mod inline;
mod products;

use std::future::Future;
use std::time::Duration;

use souk_chassis::Database;
use souk_chassis::db::inline::{SqliteWriter, execute_numbered};
use souk_chassis::db::{DatabaseConfig, DbError, Migrations, Reads};
use souk_chassis::{in_write_tx, on_pool};
use sqlx::Row;
use uuid::Uuid;

use crate::domain::{
    Adjustment, Line, Lines, Reservation, ReservationState, Step, Stock, Timestamp,
};

pub use products::{InboxEntry, KnownProduct, Learned, NewProduct, Retired};

/// Inventory's own schema, written once: it uses nothing that differs between the engines.
const SCHEMA: (i64, &str, &str) = (
    1,
    "inventory",
    include_str!("../../migrations/0001_inventory.sql"),
);

/// Products the catalog deleted, kept out of sale.
const RETIRED: (i64, &str, &str) = (
    2,
    "retired products",
    include_str!("../../migrations/0002_retired_products.sql"),
);

/// Stock versions and administrators' adjustments (issue 16), the same on both engines.
const VERSIONS: (i64, &str, &str) = (
    3,
    "stock versions and adjustments",
    include_str!("../../migrations/0003_stock_versions.sql"),
);

/// Retention: finished reservations found by age (issue 16), the same on both engines.
const RETENTION: (i64, &str, &str) = (
    4,
    "finished reservations by age",
    include_str!("../../migrations/0004_retention.sql"),
);

/// Inventory's migrations for both engines: its schema, the inbox of the events it consumes,
/// retired products, stock versions, the inbox's retention and its own.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        SCHEMA,
        souk_chassis::events::INBOX_MIGRATION_SQLITE,
        RETIRED,
        VERSIONS,
        souk_chassis::events::INBOX_RETENTION_MIGRATION_SQLITE,
        RETENTION,
    ],
    postgres: &[
        SCHEMA,
        souk_chassis::events::INBOX_MIGRATION_POSTGRES,
        RETIRED,
        VERSIONS,
        souk_chassis::events::INBOX_RETENTION_MIGRATION_POSTGRES,
        RETENTION,
    ],
};

/// How often a transaction the database refused for contention (SQLite busy past its timeout, a
/// PostgreSQL deadlock) is tried in all.
const ATTEMPTS: u32 = 5;

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// SQLite's own connections (the hot reads', the writer's) failed.
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
    /// A concurrent transaction changed what this one read; trying again will see it.
    #[error("a concurrent change got in the way")]
    Contended,
}

impl StoreError {
    /// Whether the database refused for contention (busy, deadlock) even after the store's own
    /// retries: worth a 503 and a retry by the caller, not a 500.
    pub fn is_contention(&self) -> bool {
        self.is_transient()
    }
}

/// Why a reservation was not made.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// These products lack the units asked for (or are unknown); nothing was reserved.
    #[error("not enough stock")]
    OutOfStock(Vec<Uuid>),
    /// The order already has a reservation with other lines (or a tombstone): here it is.
    #[error("the order already has another reservation")]
    Conflict(Reservation),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a reservation could not be released or committed.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// No reservation for that order.
    #[error("no such reservation")]
    NotFound,
    /// The hold lapsed and these products no longer have its units: nothing was sold.
    #[error("the hold lapsed and its units are gone")]
    OutOfStock(Vec<Uuid>),
    /// The reservation reached a final state from which this step is refused: here it is.
    #[error("the reservation is {}", .0.state.as_str())]
    Conflict(Reservation),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ReserveError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

impl From<sqlx::Error> for TransitionError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

impl From<rusqlite::Error> for ReserveError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Store(err.into())
    }
}

impl From<rusqlite::Error> for TransitionError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Store(err.into())
    }
}

/// What a conditional set of the units on sale came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    /// Set: the stock now.
    Set(Stock),
    /// The stock changed since the version named: nothing set; the stock as it stands.
    Stale(Stock),
    /// No product has that SKU.
    NotFound,
}

/// An adjustment made (or found again under its idempotency key), and the stock after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjusted {
    /// The adjustment.
    pub adjustment: Adjustment,
    /// The product's stock now.
    pub stock: Stock,
    /// `true` when it was made before, under the same key (nothing changed now).
    pub replayed: bool,
}

/// Why an adjustment was not made.
#[derive(Debug, thiserror::Error)]
pub enum AdjustError {
    /// No product has that SKU.
    #[error("no such product")]
    NotFound,
    /// Writing off more units than are on sale (held and sold ones cannot be written off): the
    /// stock as it stands.
    #[error("not that many units on sale")]
    Insufficient(Stock),
    /// The idempotency key was used for another adjustment of this product.
    #[error("the idempotency key was used for another adjustment")]
    KeyReused,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AdjustError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

impl Transient for AdjustError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Store(err) if err.is_transient())
    }
}

/// One adjustment to make.
#[derive(Debug, Clone, Copy)]
pub struct AdjustRequest<'a> {
    /// The product's SKU.
    pub sku: &'a str,
    /// Units received (positive) or written off (negative).
    pub delta: i64,
    /// Why.
    pub reason: &'a str,
    /// Who (the administrator's account id).
    pub actor: &'a str,
    /// The request's `Idempotency-Key`, if any: a repeat answers the first adjustment.
    pub key: Option<&'a str>,
}

/// What a commit does with a hold that lapsed (expired, or past its `expires_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapsed {
    /// Sell its units anyway if they are still on sale: the checkout saga's synchronous commit,
    /// after a capture that came late. Lacking units: [`TransitionError::OutOfStock`].
    TakeAgain,
    /// Refuse it ([`TransitionError::Conflict`]): recording a confirmation, which never sells
    /// anything by itself.
    Refuse,
}

/// A reservation as it now stands, and whether this call made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The reservation.
    pub reservation: Reservation,
    /// `false` when it existed already with the same lines (a replay).
    pub created: bool,
}

/// Reads order `$order`'s reservation and lines on connection `$conn`: `Option<Reservation>`.
macro_rules! fetch_reservation {
    ($conn:ident, $order:expr) => {{
        let order: Uuid = $order;
        let key = order.to_string();
        let row = sqlx::query(sql::RESERVATION)
            .bind(&key)
            .fetch_optional(&mut *$conn)
            .await?;
        match row {
            None => None,
            Some(row) => {
                let state: String = row.try_get("state")?;
                let expires_at: Option<i64> = row.try_get("expires_at")?;
                let lines = sqlx::query(sql::LINES)
                    .bind(&key)
                    .fetch_all(&mut *$conn)
                    .await?
                    .iter()
                    .map(line_from_row)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Some(reservation_from(order, state, expires_at, lines)?)
            }
        }
    }};
}

/// A reservation from its stored row (`state`, `expires_at`) and lines, on either path.
fn reservation_from(
    order_id: Uuid,
    state: String,
    expires_at: Option<i64>,
    lines: Vec<Line>,
) -> Result<Reservation, StoreError> {
    Ok(Reservation {
        order_id,
        state: ReservationState::parse(&state).ok_or(StoreError::Corrupt {
            column: "state",
            reason: state,
        })?,
        expires_at: expires_at.map(Timestamp::from_millis),
        lines: Lines::stored(lines),
    })
}

/// Moves order `$order`'s hold to `$to` if `$transition` (an `UPDATE reservations` bound as
/// order, state, now) matches it, and applies `$stock` (bound as product, quantity, now) to each
/// of its lines. Evaluates to whether the hold moved.
macro_rules! finish_hold {
    ($tx:ident, $order:expr, $transition:expr, $to:expr, $stock:expr, $now:expr) => {{
        let key = $order.to_string();
        let now = $now.millis();
        let moved = sqlx::query($transition)
            .bind(&key)
            .bind($to.as_str())
            .bind(now)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if moved == 1 {
            let lines = sqlx::query(sql::LINES)
                .bind(&key)
                .fetch_all(&mut *$tx)
                .await?;
            for row in &lines {
                let line = line_from_row(row)?;
                let changed = sqlx::query($stock)
                    .bind(line.product_id.to_string())
                    .bind(line.quantity)
                    .bind(now)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                if changed != 1 {
                    return Err(StoreError::Corrupt {
                        column: "reservation_lines.product_id",
                        reason: format!("no stock row for {}", line.product_id),
                    }
                    .into());
                }
            }
        }
        moved == 1
    }};
}

/// Inventory's store.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// The hot reads' path (a product's stock): SQLite's read connections, or PostgreSQL's pool.
    reads: Reads,
    /// On SQLite, the checkout's stock changes (reserve, commit, release) run on the chassis'
    /// writer (`inline.rs`); everything else, and PostgreSQL, on the pool.
    writer: Option<SqliteWriter>,
}

impl Store {
    /// Connects to the configured database and brings its schema up to date.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, DbError> {
        let db = Database::connect(config).await?;
        db.migrate(&MIGRATIONS).await?;
        let reads = Reads::open(&db)?;
        let writer = match &db {
            Database::Sqlite(pool) => Some(SqliteWriter::open(pool).map_err(DbError::OpenInline)?),
            Database::Postgres(_) => None,
        };
        Ok(Self { db, reads, writer })
    }

    /// The underlying pool (for readiness checks).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Starts counting a product with `available` units on sale. Does nothing when the product
    /// or its SKU is known already (so instances syncing together are safe); returns whether it
    /// was added.
    pub async fn add_product(
        &self,
        product_id: Uuid,
        sku: &str,
        available: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let _turn = self.db.write_turn().await?;
        let added = on_pool!(&self.db, |pool| sqlx::query(sql::ADD_PRODUCT)
            .bind(product_id.to_string())
            .bind(sku)
            .bind(available)
            .bind(now.millis())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(added == 1)
    }

    /// One product's stock, unless it is retired.
    pub async fn stock(&self, product_id: Uuid) -> Result<Option<Stock>, StoreError> {
        Ok(self.stock_of(&[product_id]).await?.pop())
    }

    /// The stock of those of `ids` that are known and not retired, in no particular order.
    pub async fn stock_of(&self, ids: &[Uuid]) -> Result<Vec<Stock>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match &self.reads {
            Reads::Sqlite(reads) => {
                // One statement for any number of ids: they are bound as one JSON array.
                let sql = "SELECT product_id, sku, available, reserved, sold, received, version \
                     FROM stock WHERE retired_at IS NULL \
                     AND product_id IN (SELECT value FROM json_each(?1))";
                let ids =
                    serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
                        .unwrap_or_else(|_| "[]".into());
                reads.read(|connection| {
                    let mut statement = connection.prepare_cached(sql)?;
                    let mut rows = statement.query([ids])?;
                    let mut found = Vec::new();
                    while let Some(row) = rows.next()? {
                        found.push(Stock {
                            product_id: parse_id(&row.get::<_, String>(0)?)?,
                            sku: row.get(1)?,
                            available: row.get(2)?,
                            reserved: row.get(3)?,
                            sold: row.get(4)?,
                            received: row.get(5)?,
                            version: row.get(6)?,
                        });
                    }
                    Ok(found)
                })
            }
            Reads::Postgres(pool) => {
                // Only placeholders are formatted into the text; the ids are bound.
                let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
                let sql = format!(
                    "SELECT {} FROM stock WHERE retired_at IS NULL AND product_id IN ({})",
                    sql::STOCK_COLUMNS,
                    placeholders.join(", ")
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in ids {
                    query = query.bind(id.to_string());
                }
                let rows = query.fetch_all(pool).await?;
                rows.iter().map(stock_from_row).collect()
            }
        }
    }

    /// Every product's stock, by product id, retired ones included (for checks and reports: their
    /// books stay).
    pub async fn all_stock(&self) -> Result<Vec<Stock>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM stock ORDER BY product_id",
            sql::STOCK_COLUMNS
        ));
        on_pool!(&self.db, |pool| {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter().map(stock_from_row).collect()
        })
    }

    /// The stock of the product on sale with `sku`.
    pub async fn stock_by_sku(&self, sku: &str) -> Result<Option<Stock>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM stock WHERE sku = $1 AND retired_at IS NULL",
            sql::STOCK_COLUMNS
        ));
        on_pool!(&self.db, |pool| {
            let row = sqlx::query(sql).bind(sku).fetch_optional(pool).await?;
            row.as_ref().map(stock_from_row).transpose()
        })
    }

    /// Sets the units on sale of the product with `sku` to `available`, if its stock is still at
    /// `version` (nothing reserved, released, sold or adjusted since the caller read it): what
    /// was received moves by the difference, reservations and sales stay.
    pub async fn set_available_if(
        &self,
        sku: &str,
        available: i64,
        version: i64,
        now: Timestamp,
    ) -> Result<SetOutcome, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE stock SET received = received - available + $2, available = $2, \
             version = version + 1, updated_at = $3 \
             WHERE sku = $1 AND version = $4 AND retired_at IS NULL RETURNING {}",
            sql::STOCK_COLUMNS
        ));
        let turn = self.db.write_turn().await?;
        let set = on_pool!(&self.db, |pool| {
            let row = sqlx::query(sql)
                .bind(sku)
                .bind(available)
                .bind(now.millis())
                .bind(version)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(stock_from_row).transpose()?
        });
        drop(turn);
        if let Some(stock) = set {
            return Ok(SetOutcome::Set(stock));
        }
        Ok(match self.stock_by_sku(sku).await? {
            Some(stock) => SetOutcome::Stale(stock),
            None => SetOutcome::NotFound,
        })
    }

    /// Records goods received or written off for the product with `request.sku`: what is on
    /// sale and what was received move by `delta` together, so holds and sales are never
    /// touched and no concurrent reservation can be lost. A repeat under the same idempotency key
    /// answers the first adjustment.
    pub async fn adjust(
        &self,
        request: AdjustRequest<'_>,
        now: Timestamp,
    ) -> Result<Adjusted, AdjustError> {
        retrying(|| self.try_adjust(request, now)).await
    }

    async fn try_adjust(
        &self,
        request: AdjustRequest<'_>,
        now: Timestamp,
    ) -> Result<Adjusted, AdjustError> {
        let adjust_sql = sqlx::AssertSqlSafe(format!(
            "UPDATE stock SET available = available + $2, received = received + $2, \
             version = version + 1, updated_at = $3 \
             WHERE sku = $1 AND available + $2 >= 0 AND retired_at IS NULL RETURNING {}",
            sql::STOCK_COLUMNS
        ));
        let stock_sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM stock WHERE sku = $1 AND retired_at IS NULL",
            sql::STOCK_COLUMNS
        ));
        in_write_tx!(&self.db, |tx| {
            let Some(current) = sqlx::query(stock_sql)
                .bind(request.sku)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(stock_from_row)
                .transpose()?
            else {
                return Err(AdjustError::NotFound);
            };
            if let Some(key) = request.key {
                let earlier = sqlx::query(sql::ADJUSTMENT_BY_KEY)
                    .bind(current.product_id.to_string())
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = earlier {
                    let adjustment = adjustment_from_row(&row)?;
                    if adjustment.delta != request.delta || adjustment.reason != request.reason {
                        return Err(AdjustError::KeyReused);
                    }
                    return Ok(Adjusted {
                        adjustment,
                        stock: current,
                        replayed: true,
                    });
                }
            }
            let Some(stock) = sqlx::query(adjust_sql)
                .bind(request.sku)
                .bind(request.delta)
                .bind(now.millis())
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(stock_from_row)
                .transpose()?
            else {
                return Err(AdjustError::Insufficient(current));
            };
            let adjustment = Adjustment {
                id: Uuid::now_v7(),
                product_id: stock.product_id,
                delta: request.delta,
                reason: request.reason.to_owned(),
                created_at: now,
            };
            let inserted = sqlx::query(sql::INSERT_ADJUSTMENT)
                .bind(adjustment.id.to_string())
                .bind(stock.product_id.to_string())
                .bind(&stock.sku)
                .bind(adjustment.delta)
                .bind(&adjustment.reason)
                .bind(request.actor)
                .bind(request.key)
                .bind(now.millis())
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                // The same key, committed by a concurrent request meanwhile: start again, and
                // find it.
                Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                    return Err(StoreError::Contended.into());
                }
                Err(err) => return Err(err.into()),
            }
            tx.commit().await?;
            Ok(Adjusted {
                adjustment,
                stock,
                replayed: false,
            })
        })
    }

    /// Sets the units on sale of the product with `sku` to `available`, whatever they were;
    /// what was received moves by the difference, reservations and sales stay. `None` when no
    /// product on sale has that SKU. (Administrators go through [`Store::set_available_if`].)
    pub async fn set_available(
        &self,
        sku: &str,
        available: i64,
        now: Timestamp,
    ) -> Result<Option<Stock>, StoreError> {
        // Every right-hand side reads the row as it was, on both engines.
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE stock SET received = received - available + $2, available = $2, \
             version = version + 1, updated_at = $3 WHERE sku = $1 AND retired_at IS NULL RETURNING {}",
            sql::STOCK_COLUMNS
        ));
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| {
            let row = sqlx::query(sql)
                .bind(sku)
                .bind(available)
                .bind(now.millis())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(stock_from_row).transpose()
        })
    }

    /// Order `order_id`'s reservation.
    pub async fn reservation(&self, order_id: Uuid) -> Result<Option<Reservation>, StoreError> {
        on_pool!(&self.db, |pool| {
            let mut conn = pool.acquire().await?;
            Ok(fetch_reservation!(conn, order_id))
        })
    }

    /// Holds `lines` for order `order_id` until `expires_at`: every line or none. Repeating the
    /// same reservation answers the one made; other lines for the same order are a conflict.
    pub async fn reserve(
        &self,
        order_id: Uuid,
        lines: &Lines,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Reserved, ReserveError> {
        retrying(|| self.try_reserve(order_id, lines, expires_at, now)).await
    }

    async fn try_reserve(
        &self,
        order_id: Uuid,
        lines: &Lines,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Reserved, ReserveError> {
        let key = order_id.to_string();
        let held = || Reserved {
            reservation: Reservation {
                order_id,
                state: ReservationState::Held,
                expires_at: Some(expires_at),
                lines: lines.clone(),
            },
            created: true,
        };
        if let Some(writer) = &self.writer {
            return writer
                .write(|tx| {
                    if let Some(existing) = inline::reservation(tx, order_id)? {
                        return replay(existing, lines);
                    }
                    let inserted = execute_numbered(
                        tx,
                        sql::INSERT_HOLD,
                        &[&key, &expires_at.millis(), &now.millis()],
                    )?;
                    if inserted == 0 {
                        let existing =
                            inline::reservation(tx, order_id)?.ok_or(StoreError::Contended)?;
                        return replay(existing, lines);
                    }
                    let mut lacking = Vec::new();
                    for line in lines.as_slice() {
                        let product = line.product_id.to_string();
                        let taken = execute_numbered(
                            tx,
                            sql::TAKE,
                            &[&product, &line.quantity, &now.millis()],
                        )?;
                        if taken == 0 {
                            lacking.push(line.product_id);
                        }
                    }
                    if !lacking.is_empty() {
                        // An error rolls back the units taken and the order's row.
                        return Err(ReserveError::OutOfStock(lacking));
                    }
                    for line in lines.as_slice() {
                        let product = line.product_id.to_string();
                        execute_numbered(tx, sql::INSERT_LINE, &[&key, &product, &line.quantity])?;
                    }
                    Ok(held())
                })
                .await;
        }
        in_write_tx!(&self.db, |tx| {
            if let Some(existing) = fetch_reservation!(tx, order_id) {
                return replay(existing, lines);
            }
            // The order's row first: a concurrent duplicate waits here (PostgreSQL) and then
            // finds it, instead of both taking stock.
            let inserted = sqlx::query(sql::INSERT_HOLD)
                .bind(&key)
                .bind(expires_at.millis())
                .bind(now.millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                let existing = fetch_reservation!(tx, order_id).ok_or(StoreError::Contended)?;
                return replay(existing, lines);
            }
            let mut lacking = Vec::new();
            for line in lines.as_slice() {
                let taken = sqlx::query(sql::TAKE)
                    .bind(line.product_id.to_string())
                    .bind(line.quantity)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if taken == 0 {
                    lacking.push(line.product_id);
                }
            }
            if !lacking.is_empty() {
                // Dropping the transaction rolls back the units taken and the order's row.
                return Err(ReserveError::OutOfStock(lacking));
            }
            for line in lines.as_slice() {
                sqlx::query(sql::INSERT_LINE)
                    .bind(&key)
                    .bind(line.product_id.to_string())
                    .bind(line.quantity)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(held())
        })
    }

    /// Gives a hold's units back (the order was cancelled). Released already: no change.
    /// Expired: becomes `released` (its units went back already), so a late commit can never
    /// take them again for a cancelled order. An order never seen gets a `released` tombstone,
    /// so a late reservation for it is refused. Committed: refused.
    pub async fn release(
        &self,
        order_id: Uuid,
        now: Timestamp,
    ) -> Result<Reservation, TransitionError> {
        retrying(|| self.try_release(order_id, now)).await
    }

    async fn try_release(
        &self,
        order_id: Uuid,
        now: Timestamp,
    ) -> Result<Reservation, TransitionError> {
        if let Some(writer) = &self.writer {
            // The outcome rides inside `Ok` so that the writer commits what was done even when
            // the answer is a refusal (as `tx.commit()` before returning does below).
            return writer
                .write(|tx| {
                    let released = inline::finish_hold(
                        tx,
                        order_id,
                        sql::HOLD_TO,
                        ReservationState::Released,
                        sql::GIVE_BACK,
                        now,
                    )?;
                    if !released {
                        let key = order_id.to_string();
                        execute_numbered(tx, sql::EXPIRED_TO_RELEASED, &[&key, &now.millis()])?;
                        let tombstone =
                            execute_numbered(tx, sql::INSERT_TOMBSTONE, &[&key, &now.millis()])?;
                        if tombstone == 0 {
                            let existing =
                                inline::reservation(tx, order_id)?.ok_or(StoreError::Contended)?;
                            return match existing.state.release() {
                                Step::AlreadyDone => Ok(Ok(existing)),
                                Step::Refused => Ok(Err(TransitionError::Conflict(existing))),
                                // A reservation was made between our two statements: roll
                                // back and start again.
                                Step::Apply => Err(StoreError::Contended),
                            };
                        }
                    }
                    let current =
                        inline::reservation(tx, order_id)?.ok_or(StoreError::Contended)?;
                    Ok::<_, StoreError>(Ok(current))
                })
                .await?;
        }
        in_write_tx!(&self.db, |tx| {
            let released = finish_hold!(
                tx,
                order_id,
                sql::HOLD_TO,
                ReservationState::Released,
                sql::GIVE_BACK,
                now
            );
            if !released {
                // A lapsed hold: its units went back when it expired; releasing it is final.
                sqlx::query(sql::EXPIRED_TO_RELEASED)
                    .bind(order_id.to_string())
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?;
                let tombstone = sqlx::query(sql::INSERT_TOMBSTONE)
                    .bind(order_id.to_string())
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if tombstone == 0 {
                    let existing = fetch_reservation!(tx, order_id).ok_or(StoreError::Contended)?;
                    return match existing.state.release() {
                        Step::AlreadyDone => {
                            // Keeps a lapsed hold's move to `released`, made above.
                            tx.commit().await?;
                            Ok(existing)
                        }
                        Step::Refused => Err(TransitionError::Conflict(existing)),
                        // A reservation was made between our two statements: start again.
                        Step::Apply => Err(StoreError::Contended.into()),
                    };
                }
            }
            let current = fetch_reservation!(tx, order_id).ok_or(StoreError::Contended)?;
            tx.commit().await?;
            Ok(current)
        })
    }

    /// Turns a hold into a sale (the order was confirmed). Committed already: no change.
    /// Released: refused. Expired — including a hold past its `expires_at` that the expiry loop
    /// has not reached yet, which is expired here and now — sold anyway from what is on sale
    /// when `lapsed` says [`Lapsed::TakeAgain`] and every line's units are there (else
    /// [`TransitionError::OutOfStock`], nothing sold), refused otherwise. Unknown: not found.
    pub async fn commit(
        &self,
        order_id: Uuid,
        now: Timestamp,
        lapsed: Lapsed,
    ) -> Result<Reservation, TransitionError> {
        retrying(|| self.try_commit(order_id, now, lapsed)).await
    }

    async fn try_commit(
        &self,
        order_id: Uuid,
        now: Timestamp,
        lapsed: Lapsed,
    ) -> Result<Reservation, TransitionError> {
        if let Some(writer) = &self.writer {
            // As in `try_release`: what was done is committed even when the answer is a refusal.
            let outcome = writer
                .write(|tx| {
                    let _lapsed = inline::finish_hold(
                        tx,
                        order_id,
                        sql::LAPSED_HOLD_TO,
                        ReservationState::Expired,
                        sql::GIVE_BACK,
                        now,
                    )?;
                    let _sold = inline::finish_hold(
                        tx,
                        order_id,
                        sql::HOLD_TO,
                        ReservationState::Committed,
                        sql::SELL,
                        now,
                    )?;
                    let Some(mut current) = inline::reservation(tx, order_id)? else {
                        return Ok(Err(TransitionError::NotFound));
                    };
                    if current.state == ReservationState::Expired && lapsed == Lapsed::TakeAgain {
                        let mut taken = Vec::new();
                        let mut lacking = Vec::new();
                        for line in current.lines.as_slice() {
                            let product = line.product_id.to_string();
                            let sold = execute_numbered(
                                tx,
                                sql::TAKE_AND_SELL,
                                &[&product, &line.quantity, &now.millis()],
                            )?;
                            if sold == 1 {
                                taken.push(*line);
                            } else {
                                lacking.push(line.product_id);
                            }
                        }
                        if !lacking.is_empty() {
                            // Put back what was taken, keeping the expiry above.
                            for line in &taken {
                                let product = line.product_id.to_string();
                                execute_numbered(
                                    tx,
                                    sql::UNSELL,
                                    &[&product, &line.quantity, &now.millis()],
                                )?;
                            }
                            return Ok(Err(TransitionError::OutOfStock(lacking)));
                        }
                        let key = order_id.to_string();
                        execute_numbered(tx, sql::EXPIRED_TO_COMMITTED, &[&key, &now.millis()])?;
                        current =
                            inline::reservation(tx, order_id)?.ok_or(StoreError::Contended)?;
                    }
                    Ok::<_, StoreError>(Ok(current))
                })
                .await??;
            return match outcome.state.commit() {
                Step::Refused => Err(TransitionError::Conflict(outcome)),
                Step::AlreadyDone => Ok(outcome),
                Step::Apply => Err(StoreError::Contended.into()),
            };
        }
        in_write_tx!(&self.db, |tx| {
            let _lapsed = finish_hold!(
                tx,
                order_id,
                sql::LAPSED_HOLD_TO,
                ReservationState::Expired,
                sql::GIVE_BACK,
                now
            );
            let _sold = finish_hold!(
                tx,
                order_id,
                sql::HOLD_TO,
                ReservationState::Committed,
                sql::SELL,
                now
            );
            let mut current = fetch_reservation!(tx, order_id).ok_or(TransitionError::NotFound)?;
            if current.state == ReservationState::Expired && lapsed == Lapsed::TakeAgain {
                let mut taken = Vec::new();
                let mut lacking = Vec::new();
                for line in current.lines.as_slice() {
                    let sold = sqlx::query(sql::TAKE_AND_SELL)
                        .bind(line.product_id.to_string())
                        .bind(line.quantity)
                        .bind(now.millis())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if sold == 1 {
                        taken.push(*line);
                    } else {
                        lacking.push(line.product_id);
                    }
                }
                if !lacking.is_empty() {
                    // Put back what was taken, keeping the expiry above: all lines or none.
                    for line in &taken {
                        sqlx::query(sql::UNSELL)
                            .bind(line.product_id.to_string())
                            .bind(line.quantity)
                            .bind(now.millis())
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    return Err(TransitionError::OutOfStock(lacking));
                }
                sqlx::query(sql::EXPIRED_TO_COMMITTED)
                    .bind(order_id.to_string())
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?;
                current = fetch_reservation!(tx, order_id).ok_or(StoreError::Contended)?;
            }
            // Commit even when refusing: an expiry made above must stick.
            tx.commit().await?;
            match current.state.commit() {
                Step::Refused => Err(TransitionError::Conflict(current)),
                Step::AlreadyDone => Ok(current),
                // Still held after a commit that matched nothing cannot be: try again.
                Step::Apply => Err(StoreError::Contended.into()),
            }
        })
    }

    /// Deletes up to `limit` reservations that reached their end (committed, released — tombstones
    /// too — or expired) before `before`, with their lines; returns how many. Holds are never
    /// touched.
    pub async fn purge_finished(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let sql = "SELECT order_id FROM reservations WHERE state <> 'held' AND updated_at < $1 \
                   ORDER BY updated_at LIMIT $2";
        let ids: Vec<String> = on_pool!(&self.db, |pool| {
            sqlx::query_scalar(sql)
                .bind(before.millis())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        if ids.is_empty() {
            return Ok(0);
        }
        in_write_tx!(&self.db, |tx| {
            for id in &ids {
                sqlx::query("DELETE FROM reservation_lines WHERE order_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM reservations WHERE order_id = $1 AND state <> 'held'")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(ids.len() as u64)
    }

    /// Expires up to `limit` holds whose `expires_at` has passed, giving their units back; returns
    /// how many. Each is its own transaction, conditional on still being held, so several
    /// instances may run this at once.
    pub async fn expire_due(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let sql = "SELECT order_id FROM reservations WHERE state = 'held' AND expires_at <= $1 \
                   ORDER BY expires_at LIMIT $2";
        let due: Vec<String> = on_pool!(&self.db, |pool| {
            sqlx::query_scalar(sql)
                .bind(now.millis())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        let mut expired = 0;
        for order in due {
            let order_id = parse_id(&order)?;
            if retrying(|| self.try_expire(order_id, now)).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }

    async fn try_expire(&self, order_id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
        in_write_tx!(&self.db, |tx| {
            let expired = finish_hold!(
                tx,
                order_id,
                sql::LAPSED_HOLD_TO,
                ReservationState::Expired,
                sql::GIVE_BACK,
                now
            );
            tx.commit().await?;
            Ok(expired)
        })
    }
}

/// A reservation met again: the same lines are a replay, other lines a conflict.
fn replay(existing: Reservation, lines: &Lines) -> Result<Reserved, ReserveError> {
    if existing.lines == *lines {
        Ok(Reserved {
            reservation: existing,
            created: false,
        })
    } else {
        Err(ReserveError::Conflict(existing))
    }
}

/// Errors worth another try of the whole transaction.
trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Contended => true,
            Self::Database(err) => souk_chassis::db::is_contention(err),
            Self::Inline(_) | Self::Corrupt { .. } => false,
        }
    }
}

impl Transient for ReserveError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Store(err) if err.is_transient())
    }
}

impl Transient for TransitionError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Store(err) if err.is_transient())
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has been tried [`ATTEMPTS`] times.
async fn retrying<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pause = Duration::from_millis(2);
    for tried in 1..ATTEMPTS {
        match attempt().await {
            Err(err) if err.is_transient() => {
                tracing::debug!(%err, tried, "transaction contended; trying again");
                tokio::time::sleep(pause).await;
                pause *= 4;
            }
            done => return done,
        }
    }
    attempt().await
}

fn parse_id(value: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(value).map_err(|e| StoreError::Corrupt {
        column: "product_id",
        reason: e.to_string(),
    })
}

fn stock_from_row<'r, R>(row: &'r R) -> Result<Stock, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("product_id")?;
    Ok(Stock {
        product_id: parse_id(&id)?,
        sku: row.try_get("sku")?,
        available: row.try_get("available")?,
        reserved: row.try_get("reserved")?,
        sold: row.try_get("sold")?,
        received: row.try_get("received")?,
        version: row.try_get("version")?,
    })
}

fn adjustment_from_row<'r, R>(row: &'r R) -> Result<Adjustment, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let product: String = row.try_get("product_id")?;
    Ok(Adjustment {
        id: parse_id(&id)?,
        product_id: parse_id(&product)?,
        delta: row.try_get("delta")?,
        reason: row.try_get("reason")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn line_from_row<'r, R>(row: &'r R) -> Result<Line, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("product_id")?;
    Ok(Line {
        product_id: parse_id(&id)?,
        quantity: row.try_get("quantity")?,
    })
}

/// SQL shared by both engines (sqlx binds `$N` on SQLite too).
mod sql {
    pub(super) const STOCK_COLUMNS: &str =
        "product_id, sku, available, reserved, sold, received, version";

    pub(super) const ADJUSTMENT_BY_KEY: &str = "SELECT id, product_id, delta, reason, created_at \
         FROM stock_adjustments WHERE product_id = $1 AND idempotency_key = $2";

    pub(super) const INSERT_ADJUSTMENT: &str = "INSERT INTO stock_adjustments \
         (id, product_id, sku, delta, reason, actor, idempotency_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

    pub(super) const ADD_PRODUCT: &str = "INSERT INTO stock (product_id, sku, available, reserved, sold, received, updated_at) \
         VALUES ($1, $2, $3, 0, 0, $3, $4) ON CONFLICT DO NOTHING";

    pub(super) const RESERVATION: &str =
        "SELECT state, expires_at FROM reservations WHERE order_id = $1";

    pub(super) const LINES: &str = "SELECT product_id, quantity FROM reservation_lines \
         WHERE order_id = $1 ORDER BY product_id";

    pub(super) const INSERT_HOLD: &str = "INSERT INTO reservations (order_id, state, expires_at, created_at, updated_at) \
         VALUES ($1, 'held', $2, $3, $3) ON CONFLICT (order_id) DO NOTHING";

    pub(super) const INSERT_TOMBSTONE: &str = "INSERT INTO reservations (order_id, state, expires_at, created_at, updated_at) \
         VALUES ($1, 'released', NULL, $2, $2) ON CONFLICT (order_id) DO NOTHING";

    pub(super) const INSERT_LINE: &str =
        "INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES ($1, $2, $3)";

    /// Takes units if that many are available: the one place stock can run out. A retired
    /// product has none for sale.
    pub(super) const TAKE: &str = "UPDATE stock SET available = available - $2, reserved = reserved + $2, \
         version = version + 1, updated_at = $3 \
         WHERE product_id = $1 AND available >= $2 AND retired_at IS NULL";

    pub(super) const GIVE_BACK: &str = "UPDATE stock SET available = available + $2, reserved = reserved - $2, \
         version = version + 1, updated_at = $3 \
         WHERE product_id = $1";

    pub(super) const SELL: &str = "UPDATE stock SET reserved = reserved - $2, sold = sold + $2, \
         version = version + 1, updated_at = $3 \
         WHERE product_id = $1";

    /// Sells units straight from what is on sale (a lapsed hold's commit), if they are there
    /// (a retired product has none for sale).
    pub(super) const TAKE_AND_SELL: &str = "UPDATE stock SET available = available - $2, sold = sold + $2, \
         version = version + 1, updated_at = $3 \
         WHERE product_id = $1 AND available >= $2 AND retired_at IS NULL";

    pub(super) const UNSELL: &str = "UPDATE stock SET available = available + $2, sold = sold - $2, \
         version = version + 1, updated_at = $3 \
         WHERE product_id = $1";

    pub(super) const EXPIRED_TO_COMMITTED: &str = "UPDATE reservations SET state = 'committed', updated_at = $2 \
         WHERE order_id = $1 AND state = 'expired'";

    pub(super) const EXPIRED_TO_RELEASED: &str = "UPDATE reservations SET state = 'released', updated_at = $2 \
         WHERE order_id = $1 AND state = 'expired'";

    pub(super) const HOLD_TO: &str = "UPDATE reservations SET state = $2, updated_at = $3 \
         WHERE order_id = $1 AND state = 'held'";

    pub(super) const LAPSED_HOLD_TO: &str = "UPDATE reservations SET state = $2, updated_at = $3 \
         WHERE order_id = $1 AND state = 'held' AND expires_at <= $3";
}
