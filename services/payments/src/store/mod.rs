//! Payments' storage, on SQLite or PostgreSQL: one schema and one set of SQL for both (text ids,
//! Unix milliseconds), run on whichever pool is configured. The engines differ only in how a
//! writing transaction begins (`souk_chassis::in_write_tx!`).
//!
//! A charge happens once per order because of one constraint: `payments.order_id` is UNIQUE, and
//! the row is inserted `pending` (its own statement, committed) *before* the processor is asked.
//! Every later change of a pending row names the attempt that owns it (`attempt_at`, the lease,
//! written and compared by the database's clock), so an attempt that lost its lease changes
//! nothing.
//!
//! Recording an outcome — a capture, a decline, a refund — appends its event (`crate::events`)
//! to the chassis' outbox in the same transaction, so an event exists exactly when its change
//! was committed.
//!
//! The simulated processor's tables live in the same database but are not this module's: only
//! `crate::processor` touches them.

use souk_chassis::Database;
use souk_chassis::db::{DatabaseConfig, DbError, Migrations};
use souk_chassis::events::{
    OUTBOX_META_MIGRATION_POSTGRES, OUTBOX_META_MIGRATION_SQLITE, OUTBOX_MIGRATION_POSTGRES,
    OUTBOX_MIGRATION_SQLITE,
};
use souk_chassis::on_pool;
use sqlx::Row;
use uuid::Uuid;

use crate::domain::{
    Brand, ChargeOutcome, ChargeRequest, Currency, DeclineCode, Expiry, Money, Payment,
    PaymentMethod, PaymentStatus, Refund, Timestamp,
};
use crate::events;

/// Payments' own tables, then the simulated processor's: one schema for both engines.
macro_rules! schema {
    ($outbox:expr, $meta:expr) => {
        &[
            (
                1,
                "payments",
                include_str!("../../migrations/0001_payments.sql"),
            ),
            (
                2,
                "processor",
                include_str!("../../migrations/0002_processor.sql"),
            ),
            $outbox,
            (
                3,
                "cancelled payments index",
                include_str!("../../migrations/0003_cancelled_index.sql"),
            ),
            $meta,
        ]
    };
}

/// Payments' migrations for both engines, embedded in the binary: its schema, then the chassis'
/// outbox table (which differs per engine).
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: schema!(OUTBOX_MIGRATION_SQLITE, OUTBOX_META_MIGRATION_SQLITE),
    postgres: schema!(OUTBOX_MIGRATION_POSTGRES, OUTBOX_META_MIGRATION_POSTGRES),
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

impl StoreError {
    /// Whether the database refused for contention (SQLite busy past its timeout, a PostgreSQL
    /// deadlock): worth a 503 and a retry by the caller, not a 500.
    pub fn is_contention(&self) -> bool {
        matches!(self, Self::Database(err) if souk_chassis::db::is_contention(err))
    }
}

/// What claiming an order's payment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A new `pending` payment: this caller owns its attempt and must ask the processor.
    New(Payment),
    /// The order already has a payment (or a tombstone): here it is, as it stands.
    Existing(Payment),
}

/// Runs `$body` with `$tx`, a writing transaction (READ COMMITTED suffices on PostgreSQL: every
/// change is a single conditional statement), and `$append`, the engine's outbox append.
macro_rules! in_write_tx {
    ($db:expr, |$tx:ident, $append:ident| $body:expr) => {
        souk_chassis::in_write_tx!($db, |$tx, $append = (souk_chassis::events::append_sqlite, souk_chassis::events::append_postgres)| $body)
    };
}

/// Payments' store.
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

    /// The underlying pool (for readiness checks, and for the simulated processor's tables).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Stores a registered card.
    pub async fn add_method(&self, method: &PaymentMethod) -> Result<(), StoreError> {
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(sql::INSERT_METHOD)
            .bind(method.id.to_string())
            .bind(&method.owner)
            .bind(method.brand.as_str())
            .bind(&method.last4)
            .bind(method.expiry.month)
            .bind(method.expiry.year)
            .bind(&method.token)
            .bind(method.created_at.millis())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// One payment method, whoever owns it.
    pub async fn method(&self, id: Uuid) -> Result<Option<PaymentMethod>, StoreError> {
        let sql = "SELECT * FROM payment_methods WHERE id = $1";
        on_pool!(&self.db, |pool| {
            let row = sqlx::query(sql)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(method_from_row).transpose()
        })
    }

    /// `owner`'s payment methods, oldest first, `limit` at most.
    pub async fn methods_of(
        &self,
        owner: &str,
        limit: u32,
    ) -> Result<Vec<PaymentMethod>, StoreError> {
        let sql = "SELECT * FROM payment_methods WHERE owner = $1 ORDER BY id LIMIT $2";
        on_pool!(&self.db, |pool| {
            let rows = sqlx::query(sql)
                .bind(owner)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter().map(method_from_row).collect()
        })
    }

    /// How many payment methods `owner` has.
    pub async fn count_methods(&self, owner: &str) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM payment_methods WHERE owner = $1";
        Ok(on_pool!(&self.db, |pool| sqlx::query_scalar(sql)
            .bind(owner)
            .fetch_one(pool)
            .await?))
    }

    /// Order `order_id`'s payment (or tombstone).
    pub async fn payment(&self, order_id: Uuid) -> Result<Option<Payment>, StoreError> {
        let sql = "SELECT * FROM payments WHERE order_id = $1";
        on_pool!(&self.db, |pool| {
            let row = sqlx::query(sql)
                .bind(order_id.to_string())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(payment_from_row).transpose()
        })
    }

    /// Now, by the database's clock, as SQL: every pending charge's lease (`attempt_at`) is
    /// written and compared with it, so instances whose clocks disagree (or jump) still agree on
    /// whose a charge is.
    fn now_sql(&self) -> &'static str {
        match self.db {
            Database::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Database::Postgres(_) => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Records a `pending` payment for `order_id` unless it has one: the step that makes every
    /// other attempt for the order find this one. One statement, committed on its own, before
    /// anyone asks the processor. Its lease starts now by the database's clock.
    pub async fn claim(
        &self,
        order_id: Uuid,
        request: &ChargeRequest,
    ) -> Result<Claim, StoreError> {
        let id = Uuid::now_v7();
        let sql = sqlx::AssertSqlSafe(sql::CLAIM.replace("{now}", self.now_sql()));
        let turn = self.db.write_turn().await?;
        let inserted = on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(id.to_string())
            .bind(order_id.to_string())
            .bind(&request.user_id)
            .bind(request.payment_method_id.to_string())
            .bind(request.amount.amount)
            .bind(request.amount.currency.as_str())
            .execute(pool)
            .await?
            .rows_affected());
        drop(turn);
        let payment = self.existing(order_id).await?;
        Ok(if inserted == 1 {
            Claim::New(payment)
        } else {
            Claim::Existing(payment)
        })
    }

    /// Takes over `payment`'s attempt if it was abandoned — begun at least `lease` ago by the
    /// database's clock: the new attempt's lease (its `attempt_at`) when this caller now owns it;
    /// `None` while the attempt may still be running, or when someone else moved it first.
    pub async fn take_over(
        &self,
        payment: &Payment,
        lease: std::time::Duration,
    ) -> Result<Option<Timestamp>, StoreError> {
        let now = self.now_sql();
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE payments SET attempt_at = {now} \
             WHERE order_id = $1 AND status = 'pending' AND attempt_at = $2 \
             AND attempt_at <= {now} - $3 RETURNING attempt_at"
        ));
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let _turn = self.db.write_turn().await?;
        let taken: Option<i64> = on_pool!(&self.db, |pool| sqlx::query_scalar(sql)
            .bind(payment.order_id.to_string())
            .bind(payment.attempt_at.millis())
            .bind(lease_ms)
            .fetch_optional(pool)
            .await?);
        Ok(taken.map(Timestamp::from_millis))
    }

    /// Deletes the payments of orders cancelled before any charge (tombstones) made more than
    /// `keep` ago by the database's clock; how many.
    pub async fn purge_tombstones(&self, keep: std::time::Duration) -> Result<u64, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "DELETE FROM payments WHERE status = 'cancelled' AND created_at < {} - $1",
            self.now_sql()
        ));
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let _turn = self.db.write_turn().await?;
        Ok(on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(keep_ms)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// Orders cancelled before any charge (tombstones, and charges settled as never made) within
    /// the last `window` by the database's clock, oldest first, `limit` at most: the ones whose
    /// late captures the sweep looks for.
    pub async fn recently_cancelled(
        &self,
        window: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT order_id FROM payments WHERE status = 'cancelled' AND created_at >= {} - $1 \
             ORDER BY created_at LIMIT $2",
            self.now_sql()
        ));
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let ids: Vec<String> = on_pool!(&self.db, |pool| sqlx::query_scalar(sql)
            .bind(window_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        ids.iter().map(|id| uuid(id, "payments.order_id")).collect()
    }

    /// Records the processor's answer for the attempt that began at `lease`, and its event
    /// (`payment_captured` or `payment_declined`) in the same transaction; `false` (no change, no
    /// event) when that attempt no longer owns the payment.
    pub async fn finish(
        &self,
        order_id: Uuid,
        lease: Timestamp,
        charge_id: &str,
        outcome: ChargeOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (status, code, captured_at) = match outcome {
            ChargeOutcome::Captured => (PaymentStatus::Captured, None, Some(now.millis())),
            ChargeOutcome::Declined(code) => (PaymentStatus::Declined, Some(code.as_str()), None),
        };
        let sql = "UPDATE payments SET status = $3, decline_code = $4, processor_charge_id = $5, captured_at = $6 \
                   WHERE order_id = $1 AND status = 'pending' AND attempt_at = $2";
        in_write_tx!(&self.db, |tx, append| {
            let moved = sqlx::query(sql)
                .bind(order_id.to_string())
                .bind(lease.millis())
                .bind(status.as_str())
                .bind(code)
                .bind(charge_id)
                .bind(captured_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved != 1 {
                return Ok(false);
            }
            let row = sqlx::query("SELECT * FROM payments WHERE order_id = $1")
                .bind(order_id.to_string())
                .fetch_one(&mut *tx)
                .await?;
            let payment = payment_from_row(&row)?;
            let request = payment
                .request
                .as_ref()
                .ok_or_else(|| corrupt("payments.user_id", "a charged payment has no request"))?;
            let row = sqlx::query("SELECT * FROM payment_methods WHERE id = $1")
                .bind(request.payment_method_id.to_string())
                .fetch_one(&mut *tx)
                .await?;
            let method = method_from_row(&row)?;
            let event = match outcome {
                ChargeOutcome::Captured => events::captured(&payment, request, &method, now),
                ChargeOutcome::Declined(code) => {
                    events::declined(&payment, request, &method, code, now)
                }
            };
            append(&mut tx, &event).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Forgets the pending payment of the attempt that began at `lease`: the processor took no
    /// money, so the next attempt starts afresh (and a refund finds nothing to refund).
    pub async fn abandon(&self, order_id: Uuid, lease: Timestamp) -> Result<bool, StoreError> {
        let sql =
            "DELETE FROM payments WHERE order_id = $1 AND status = 'pending' AND attempt_at = $2";
        let _turn = self.db.write_turn().await?;
        let deleted = on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(order_id.to_string())
            .bind(lease.millis())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(deleted == 1)
    }

    /// Turns the pending payment of the attempt that began at `lease` into a tombstone: the order
    /// is cancelled and the processor holds no charge for it.
    pub async fn cancel_pending(
        &self,
        order_id: Uuid,
        lease: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE payments SET status = 'cancelled' \
                   WHERE order_id = $1 AND status = 'pending' AND attempt_at = $2";
        let _turn = self.db.write_turn().await?;
        let moved = on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(order_id.to_string())
            .bind(lease.millis())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(moved == 1)
    }

    /// Records that order `order_id` is cancelled before any charge, unless it has a payment
    /// already. Returns the order's payment either way: the new tombstone, or what was there.
    pub async fn tombstone(&self, order_id: Uuid) -> Result<Claim, StoreError> {
        let now = self.now_sql();
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO payments (id, order_id, status, attempt_at, created_at) \
             VALUES ($1, $2, 'cancelled', {now}, {now}) ON CONFLICT (order_id) DO NOTHING"
        ));
        let _turn = self.db.write_turn().await?;
        let inserted = on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(Uuid::now_v7().to_string())
            .bind(order_id.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        let payment = self.existing(order_id).await?;
        Ok(if inserted == 1 {
            Claim::New(payment)
        } else {
            Claim::Existing(payment)
        })
    }

    /// Records `refund` of a captured payment (asked for by `user_id`), marks the payment
    /// refunded and appends `payment_refunded`, in one transaction. A payment has one refund:
    /// when it has one already, that one is returned and nothing more is recorded.
    pub async fn record_refund(
        &self,
        refund: &Refund,
        user_id: &str,
    ) -> Result<Refund, StoreError> {
        let order_id = refund.order_id.to_string();
        in_write_tx!(&self.db, |tx, append| {
            let inserted = sqlx::query(sql::INSERT_REFUND)
                .bind(refund.id.to_string())
                .bind(refund.payment_id.to_string())
                .bind(&order_id)
                .bind(refund.amount.amount)
                .bind(refund.amount.currency.as_str())
                .bind(&refund.processor_refund_id)
                .bind(refund.created_at.millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 1 {
                sqlx::query(
                    "UPDATE payments SET status = 'refunded', refunded_at = $2 \
                     WHERE order_id = $1 AND status = 'captured'",
                )
                .bind(&order_id)
                .bind(refund.created_at.millis())
                .execute(&mut *tx)
                .await?;
                append(&mut tx, &events::refunded(refund, user_id)).await?;
                tx.commit().await?;
            }
        });
        self.refund_of(refund.order_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                column: "refunds.order_id",
                reason: format!("the refund of order {} vanished", refund.order_id),
            })
    }

    /// Order `order_id`'s refund, if it has one.
    pub async fn refund_of(&self, order_id: Uuid) -> Result<Option<Refund>, StoreError> {
        let sql = "SELECT * FROM refunds WHERE order_id = $1";
        on_pool!(&self.db, |pool| {
            let row = sqlx::query(sql)
                .bind(order_id.to_string())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(refund_from_row).transpose()
        })
    }

    /// The payment just inserted or found by a conflicting insert: it exists.
    async fn existing(&self, order_id: Uuid) -> Result<Payment, StoreError> {
        self.payment(order_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                column: "payments.order_id",
                reason: format!("the payment of order {order_id} vanished"),
            })
    }
}

/// SQL shared by both engines (sqlx binds `$N` on SQLite too).
mod sql {
    pub(super) const INSERT_METHOD: &str = "INSERT INTO payment_methods \
         (id, owner, brand, last4, exp_month, exp_year, token, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

    /// `{now}` is the engine's clock expression.
    pub(super) const CLAIM: &str = "INSERT INTO payments \
         (id, order_id, status, user_id, payment_method_id, amount, currency, attempt_at, created_at) \
         VALUES ($1, $2, 'pending', $3, $4, $5, $6, {now}, {now}) ON CONFLICT (order_id) DO NOTHING";

    pub(super) const INSERT_REFUND: &str = "INSERT INTO refunds \
         (id, payment_id, order_id, amount, currency, processor_refund_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
}

fn corrupt(column: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        column,
        reason: reason.to_string(),
    }
}

fn uuid(value: &str, column: &'static str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(value).map_err(|e| corrupt(column, e))
}

fn money(amount: i64, currency: &str, column: &'static str) -> Result<Money, StoreError> {
    let currency = Currency::parse(currency).map_err(|e| corrupt(column, e))?;
    Money::positive(amount, currency).map_err(|e| corrupt(column, e))
}

fn method_from_row<'r, R>(row: &'r R) -> Result<PaymentMethod, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let brand: String = row.try_get("brand")?;
    Ok(PaymentMethod {
        id: uuid(&id, "payment_methods.id")?,
        owner: row.try_get("owner")?,
        brand: Brand::parse(&brand).ok_or_else(|| corrupt("payment_methods.brand", brand))?,
        last4: row.try_get("last4")?,
        expiry: Expiry {
            month: row.try_get("exp_month")?,
            year: row.try_get("exp_year")?,
        },
        token: row.try_get("token")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn payment_from_row<'r, R>(row: &'r R) -> Result<Payment, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let order_id: String = row.try_get("order_id")?;
    let status: String = row.try_get("status")?;
    let decline_code: Option<String> = row.try_get("decline_code")?;
    let user_id: Option<String> = row.try_get("user_id")?;
    let method: Option<String> = row.try_get("payment_method_id")?;
    let amount: Option<i64> = row.try_get("amount")?;
    let currency: Option<String> = row.try_get("currency")?;
    let request = match (user_id, method, amount, currency) {
        (Some(user_id), Some(method), Some(amount), Some(currency)) => Some(ChargeRequest {
            user_id,
            payment_method_id: uuid(&method, "payments.payment_method_id")?,
            amount: money(amount, &currency, "payments.amount")?,
        }),
        _ => None,
    };
    let millis = |column: &'static str| -> Result<Option<Timestamp>, StoreError> {
        Ok(row
            .try_get::<Option<i64>, _>(column)?
            .map(Timestamp::from_millis))
    };
    Ok(Payment {
        id: uuid(&id, "payments.id")?,
        order_id: uuid(&order_id, "payments.order_id")?,
        status: PaymentStatus::parse(&status).ok_or_else(|| corrupt("payments.status", status))?,
        request,
        decline_code: decline_code
            .map(|code| DeclineCode::parse(&code).ok_or_else(|| corrupt("decline_code", code)))
            .transpose()?,
        processor_charge_id: row.try_get("processor_charge_id")?,
        attempt_at: Timestamp::from_millis(row.try_get("attempt_at")?),
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        captured_at: millis("captured_at")?,
        refunded_at: millis("refunded_at")?,
    })
}

fn refund_from_row<'r, R>(row: &'r R) -> Result<Refund, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let payment_id: String = row.try_get("payment_id")?;
    let order_id: String = row.try_get("order_id")?;
    let currency: String = row.try_get("currency")?;
    Ok(Refund {
        id: uuid(&id, "refunds.id")?,
        payment_id: uuid(&payment_id, "refunds.payment_id")?,
        order_id: uuid(&order_id, "refunds.order_id")?,
        amount: money(row.try_get("amount")?, &currency, "refunds.amount")?,
        processor_refund_id: row.try_get("processor_refund_id")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}
