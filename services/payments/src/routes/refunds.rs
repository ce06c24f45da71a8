//! `/v1/payments/{order_id}/refund`: giving an order's money back, the checkout saga's
//! compensation. Internal (service tokens only), idempotent, and safe before, during or after the
//! charge it undoes:
//! - captured: refunded in full at the processor (keyed by the order id), then recorded;
//! - refunded before: the same refund again;
//! - declined, or nothing at all: nothing to refund. With nothing at all, a tombstone is recorded
//!   first, so a charge arriving late for the cancelled order is refused (409 `order-cancelled`);
//! - pending: 409 `in-progress` while the charging request may still be running; once its lease
//!   has lapsed, this request takes it over and settles it from what the processor holds.

use axum::extract::State;
use serde::Serialize;
use souk_chassis::{Json, Path, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use super::payments::{corrupt, in_progress};
use super::{ApiError, AppState, Service, count_refund};
use crate::domain::{ChargeOutcome, Money, Payment, PaymentStatus, Refund, Timestamp};
use crate::processor::{Processor, ProcessorError};
use crate::store::Claim;

/// What a refund request did.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RefundResult {
    /// The order.
    order_id: Uuid,
    /// `refunded` (now or before: the same refund) or `nothing_to_refund` (never charged,
    /// declined, or cancelled before any charge).
    status: RefundStatus,
    /// The refund, when there is one.
    refund: Option<RefundBody>,
}

/// Whether money went back.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum RefundStatus {
    /// The captured amount was refunded in full.
    Refunded,
    /// No money was taken for the order, and none will be.
    NothingToRefund,
}

/// A refund.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RefundBody {
    /// UUIDv7.
    id: Uuid,
    /// The payment refunded.
    payment_id: Uuid,
    /// The whole captured amount.
    amount: Money,
    /// When it was made (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
}

impl RefundResult {
    fn refunded(refund: Refund) -> Self {
        Self {
            order_id: refund.order_id,
            status: RefundStatus::Refunded,
            refund: Some(RefundBody {
                id: refund.id,
                payment_id: refund.payment_id,
                amount: refund.amount,
                created_at: refund.created_at,
            }),
        }
    }

    fn nothing(order_id: Uuid) -> Self {
        Self {
            order_id,
            status: RefundStatus::NothingToRefund,
            refund: None,
        }
    }
}

/// Refunds an order's payment in full, or makes sure it will never be charged.
#[utoipa::path(post, path = "/v1/payments/{order_id}/refund", tag = "payments", security(("service" = [])),
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "Refunded (the same refund on every repeat), or nothing to refund; a later charge for an order never charged is refused", body = RefundResult),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid service token (a user's token is refused)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service, a service other than orders, or a token that only reads the event feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`in-progress`: a charge for the order is running; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn refunds_create(
    State(state): State<AppState>,
    Service(caller): Service,
    Path(order_id): Path<Uuid>,
) -> Result<Json<RefundResult>, ApiError> {
    let mut payment = match state.store.payment(order_id).await? {
        Some(payment) => payment,
        None => match state.store.tombstone(order_id).await? {
            Claim::New(tombstone) => {
                tracing::info!(order = %order_id, service = %caller.service, "order cancelled before any charge");
                tombstone
            }
            Claim::Existing(payment) => payment,
        },
    };
    // A pending payment settles into another status first (at most once).
    for _ in 0..2 {
        match payment.status {
            PaymentStatus::Pending => payment = settle(&state, payment).await?,
            PaymentStatus::Cancelled | PaymentStatus::Declined => {
                if payment.status == PaymentStatus::Cancelled {
                    // Again on every repeat: a sweep that failed half-way is finished by the next.
                    sweep_processor(&state.processor, order_id).await?;
                }
                count_refund("nothing_to_refund");
                return Ok(Json(RefundResult::nothing(order_id)));
            }
            PaymentStatus::Refunded => {
                let refund = state.store.refund_of(order_id).await?;
                count_refund("replayed");
                return Ok(Json(RefundResult::refunded(
                    refund.ok_or_else(|| corrupt(order_id))?,
                )));
            }
            PaymentStatus::Captured => {
                let refund = refund(&state, &payment).await?;
                tracing::info!(order = %order_id, service = %caller.service, refund = %refund.id, "payment refunded");
                count_refund("refunded");
                return Ok(Json(RefundResult::refunded(refund)));
            }
        }
    }
    Err(in_progress(order_id).into())
}

/// Refunds a captured payment at the processor (once per order, whoever asks) and records it.
async fn refund(state: &AppState, payment: &Payment) -> Result<Refund, ApiError> {
    let order_id = payment.order_id;
    let (Some(charge_id), Some(request)) = (&payment.processor_charge_id, &payment.request) else {
        return Err(corrupt(order_id).into());
    };
    let now = Timestamp::now();
    let at_processor = state
        .processor
        .refund(&order_id.to_string(), charge_id, now)
        .await?;
    souk_chassis::crash::point("payments.after-refund-before-record");
    let refund = Refund {
        id: Uuid::now_v7(),
        payment_id: payment.id,
        order_id,
        amount: request.amount.clone(),
        processor_refund_id: at_processor.id,
        created_at: now,
    };
    let refund = state.store.record_refund(&refund, &request.user_id).await?;
    state.outbox.notify();
    Ok(refund)
}

/// Settles a pending payment whose attempt was abandoned: what the processor holds under the
/// order's key decides (a charge: recorded; none: a tombstone, so none will be made). While the
/// attempt may still be running, 409 `in-progress`.
async fn settle(state: &AppState, payment: Payment) -> Result<Payment, ApiError> {
    let order_id = payment.order_id;
    let Some(now) = state.store.take_over(&payment, state.pending_lease).await? else {
        count_refund("in_progress");
        return Err(in_progress(order_id).into());
    };
    tracing::warn!(order = %order_id, "settling an abandoned charge before refunding");
    match state.processor.find_charge(&order_id.to_string()).await? {
        Some(charge) => {
            state
                .store
                .finish(order_id, now, &charge.id, charge.outcome, now)
                .await?;
            state.outbox.notify();
        }
        None => {
            state.store.cancel_pending(order_id, now).await?;
        }
    }
    Ok(state
        .store
        .payment(order_id)
        .await?
        .ok_or_else(|| corrupt(order_id))?)
}

/// For a cancelled order: refunds a charge the processor holds for the order although payments has
/// no record of it (an attempt whose processor call failed ambiguously, then was forgotten, or
/// one that landed after the order was cancelled and died before refunding it). The late-capture
/// sweep calls it too.
pub(crate) async fn sweep_processor(
    processor: &Processor,
    order_id: Uuid,
) -> Result<(), ProcessorError> {
    let key = order_id.to_string();
    if let Some(charge) = processor.find_charge(&key).await?
        && charge.outcome == ChargeOutcome::Captured
    {
        let refund = processor.refund(&key, &charge.id, Timestamp::now()).await?;
        tracing::warn!(order = %order_id, charge = %charge.id, refund = %refund.id, "refunded a processor charge payments had no record of");
    }
    Ok(())
}
