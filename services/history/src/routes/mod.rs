//! History's HTTP API: one file per resource, handlers named `<resource>_<verb>`.
//!
//! `/v1/history…` is public (the caller's own purchases, with their access token). The dead
//! letters of history's consumers (`/v1/admin/dead-letters…`, administrators) are merged in by
//! [`crate::build_with`]; they are internal, like every service's.

mod history;
mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use souk_chassis::Problem;
use souk_chassis::auth::{AuthVerifier, HasAuth};

pub use openapi::ApiDoc;

use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// History's store.
    pub store: Store,
    /// Verifies users' tokens.
    pub auth: AuthVerifier,
    /// Held for as long as the router lives (see [`crate::build`]): dropping the last copy stops
    /// consumers that were started without a shutdown signal of their own.
    pub lifeline: Option<Arc<souk_chassis::lifeline::Lifeline>>,
}

impl HasAuth for AppState {
    fn auth(&self) -> &AuthVerifier {
        &self.auth
    }
}

/// History's routes, without the dead letters and the standard stack (see [`crate::build_with`]).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/history", get(history::history_list))
        .route("/v1/history/{order_id}", get(history::history_get))
        .route("/openapi.json", get(openapi::openapi_get))
        .with_state(state)
}

/// Errors of history's handlers, and their one mapping to problem+json.
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
                    "history's database is unavailable; try again shortly",
                )
                .into_response()
            }
            Self::Store(err) => Problem::internal(&err).into_response(),
        }
    }
}
