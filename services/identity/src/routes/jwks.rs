//! `/.well-known/jwks.json`: the public keys that verify access tokens.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use souk_chassis::Json;

use super::AppState;
use crate::keys::Jwks;

/// The published keys (the signer and retired keys whose tokens may still be valid).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "The key set", body = Jwks)))]
pub(super) async fn jwks_get(State(state): State<AppState>) -> Response {
    // Verifiers cache it; a minute keeps a rotation visible soon.
    (
        [(http::header::CACHE_CONTROL, "public, max-age=60")],
        Json(state.keys().jwks()),
    )
        .into_response()
}
