//! Identity's HTTP API.

mod auth;
mod jwks;
mod me;
mod openapi;
mod service;

use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderValue, StatusCode, header};
use souk_chassis::Problem;

pub use openapi::ApiDoc;

use crate::Config;
use crate::hashing::Hasher;
use crate::keys::KeySet;
use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The settings.
    pub config: Arc<Config>,
    /// Password hashing, bounded.
    pub hasher: Hasher,
    /// The signing keys in force.
    pub keys: Arc<RwLock<KeySet>>,
    /// Login attempts per account (password changes count as attempts too).
    pub logins: Arc<DefaultKeyedRateLimiter<String>>,
    /// Seals the signing keys in the store.
    pub sealer: souk_chassis::seal::Sealer,
}

impl AppState {
    /// State for `config` over `store` with `keys`.
    pub fn new(
        store: Store,
        config: Config,
        keys: KeySet,
        sealer: souk_chassis::seal::Sealer,
    ) -> Self {
        let burst = NonZeroU32::new(config.login_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let per_minute = NonZeroU32::new(config.login_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            hasher: Hasher::new(
                config.hashing_concurrency,
                config.stranger_hashing_concurrency,
                config.stranger_hashing_queue,
            ),
            sealer,
            logins: Arc::new(RateLimiter::keyed(quota)),
            keys: Arc::new(RwLock::new(keys)),
            config: Arc::new(config),
            store,
        }
    }

    /// The keys in force (a cheap clone of shared handles).
    pub fn keys(&self) -> KeySet {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Identity's routes, without the standard stack.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/auth/register", post(auth::register_post))
        .route("/v1/auth/login", post(auth::login_post))
        .route("/v1/auth/refresh", post(auth::refresh_post))
        .route("/v1/auth/logout", post(auth::logout_post))
        .route("/v1/auth/password", post(auth::password_post))
        .route("/v1/auth/service-token", post(service::service_token_post))
        .route("/v1/me", get(me::me_get))
        .route("/.well-known/jwks.json", get(jwks::jwks_get))
        .route("/openapi.json", get(openapi::openapi_get))
        .with_state(state)
}

/// Errors of identity's handlers, and their one mapping to problem+json.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong; the problem says how.
    #[error("{}", .0.title)]
    Problem(Problem),
    /// Storage failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// Hashing a password failed, or strangers are being hashed for at capacity.
    #[error(transparent)]
    Hash(#[from] crate::hashing::HashError),
    /// Something else failed inside.
    #[error("{0}")]
    Internal(String),
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
                Problem::database_unavailable(&err, "accounts are unavailable; try again shortly")
                    .into_response()
            }
            Self::Store(err) => Problem::internal(&err).into_response(),
            Self::Hash(crate::hashing::HashError::Busy) => Problem::typed(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-strangers",
                "Too many sign-ins right now",
            )
            .with_detail(
                "too many sign-ins and sign-ups are being checked right now; try again shortly",
            )
            .with_retry_after(1)
            .into_response(),
            Self::Hash(err) => Problem::internal(&err).into_response(),
            Self::Internal(message) => {
                Problem::internal(&std::io::Error::other(message)).into_response()
            }
        }
    }
}

/// 401 with the `WWW-Authenticate` challenge RFC 6750 asks for: an error code only when a token
/// was presented (§3.1).
pub fn unauthorized(detail: &str, error: Option<&str>) -> Problem {
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"souk\", error=\"{error}\""),
        None => "Bearer realm=\"souk\"".to_owned(),
    };
    Problem::typed(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
        .with_detail(detail.to_owned())
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::try_from(challenge).unwrap_or(HeaderValue::from_static("Bearer")),
        )
}
