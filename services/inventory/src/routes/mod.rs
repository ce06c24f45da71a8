//! Inventory's HTTP API: one file per resource, handlers named `<resource>_<verb>`.

mod admin;
mod availability;
mod openapi;
mod reservations;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use souk_chassis::Problem;
use souk_chassis::auth::AuthVerifier;

pub use openapi::ApiDoc;

use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Inventory's store.
    pub store: Store,
    /// Verifies administrators' and services' tokens.
    pub auth: AuthVerifier,
    /// How long a new reservation holds its units.
    pub reservation_ttl: Duration,
    /// Held by every copy of the state (the router's included); the background loops stop when
    /// the last copy is gone.
    #[expect(
        dead_code,
        reason = "held, never read: its strong count keeps the loops going"
    )]
    pub(crate) alive: Arc<souk_chassis::lifeline::Lifeline>,
}

impl souk_chassis::auth::HasAuth for AppState {
    fn auth(&self) -> &AuthVerifier {
        &self.auth
    }
}

/// Inventory's routes, without the standard stack (see [`crate::build`]).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/availability", get(availability::availability_list))
        .route(
            "/v1/availability/{product_id}",
            get(availability::availability_get),
        )
        .route(
            "/v1/admin/stock/{sku}",
            get(admin::stock_get).put(admin::stock_set),
        )
        .route(
            "/v1/admin/stock/{sku}/adjustments",
            post(admin::adjustments_create),
        )
        .route("/v1/reservations", post(reservations::reservations_create))
        .route(
            "/v1/reservations/{order_id}",
            get(reservations::reservations_get),
        )
        .route(
            "/v1/reservations/{order_id}/release",
            post(reservations::reservations_release),
        )
        .route(
            "/v1/reservations/{order_id}/commit",
            post(reservations::reservations_commit),
        )
        .route("/openapi.json", get(openapi::openapi_get))
        .with_state(state)
}

/// Errors of inventory's handlers, and their one mapping to problem+json.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong; the problem says how.
    #[error("{}", .0.title)]
    Problem(Problem),
    /// Storage failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
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
            Self::Store(StoreError::Database(err)) if souk_chassis::db::is_unavailable(&err) => {
                Problem::database_unavailable(
                    &err,
                    "inventory's database is unavailable; try again shortly",
                )
                .into_response()
            }
            Self::Store(StoreError::Inline(err))
                if souk_chassis::db::inline::is_unavailable(&err) =>
            {
                Problem::database_unavailable(
                    &err,
                    "inventory's database is unavailable; try again shortly",
                )
                .into_response()
            }
            Self::Store(err) if err.is_contention() => {
                Problem::database_unavailable(&err, "inventory is busy; try again shortly")
                    .with_retry_after(1)
                    .into_response()
            }
            Self::Store(err) => Problem::internal(&err).into_response(),
        }
    }
}

/// A 409 with a slug of inventory's own.
pub(crate) fn conflict(slug: &str, title: &str, detail: String) -> Problem {
    Problem::typed(StatusCode::CONFLICT, slug, title).with_detail(detail)
}
