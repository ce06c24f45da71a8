//! The catalog's HTTP API: one file per resource, handlers named `<resource>_<verb>`.

mod admin;
mod categories;
mod openapi;
mod products;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use souk_chassis::Problem;

pub use openapi::ApiDoc;

use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The catalog's store.
    pub store: Store,
    /// Verifies administrators' tokens.
    pub auth: souk_chassis::auth::AuthVerifier,
}

impl souk_chassis::auth::HasAuth for AppState {
    fn auth(&self) -> &souk_chassis::auth::AuthVerifier {
        &self.auth
    }
}

/// The catalog's routes, without the standard stack (see [`crate::router`]).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/products", get(products::products_list))
        .route("/v1/products/{id}", get(products::products_get))
        .route("/v1/categories", get(categories::categories_list))
        .route("/v1/admin/products", post(admin::products_create))
        .route(
            "/v1/admin/products/{id}",
            put(admin::products_update).delete(admin::products_delete),
        )
        .route("/openapi.json", get(openapi::openapi_get))
        .with_state(state)
}

/// Errors of the catalog's handlers, and their one mapping to problem+json.
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
                    "the catalog's database is unavailable; try again shortly",
                )
                .into_response()
            }
            Self::Store(StoreError::Read(err))
                if souk_chassis::db::inline::is_unavailable(&err) =>
            {
                Problem::database_unavailable(
                    &err,
                    "the catalog's database is unavailable; try again shortly",
                )
                .into_response()
            }
            Self::Store(err) => Problem::internal(&err).into_response(),
        }
    }
}
