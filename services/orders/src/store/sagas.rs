//! Saga rows: claimed under a lease, and changed only by the lease's owner. Every write names
//! the owner (and the step it moves from), so an instance that lost its lease — it paused past
//! `lease_until` and another took over — changes nothing and stops.

use souk_chassis::db::inline::{bind_numbered, execute_numbered};
use souk_chassis::events::{Event, append_inline};
use souk_chassis::on_pool;
use uuid::Uuid;

use super::{Store, StoreError, in_write_tx, uuid};
use crate::domain::{CancelReason, OrderStatus, Step, Timestamp};

/// A saga as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaRow {
    /// Its order.
    pub order_id: Uuid,
    /// The step it runs next, or the end it reached.
    pub step: Step,
    /// Failed attempts at this step so far.
    pub attempts: u32,
    /// When reserving and charging give up.
    pub deadline_at: Timestamp,
    /// The last failure, for people reading the table.
    pub last_error: Option<String>,
    /// The trace the order was placed in (W3C `traceparent`), which the saga's spans continue.
    pub traceparent: Option<String>,
}

type SagaTuple = (
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
);
const SELECT_SAGA: &str = "SELECT order_id, step, cancel_reason, refund, attempts, deadline_at, \
     last_error, traceparent FROM sagas WHERE order_id = $1";

impl Store {
    /// Up to `limit` unfinished sagas that are due and that no live lease holds, most overdue
    /// first.
    pub async fn due_sagas(&self, now: Timestamp, limit: u32) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = on_pool!(&self.db, |pool| sqlx::query_scalar(
            "SELECT order_id FROM sagas WHERE step NOT IN ('confirmed', 'cancelled') \
             AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now.millis())
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        ids.iter().map(|id| uuid("sagas.order_id", id)).collect()
    }

    /// Takes the lease on `order_id`'s saga for `owner` until `lease_until`, if it is unfinished,
    /// due and unleased; returns it then.
    pub async fn claim_saga(
        &self,
        order_id: Uuid,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<SagaRow>, StoreError> {
        const CLAIM: &str = "UPDATE sagas SET lease_owner = $1, lease_until = $2 \
             WHERE order_id = $3 AND step NOT IN ('confirmed', 'cancelled') \
             AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until < $4)";
        let id = order_id.to_string();
        if let Some(writer) = &self.writer {
            // The claim and the read of what was claimed, in one turn.
            let row = writer
                .write(|tx| {
                    let claimed = execute_numbered(
                        tx,
                        CLAIM,
                        &[&owner, &lease_until.millis(), &id, &now.millis()],
                    )?;
                    if claimed != 1 {
                        return Ok(None);
                    }
                    let mut select = tx.prepare_cached(SELECT_SAGA)?;
                    bind_numbered(&mut select, &[&id])?;
                    let mut rows = select.raw_query();
                    rows.next()?
                        .map(|row| {
                            Ok::<_, rusqlite::Error>((
                                row.get(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get(4)?,
                                row.get(5)?,
                                row.get(6)?,
                                row.get(7)?,
                            ))
                        })
                        .transpose()
                })
                .await?;
            return row.map(saga_from_row).transpose();
        }
        let claimed = on_pool!(&self.db, |pool| sqlx::query(CLAIM)
            .bind(owner)
            .bind(lease_until.millis())
            .bind(&id)
            .bind(now.millis())
            .execute(pool)
            .await?
            .rows_affected());
        if claimed != 1 {
            return Ok(None);
        }
        self.saga(order_id).await
    }

    /// Order `order_id`'s saga as it stands.
    pub async fn saga(&self, order_id: Uuid) -> Result<Option<SagaRow>, StoreError> {
        let row: Option<SagaTuple> = on_pool!(&self.db, |pool| sqlx::query_as(SELECT_SAGA)
            .bind(order_id.to_string())
            .fetch_optional(pool)
            .await?);
        row.map(saga_from_row).transpose()
    }

    /// Extends `owner`'s lease before a remote call; `false` if it no longer holds it.
    pub async fn renew_lease(
        &self,
        order_id: Uuid,
        owner: &str,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        const RENEW: &str =
            "UPDATE sagas SET lease_until = $1 WHERE order_id = $2 AND lease_owner = $3";
        let id = order_id.to_string();
        let renewed = if let Some(writer) = &self.writer {
            writer
                .write(|tx| execute_numbered(tx, RENEW, &[&lease_until.millis(), &id, &owner]))
                .await?
                == 1
        } else {
            on_pool!(&self.db, |pool| sqlx::query(RENEW)
                .bind(lease_until.millis())
                .bind(&id)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected())
                == 1
        };
        Ok(renewed)
    }

    /// Records a failed attempt at `step`: tried again at `next_at`, the lease held until
    /// `lease_until`; `false` if `owner` lost the saga.
    #[allow(clippy::too_many_arguments)]
    pub async fn retry_step(
        &self,
        order_id: Uuid,
        owner: &str,
        step: Step,
        attempts: u32,
        next_at: Timestamp,
        lease_until: Timestamp,
        error: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        const RETRY: &str = "UPDATE sagas SET attempts = $1, next_attempt_at = $2, \
             lease_until = $3, last_error = $4, updated_at = $5 \
             WHERE order_id = $6 AND lease_owner = $7 AND step = $8";
        let id = order_id.to_string();
        let updated = if let Some(writer) = &self.writer {
            writer
                .write(|tx| {
                    execute_numbered(
                        tx,
                        RETRY,
                        &[
                            &i64::from(attempts),
                            &next_at.millis(),
                            &lease_until.millis(),
                            &error,
                            &now.millis(),
                            &id,
                            &owner,
                            &step.name(),
                        ],
                    )
                })
                .await?
                == 1
        } else {
            on_pool!(&self.db, |pool| sqlx::query(RETRY)
                .bind(i64::from(attempts))
                .bind(next_at.millis())
                .bind(lease_until.millis())
                .bind(error)
                .bind(now.millis())
                .bind(&id)
                .bind(owner)
                .bind(step.name())
                .execute(pool)
                .await?
                .rows_affected())
                == 1
        };
        Ok(updated)
    }

    /// Moves the saga from `from` to the unfinished step `to`, runnable at once; `false` if
    /// `owner` lost it.
    pub async fn advance(
        &self,
        order_id: Uuid,
        owner: &str,
        from: Step,
        to: Step,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        const ADVANCE: &str = "UPDATE sagas SET step = $1, cancel_reason = $2, refund = $3, \
             attempts = 0, next_attempt_at = $4, lease_until = $5, last_error = NULL, \
             updated_at = $4 WHERE order_id = $6 AND lease_owner = $7 AND step = $8";
        let id = order_id.to_string();
        let reason = to.reason().map(CancelReason::as_str);
        let updated = if let Some(writer) = &self.writer {
            writer
                .write(|tx| {
                    execute_numbered(
                        tx,
                        ADVANCE,
                        &[
                            &to.name(),
                            &reason,
                            &i64::from(to.refund()),
                            &now.millis(),
                            &lease_until.millis(),
                            &id,
                            &owner,
                            &from.name(),
                        ],
                    )
                })
                .await?
                == 1
        } else {
            on_pool!(&self.db, |pool| sqlx::query(ADVANCE)
                .bind(to.name())
                .bind(reason)
                .bind(i64::from(to.refund()))
                .bind(now.millis())
                .bind(lease_until.millis())
                .bind(&id)
                .bind(owner)
                .bind(from.name())
                .execute(pool)
                .await?
                .rows_affected())
                == 1
        };
        Ok(updated)
    }

    /// Ends the saga at `to` (`Confirmed` or `Cancelled`), in one transaction with the order's
    /// status and `event`; `false` (nothing changed) if `owner` lost it.
    pub async fn finish_saga(
        &self,
        order_id: Uuid,
        owner: &str,
        from: Step,
        to: Step,
        now: Timestamp,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let status = match to {
            Step::Confirmed => OrderStatus::Confirmed,
            Step::Cancelled(_) => OrderStatus::Cancelled,
            other => {
                return Err(StoreError::corrupt(
                    "sagas.step",
                    format!("{} does not end a saga", other.name()),
                ));
            }
        };
        const END_SAGA: &str = "UPDATE sagas SET step = $1, cancel_reason = $2, \
             lease_owner = NULL, lease_until = NULL, last_error = NULL, updated_at = $3 \
             WHERE order_id = $4 AND lease_owner = $5 AND step = $6";
        const END_ORDER: &str = "UPDATE orders SET status = $1, cancel_reason = $2, \
             updated_at = $3 WHERE id = $4 AND status = 'pending'";
        let reason = to.reason().map(CancelReason::as_str);
        let id = order_id.to_string();
        let not_pending = || {
            StoreError::corrupt(
                "orders.status",
                format!("order {order_id} of an unfinished saga is not pending"),
            )
        };
        if let Some(writer) = &self.writer {
            return writer
                .write(|tx| {
                    let ended = execute_numbered(
                        tx,
                        END_SAGA,
                        &[
                            &to.name(),
                            &reason,
                            &now.millis(),
                            &id,
                            &owner,
                            &from.name(),
                        ],
                    )?;
                    if ended != 1 {
                        return Ok(false);
                    }
                    let order = execute_numbered(
                        tx,
                        END_ORDER,
                        &[&status.as_str(), &reason, &now.millis(), &id],
                    )?;
                    if order != 1 {
                        return Err(not_pending());
                    }
                    append_inline(tx, event)?;
                    Ok(true)
                })
                .await;
        }
        in_write_tx!(&self.db, |tx, append| {
            let ended = sqlx::query(END_SAGA)
                .bind(to.name())
                .bind(reason)
                .bind(now.millis())
                .bind(&id)
                .bind(owner)
                .bind(from.name())
                .execute(&mut *tx)
                .await?;
            if ended.rows_affected() != 1 {
                return Ok(false);
            }
            let order = sqlx::query(END_ORDER)
                .bind(status.as_str())
                .bind(reason)
                .bind(now.millis())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            if order.rows_affected() != 1 {
                return Err(not_pending());
            }
            append(&mut tx, event).await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}

fn saga_from_row(row: SagaTuple) -> Result<SagaRow, StoreError> {
    let (order_id, step, reason, refund, attempts, deadline_at, last_error, traceparent) = row;
    let reason = reason
        .map(|r| {
            CancelReason::parse(&r).ok_or_else(|| StoreError::corrupt("sagas.cancel_reason", r))
        })
        .transpose()?;
    let step = Step::from_parts(&step, reason, refund == 1)
        .ok_or_else(|| StoreError::corrupt("sagas.step", step))?;
    Ok(SagaRow {
        order_id: uuid("sagas.order_id", &order_id)?,
        step,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        deadline_at: Timestamp::from_millis(deadline_at),
        last_error,
        traceparent,
    })
}
