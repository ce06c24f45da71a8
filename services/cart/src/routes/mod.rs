//! The cart's HTTP API: one file per resource, handlers named `<resource>_<verb>`.

mod cart;
mod openapi;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use souk_chassis::Problem;

pub use openapi::ApiDoc;

use crate::clients::Catalog;
use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The cart's store.
    pub store: Store,
    /// Prices, from the catalog.
    pub catalog: Catalog,
    /// Verifies callers' tokens.
    pub auth: souk_chassis::auth::AuthVerifier,
}

impl souk_chassis::auth::HasAuth for AppState {
    fn auth(&self) -> &souk_chassis::auth::AuthVerifier {
        &self.auth
    }
}

/// The cart's routes, without the standard stack (see [`crate::build`]).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/cart", get(cart::cart_get).delete(cart::cart_delete))
        .route(
            "/v1/cart/items/{product_id}",
            put(cart::cart_items_put).delete(cart::cart_items_delete),
        )
        .route("/openapi.json", get(openapi::openapi_get))
        .with_state(state)
}

/// Errors of the cart's handlers, and their one mapping to problem+json.
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
            Self::Store(err) if err.is_unavailable() => Problem::database_unavailable(
                &err,
                "the cart's store is unavailable; try again shortly",
            )
            .into_response(),
            Self::Store(err) => Problem::internal(&err).into_response(),
        }
    }
}
