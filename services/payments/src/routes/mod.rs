//! Payments' HTTP API: one file per resource, handlers named `<resource>_<verb>`.
//!
//! `/v1/payment-methods` is public (a user's own cards, with their access token); `/v1/payments…`
//! is internal (orders' checkout saga, with a service token addressed to payments), and so is
//! `/v1/events`, the outbox feed that [`crate::build`] merges in (consumers' service tokens).

mod methods;
mod openapi;
mod payments;
mod refunds;

use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::request::Parts;
use souk_chassis::Problem;
use souk_chassis::auth::{AuthVerifier, ServiceCaller};
use souk_chassis::events::Outbox;

pub use openapi::ApiDoc;
pub(crate) use refunds::sweep_processor;

use crate::processor::{Processor, ProcessorError};
use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Payments' store.
    pub store: Store,
    /// The simulated card processor.
    pub processor: Processor,
    /// Verifies users' and services' tokens.
    pub auth: AuthVerifier,
    /// The outbox the store appends events to; woken after each commit that appended one.
    pub outbox: Outbox,
    /// How long a pending charge belongs to the attempt that started it (by the database's
    /// clock); after that another attempt may take it over (see `routes/payments.rs`).
    pub pending_lease: Duration,
    /// Background work (the late-capture sweep) runs while this has an owner.
    pub alive: std::sync::Arc<souk_chassis::lifeline::Lifeline>,
    /// The services that may call `/v1/payments…` (orders).
    pub callers: std::sync::Arc<Vec<String>>,
}

impl souk_chassis::auth::HasAuth for AppState {
    fn auth(&self) -> &AuthVerifier {
        &self.auth
    }
}

/// Payments' routes, without the outbox feed and the standard stack (see [`crate::build`]).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/payment-methods",
            post(methods::payment_methods_create).get(methods::payment_methods_list),
        )
        .route(
            "/v1/payment-methods/{id}",
            get(methods::payment_methods_get),
        )
        .route("/v1/payments", post(payments::payments_create))
        .route("/v1/payments/{order_id}", get(payments::payments_get))
        .route(
            "/v1/payments/{order_id}/refund",
            post(refunds::refunds_create),
        )
        .route("/openapi.json", get(openapi::openapi_get))
        .with_state(state)
}

/// Another service calling an internal endpoint, verified by a service token whose audience is
/// payments, from one of the configured `callers` (orders). A user's token is refused (401:
/// wrong audience), whoever the user is; another service's (403), whatever its audience; and a
/// token narrowed to reading the event feed (403), such as history's.
#[derive(Debug, Clone)]
pub(crate) struct Service(pub(crate) ServiceCaller);

impl FromRequestParts<AppState> for Service {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = ServiceCaller::from_request_parts(parts, state).await?;
        caller.require_one_of(&state.callers).map(Self)
    }
}

/// Errors of payments' handlers, and their one mapping to problem+json.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong, or cannot be done now; the problem says how.
    #[error("{}", .0.title)]
    Problem(Problem),
    /// Storage failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// The processor failed.
    #[error("the processor failed")]
    Processor(#[from] ProcessorError),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(problem) => problem.into_response(),
            Self::Store(err) => store_problem(&err).into_response(),
            Self::Processor(ProcessorError::Unavailable) => processor_unavailable().into_response(),
            Self::Processor(ProcessorError::KeyReused { key }) => conflict(
                "payment-conflict",
                "The order has another payment",
                format!("the processor holds another charge for order {key}"),
            )
            .into_response(),
            Self::Processor(ProcessorError::Storage(err)) => {
                store_problem(&StoreError::Database(err)).into_response()
            }
            Self::Processor(err) => Problem::internal(&err).into_response(),
        }
    }
}

fn store_problem(err: &StoreError) -> Problem {
    match err {
        StoreError::Database(db) if souk_chassis::db::is_unavailable(db) => {
            Problem::database_unavailable(
                db,
                "payments' database is unavailable; try again shortly",
            )
        }
        err if err.is_contention() => {
            Problem::database_unavailable(err, "payments is busy; try again shortly")
                .with_retry_after(1)
        }
        err => Problem::internal(err),
    }
}

/// A 409 with a slug of payments' own.
pub(crate) fn conflict(slug: &str, title: &str, detail: String) -> Problem {
    Problem::typed(StatusCode::CONFLICT, slug, title).with_detail(detail)
}

/// 503 `processor-unavailable`: nothing was charged, and the same request may succeed later.
pub(crate) fn processor_unavailable() -> Problem {
    Problem::typed(
        StatusCode::SERVICE_UNAVAILABLE,
        "processor-unavailable",
        "Payment processor unavailable",
    )
    .with_detail("the card processor failed and nothing was charged; retry the same request")
    .with_retry_after(1)
}

/// Counts a charge by its outcome (`payments_charges_total{outcome}`).
pub(crate) fn count_charge(outcome: &'static str) {
    metrics::counter!("payments_charges_total", "outcome" => outcome).increment(1);
}

/// Counts a refund request by its outcome (`payments_refunds_total{outcome}`).
pub(crate) fn count_refund(outcome: &'static str) {
    metrics::counter!("payments_refunds_total", "outcome" => outcome).increment(1);
}
