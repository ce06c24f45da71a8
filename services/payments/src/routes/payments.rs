//! `/v1/payments`: charging an order (authorise and capture in one step) and reading its payment.
//! Internal: only services with a service token for payments (orders' checkout saga) may call.
//!
//! A charge runs at most once per order, in three steps:
//! 1. claim: insert the order's payment as `pending` (order ids are UNIQUE), committed on its own;
//! 2. ask the processor, with the order id as its idempotency key;
//! 3. record its answer on the pending row, if this attempt still owns it.
//!
//! A duplicate that arrives while another request holds a fresh `pending` row gets a 409
//! `in-progress` with `Retry-After` instead of waiting: the saga retries anyway, and a waiting
//! request would hold a connection for as long as the processor takes. A `pending` row older
//! than the lease (by the database's clock) is taken to belong to an attempt whose process died
//! between steps 1 and 3; the next request takes it over and asks the processor again with the
//! same key, which returns the charge it already made (if it made one) instead of charging twice.
//!
//! The attempt may not be dead, only paused (or its clock jumped): a refund may then have settled
//! its row as "never charged" while it was still inside the processor. So an attempt whose answer
//! finds its row settled as cancelled refunds its capture at once: a cancelled order keeps no
//! money. (Should the process die in between, the late-capture sweep, `crate::sweep`, finds it.)

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use souk_chassis::{FieldError, Json, Path, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, AppState, Service, conflict, count_charge};
use crate::domain::{
    ChargeOutcome, ChargeRequest, Currency, DeclineCode, Money, Payment, PaymentMethod,
    PaymentStatus, Timestamp,
};
use crate::processor::ProcessorError;
use crate::store::{Claim, StoreError};

/// A charge to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChargeBody {
    /// The order (UUID): one payment per order, so repeating the request is safe.
    order_id: Uuid,
    /// The user paying: the payment method must be theirs.
    user_id: String,
    /// One of the user's payment methods.
    payment_method_id: Uuid,
    /// How much: positive minor units and an ISO 4217 code.
    amount: AmountBody,
}

/// An amount to charge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AmountBody {
    /// Minor units (cents for USD), more than zero.
    #[schema(minimum = 1, example = 1999)]
    amount: i64,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    currency: String,
}

impl ChargeBody {
    fn validate(self) -> Result<(Uuid, ChargeRequest), Problem> {
        let mut errors = Vec::new();
        let user = self.user_id.trim();
        if user.is_empty() || user.len() > 200 || user.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "user_id",
                "must be 1 to 200 characters, without control characters",
            ));
        }
        let amount = Currency::parse(&self.amount.currency)
            .map_err(|m| FieldError::new("amount.currency", m))
            .and_then(|currency| {
                Money::positive(self.amount.amount, currency)
                    .map_err(|m| FieldError::new("amount.amount", m))
            });
        match amount {
            Ok(amount) if errors.is_empty() => Ok((
                self.order_id,
                ChargeRequest {
                    user_id: user.to_owned(),
                    payment_method_id: self.payment_method_id,
                    amount,
                },
            )),
            Ok(_) => Err(Problem::validation(errors)),
            Err(error) => {
                errors.push(error);
                Err(Problem::validation(errors))
            }
        }
    }
}

/// An order's payment.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PaymentBody {
    /// UUIDv7.
    id: Uuid,
    /// The order.
    order_id: Uuid,
    /// `captured` in a charge's answer; on `GET`, where the payment now stands.
    status: PaymentStatus,
    /// Who paid; `null` for an order cancelled before any charge was asked for.
    user_id: Option<String>,
    /// The card charged; `null` as `user_id`.
    payment_method_id: Option<Uuid>,
    /// The amount; `null` as `user_id`.
    amount: Option<Money>,
    /// Why the card was declined (`declined` only).
    decline_code: Option<DeclineCode>,
    /// When the charge was first asked for (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// When it was captured.
    #[schema(value_type = Option<String>, format = DateTime)]
    captured_at: Option<Timestamp>,
    /// When it was refunded (on `GET` only).
    #[schema(value_type = Option<String>, format = DateTime)]
    refunded_at: Option<Timestamp>,
}

impl PaymentBody {
    /// The payment as it now stands.
    fn current(payment: &Payment) -> Self {
        let request = payment.request.as_ref();
        Self {
            id: payment.id,
            order_id: payment.order_id,
            status: payment.status,
            user_id: request.map(|r| r.user_id.clone()),
            payment_method_id: request.map(|r| r.payment_method_id),
            amount: request.map(|r| r.amount.clone()),
            decline_code: payment.decline_code,
            created_at: payment.created_at,
            captured_at: payment.captured_at,
            refunded_at: payment.refunded_at,
        }
    }

    /// The answer to the charge that captured it: the same whenever it is asked again, even
    /// after a refund.
    fn charged(payment: &Payment) -> Self {
        Self {
            status: PaymentStatus::Captured,
            refunded_at: None,
            ..Self::current(payment)
        }
    }
}

/// A 402 `card-declined`: the problem, plus why and which payment.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeclinedProblem {
    #[serde(flatten)]
    problem: Problem,
    /// `card_declined` or `insufficient_funds`.
    decline_code: DeclineCode,
    /// The declined payment, recorded: asking again answers the same.
    payment_id: Uuid,
    /// The order.
    order_id: Uuid,
}

/// Charges an order: authorises and captures in one step, once per order.
#[utoipa::path(post, path = "/v1/payments", tag = "payments", request_body = ChargeBody, security(("service" = [])),
    responses(
        (status = 201, description = "Captured. A repeat of the same request answers the same, whenever it comes", body = PaymentBody, headers(("location" = String, description = "The order's payment"))),
        (status = 401, description = "No valid service token (a user's token is refused)", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`card-declined`: recorded, so a repeat answers the same", body = DeclinedProblem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service, a service other than orders, or a token that only reads the event feed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`payment-conflict`: the order has a payment with another user, method or amount; `order-cancelled`: the order was refunded before any charge; `in-progress`: another request is charging it right now (retry after `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or `payment-method-not-owned`: the method is not the user's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`processor-unavailable`: nothing was charged; retry the same request after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn payments_create(
    State(state): State<AppState>,
    Service(caller): Service,
    Json(body): Json<ChargeBody>,
) -> Result<Response, ApiError> {
    let (order_id, request) = body.validate()?;
    let method = state
        .store
        .method(request.payment_method_id)
        .await?
        .filter(|m| m.owner == request.user_id);
    let Some(method) = method else {
        count_charge("not_owned");
        return Err(not_owned(request.payment_method_id).into());
    };
    tracing::debug!(order = %order_id, service = %caller.service, "charge asked for");
    match state.store.claim(order_id, &request).await? {
        Claim::New(payment) => charge(&state, payment, &method).await,
        Claim::Existing(payment) => again(&state, payment, &request, &method).await,
    }
}

/// The order's payment as it now stands.
#[utoipa::path(get, path = "/v1/payments/{order_id}", tag = "payments", security(("service" = [])),
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The payment (`cancelled` for an order refunded before any charge)", body = PaymentBody),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid service token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service, a service other than orders, or a token that only reads the event feed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Payments never heard of this order", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn payments_get(
    State(state): State<AppState>,
    Service(_caller): Service,
    Path(order_id): Path<Uuid>,
) -> Result<Json<PaymentBody>, ApiError> {
    match state.store.payment(order_id).await? {
        Some(payment) => Ok(Json(PaymentBody::current(&payment))),
        None => Err(Problem::not_found(format!("no payment for order {order_id}")).into()),
    }
}

/// A request for an order that has a payment already: a replay, a conflict, or a takeover.
async fn again(
    state: &AppState,
    payment: Payment,
    request: &ChargeRequest,
    method: &PaymentMethod,
) -> Result<Response, ApiError> {
    if payment.status == PaymentStatus::Cancelled {
        count_charge("cancelled");
        return Err(order_cancelled(payment.order_id).into());
    }
    if payment.request.as_ref() != Some(request) {
        count_charge("conflict");
        return Err(conflict(
            "payment-conflict",
            "The order has another payment",
            format!(
                "order {} already has a payment with another user, payment method or amount",
                payment.order_id
            ),
        )
        .into());
    }
    if payment.status == PaymentStatus::Pending {
        if let Some(attempt_at) = state.store.take_over(&payment, state.pending_lease).await? {
            tracing::warn!(order = %payment.order_id, "taking over an abandoned charge; the processor answers it again");
            let payment = Payment {
                attempt_at,
                ..payment
            };
            return charge(state, payment, method).await;
        }
        count_charge("in_progress");
        return Err(in_progress(payment.order_id).into());
    }
    count_charge("replayed");
    answer(&payment)
}

/// Asks the processor for this attempt's charge and records its answer.
async fn charge(
    state: &AppState,
    payment: Payment,
    method: &PaymentMethod,
) -> Result<Response, ApiError> {
    let order_id = payment.order_id;
    let amount = payment
        .request
        .as_ref()
        .map(|r| r.amount.clone())
        .ok_or_else(|| corrupt(order_id))?;
    let key = order_id.to_string();
    let result = state
        .processor
        .charge(&key, &method.token, &amount, Timestamp::now())
        .await;
    let charge = match result {
        Ok(charge) => charge,
        Err(err) => {
            // Not final: forget the attempt so the next one starts afresh. Should the processor
            // have charged after all, it keeps that charge under the key, and the next attempt
            // (or a refund) finds it.
            if let Err(forget) = state.store.abandon(order_id, payment.attempt_at).await {
                tracing::warn!(order = %order_id, error = %souk_chassis::problem::ErrorChain(&forget), "cannot forget a failed charge; its lease will lapse");
            }
            count_charge(if matches!(err, ProcessorError::Unavailable) {
                "processor_error"
            } else {
                "error"
            });
            return Err(err.into());
        }
    };
    souk_chassis::crash::point("payments.after-charge-before-record");
    let recorded = state
        .store
        .finish(
            order_id,
            payment.attempt_at,
            &charge.id,
            charge.outcome,
            Timestamp::now(),
        )
        .await?;
    state.outbox.notify();
    let payment = state
        .store
        .payment(order_id)
        .await?
        .ok_or_else(|| corrupt(order_id))?;
    if !recorded {
        return late(state, &payment, &charge).await;
    }
    match charge.outcome {
        ChargeOutcome::Captured => {
            tracing::info!(order = %order_id, payment = %payment.id, amount = amount.amount, currency = amount.currency.as_str(), "payment captured");
            count_charge("captured");
        }
        ChargeOutcome::Declined(code) => {
            tracing::info!(order = %order_id, payment = %payment.id, decline_code = code.as_str(), "payment declined");
            count_charge("declined");
        }
    }
    answer(&payment)
}

/// This attempt's `charge` came back after its row was settled by someone else: a takeover
/// (which records the same charge), or a refund that found no charge and cancelled the order.
/// In that last case the capture is refunded now: nothing else would.
async fn late(
    state: &AppState,
    payment: &Payment,
    charge: &crate::processor::Charge,
) -> Result<Response, ApiError> {
    let order_id = payment.order_id;
    if payment.status == PaymentStatus::Cancelled && charge.outcome == ChargeOutcome::Captured {
        let refund = state
            .processor
            .refund(&order_id.to_string(), &charge.id, Timestamp::now())
            .await?;
        count_charge("late_capture_refunded");
        tracing::warn!(order = %order_id, charge = %charge.id, refund = %refund.id, "a charge captured after its order was cancelled; refunded at once");
    }
    answer(payment)
}

/// The answer a charge request gets for `payment` as recorded.
fn answer(payment: &Payment) -> Result<Response, ApiError> {
    match (payment.status, payment.decline_code) {
        (PaymentStatus::Captured | PaymentStatus::Refunded, _) => {
            let mut response =
                (StatusCode::CREATED, Json(PaymentBody::charged(payment))).into_response();
            if let Ok(location) =
                HeaderValue::try_from(format!("/v1/payments/{}", payment.order_id))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        (PaymentStatus::Declined, Some(code)) => Err(ApiError::Problem(
            Problem::typed(
                StatusCode::PAYMENT_REQUIRED,
                "card-declined",
                "Card declined",
            )
            .with_detail(format!("the card was declined: {}", code.as_str()))
            .with_extensions(&Declined {
                decline_code: code,
                payment_id: payment.id,
                order_id: payment.order_id,
            }),
        )),
        (PaymentStatus::Cancelled, _) => Err(order_cancelled(payment.order_id).into()),
        (PaymentStatus::Pending, _) => Err(in_progress(payment.order_id).into()),
        (PaymentStatus::Declined, None) => Err(corrupt(payment.order_id).into()),
    }
}

#[derive(Serialize)]
struct Declined {
    decline_code: DeclineCode,
    payment_id: Uuid,
    order_id: Uuid,
}

fn not_owned(method: Uuid) -> Problem {
    Problem::typed(
        StatusCode::UNPROCESSABLE_ENTITY,
        "payment-method-not-owned",
        "Payment method not usable",
    )
    .with_errors(vec![FieldError::new(
        "payment_method_id",
        format!("the user has no payment method {method}"),
    )])
}

fn order_cancelled(order_id: Uuid) -> Problem {
    conflict(
        "order-cancelled",
        "The order was cancelled",
        format!("order {order_id} was refunded before it was charged; it will never be charged"),
    )
}

pub(super) fn in_progress(order_id: Uuid) -> Problem {
    conflict(
        "in-progress",
        "A charge is in progress",
        format!("another request is charging order {order_id}; ask again shortly"),
    )
    .with_retry_after(1)
}

pub(super) fn corrupt(order_id: Uuid) -> StoreError {
    StoreError::Corrupt {
        column: "payments",
        reason: format!("the payment of order {order_id} is not as recorded"),
    }
}
