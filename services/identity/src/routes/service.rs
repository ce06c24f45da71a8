//! `/v1/auth/service-token`: short-lived tokens for service-to-service calls.
//!
//! A service configured in `[identity.services.<id>]` trades its id and secret for a token whose
//! audience is one service it may call (`sub: "service:<id>"`, `role: "service"`). Internal
//! endpoints accept only such tokens with their own name as audience; user tokens (audience
//! `souk`) are refused there. A service that only reads another's event feed gets a token with
//! `scope: "events:read"`, which nothing but the feed accepts.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use souk_chassis::{Json, Problem};
use utoipa::ToSchema;

use super::{ApiError, AppState, unauthorized};
use crate::{now, tokens};

/// A service's credentials and the service it wants to call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceTokenRequest {
    client_id: String,
    client_secret: String,
    /// The service to call, e.g. `inventory`.
    audience: String,
    /// `events:read` for a token that only reads the audience's event feed; absent for one that
    /// calls its internal endpoints.
    #[serde(default)]
    scope: Option<String>,
}

/// The one scope a service token may be narrowed to.
const EVENTS_READ: &str = "events:read";

/// A service token.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ServiceToken {
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: i64,
}

/// Issues a service token.
#[utoipa::path(post, path = "/v1/auth/service-token", tag = "auth", request_body = ServiceTokenRequest,
    responses(
        (status = 200, description = "A token for the audience", body = ServiceToken),
        (status = 401, description = "Unknown client or wrong secret", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The client may not call that audience (or not with that scope)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn service_token_post(
    State(state): State<AppState>,
    Json(body): Json<ServiceTokenRequest>,
) -> Result<Json<ServiceToken>, ApiError> {
    let refused = || unauthorized("unknown client or wrong secret", None);
    let client = state
        .config
        .services
        .get(&body.client_id)
        .ok_or_else(refused)?;
    // Constant time: the comparison must not tell how much of a guessed secret was right.
    let configured = client.secret.expose().as_bytes();
    if configured.is_empty()
        || verify_slices_are_equal(configured, body.client_secret.as_bytes()).is_err()
    {
        return Err(refused().into());
    }
    let allowed = match body.scope.as_deref() {
        None => client.audiences.contains(&body.audience),
        Some(EVENTS_READ) => {
            client.feeds.contains(&body.audience) || client.audiences.contains(&body.audience)
        }
        Some(_) => false,
    };
    if !allowed {
        let what = match body.scope.as_deref() {
            None => "call",
            Some(_) => "have this scope at",
        };
        return Err(
            Problem::typed(StatusCode::FORBIDDEN, "audience-not-allowed", "Forbidden")
                .with_detail(format!(
                    "{} may not {what} {}",
                    body.client_id, body.audience
                ))
                .into(),
        );
    }
    let config = &state.config;
    let token = tokens::issue_service(
        &state.keys(),
        &config.issuer,
        &body.audience,
        &body.client_id,
        body.scope.as_deref(),
        now(),
        config.service_ttl_secs,
    )
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(ServiceToken {
        access_token: token,
        token_type: "Bearer",
        expires_in: config.service_ttl_secs,
    }))
}
