//! `/v1/me`: the caller's own account.

use axum::extract::State;
use http::HeaderMap;
use souk_chassis::{Json, Problem};

use super::auth::Account;
use super::{ApiError, AppState, unauthorized};
use crate::tokens;

/// The account the bearer token belongs to.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = Account),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn me_get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Account>, ApiError> {
    let claims = verified(&state, &headers)?;
    let user = state
        .store
        .user_by_id(&claims.sub)
        .await?
        .ok_or_else(|| unauthorized("this account no longer exists", Some("invalid_token")))?;
    Ok(Json(Account {
        id: user.id,
        email: user.email,
        name: user.name,
        role: user.role,
    }))
}

/// The claims of the request's bearer access token, verified; a 401 problem otherwise.
pub(super) fn verified(state: &AppState, headers: &HeaderMap) -> Result<tokens::Claims, Problem> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token)
        .ok_or_else(|| unauthorized("send an access token: Authorization: Bearer <token>", None))?;
    let config = &state.config;
    tokens::verify_access(
        &state.keys(),
        &config.issuer,
        &config.audience,
        token.trim(),
    )
    .map_err(|_| {
        unauthorized(
            "the access token is not valid or has expired",
            Some("invalid_token"),
        )
    })
}
