//! Orders' HTTP API: one file per resource, handlers named `<resource>_<verb>`.
//!
//! `/v1/orders…` is public through the gateway (a user's own orders, with their access token,
//! verified here too); `/v1/events` (the outbox feed, merged in by [`crate::build_with`]) is
//! internal, for services with a service token for orders.

mod idempotency;
mod openapi;
mod orders;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use http::request::Parts;
use souk_chassis::Problem;
use souk_chassis::auth::{AuthVerifier, HasAuth};
use souk_chassis::events::Outbox;

pub use openapi::ApiDoc;

use crate::checkout::Checkout;
use crate::saga::SagaRunner;
use crate::store::{Store, StoreError};
use souk_chassis::lifeline::Lifeline;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Orders' store.
    pub store: Store,
    /// Verifies users' tokens.
    pub auth: AuthVerifier,
    /// Step 1 of checkout: the cart, the catalog and the payment method.
    pub checkout: Checkout,
    /// Woken when an order is placed.
    pub saga: SagaRunner,
    /// Woken when an order's event is committed.
    pub outbox: Outbox,
    /// Settings the handlers need.
    pub settings: Arc<Settings>,
    /// Keeps the background work running while the router exists.
    pub lifeline: Arc<Lifeline>,
}

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long reserving and charging may take before the order is compensated.
    pub deadline: Duration,
    /// How long an idempotency key's attempt holds it before another may take over.
    pub key_lock: Duration,
    /// Prefix of `Location` headers (`/api`).
    pub public_prefix: String,
}

impl HasAuth for AppState {
    fn auth(&self) -> &AuthVerifier {
        &self.auth
    }
}

/// Orders' routes, without the outbox feed and the standard stack (see [`crate::build_with`]).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/orders",
            get(orders::orders_list).post(orders::orders_create),
        )
        .route("/v1/orders/{id}", get(orders::orders_get))
        .route("/openapi.json", get(openapi::openapi_get))
        .with_state(state)
}

/// A signed-in user and the access token they came with (forwarded to the cart and payments,
/// which verify it themselves).
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// The account id.
    pub(crate) id: String,
    /// The access token.
    pub(crate) token: String,
}

impl FromRequestParts<AppState> for User {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = souk_chassis::auth::access_token(&parts.headers)?;
        let caller = state.auth.verify(token).await?;
        Ok(Self {
            id: caller.id,
            token: token.to_owned(),
        })
    }
}

/// Errors of orders' handlers, and their one mapping to problem+json.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be done as asked; the problem says how. A final answer: kept for
    /// replay under the request's idempotency key.
    #[error("{}", .0.title)]
    Problem(Problem),
    /// A problem of this moment (a neighbour down, the request's key busy): never kept, so the
    /// same request may be sent again.
    #[error("{}", .0.title)]
    Transient(Problem),
    /// Storage failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem)
    }
}

impl ApiError {
    /// The status and body of a final client error, to keep for replay; `None` for anything a
    /// retry might change.
    pub(crate) fn final_answer(&self) -> Option<(StatusCode, String)> {
        let Self::Problem(problem) = self else {
            return None;
        };
        let status = problem.status_code();
        if !status.is_client_error() {
            return None;
        }
        Some((status, problem.to_json().ok()?))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Problem(problem) | Self::Transient(problem) => problem.into_response(),
            Self::Store(err) if err.is_transient() => Problem::database_unavailable(
                &err,
                "orders' database is unavailable; nothing was stored, try again shortly",
            )
            .with_retry_after(1)
            .into_response(),
            Self::Store(err) => Problem::internal(&err).into_response(),
        }
    }
}

/// `problem` with `Retry-After: 1`.
pub(crate) fn retry_soon(problem: Problem) -> Problem {
    problem.with_retry_after(1)
}
