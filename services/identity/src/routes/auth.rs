//! `/v1/auth/*`: register, log in, refresh, log out, change the password.

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use souk_chassis::{FieldError, Json, Problem};
use utoipa::ToSchema;

use super::{ApiError, AppState, unauthorized};
use crate::domain::{Email, Password, Role, display_name};
use crate::store::{Rotation, User};
use crate::{now, tokens};

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Register {
    /// An address: up to 64 characters, `@`, a domain with a dot; no spaces or control
    /// characters (stored lowercased).
    #[schema(
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[^@\s\x00-\x1f\x7f-\x9f.]+(\.[^@\s\x00-\x1f\x7f-\x9f.]+)+$",
        example = "ada@example.com"
    )]
    email: String,
    /// 12 to 1024 characters, not a common password, not the email address.
    #[schema(min_length = 12, max_length = 1024)]
    password: String,
    /// 1 to 100 characters, not only spaces, no control characters.
    #[schema(
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        example = "Ada"
    )]
    name: String,
}

/// An account as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Account {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) role: Role,
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    email: String,
    password: String,
}

/// A refresh token to exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Refresh {
    refresh_token: String,
}

/// A token pair.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TokenPair {
    access_token: String,
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
}

/// Creates an account.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = Register,
    responses(
        (status = 201, description = "Created", body = Account),
        (status = 409, description = "The email has an account", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, name or weak password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many sign-ups being checked at once", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn register_post(
    State(state): State<AppState>,
    Json(body): Json<Register>,
) -> Result<(StatusCode, Json<Account>), ApiError> {
    let mut errors = Vec::new();
    let email = Email::parse(&body.email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let name = display_name(&body.name)
        .map_err(|m| errors.push(FieldError::new("name", m)))
        .ok();
    // Compare with the email as it will be stored (trimmed; Password lowercases both sides).
    let password = Password::new(&body.password, body.email.trim())
        .map_err(|e| errors.push(FieldError::new("password", e.to_string())))
        .ok();
    let (Some(email), Some(name), Some(password)) = (email, name, password) else {
        return Err(Problem::validation(errors).into());
    };
    if state.store.user_by_email(email.as_str()).await?.is_some() {
        return Err(taken().into());
    }
    let hash = state
        .hasher
        .hash_for_stranger(password.expose().to_owned())
        .await?;
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.as_str().to_owned(),
        name,
        password_hash: hash,
        role: Role::User,
    };
    if !state.store.insert_user(&user, now()).await? {
        return Err(taken().into());
    }
    tracing::info!(user = %user.id, "account created");
    Ok((
        StatusCode::CREATED,
        Json(Account {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
        }),
    ))
}

fn taken() -> Problem {
    Problem::typed(
        StatusCode::CONFLICT,
        "email-taken",
        "Email already registered",
    )
    .with_detail("an account with this email exists; sign in instead")
}

/// Logs in: a short-lived access token and a refresh token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "Wrong email or password (the same answer for both)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this account, or for unknown accounts at once", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn login_post(
    State(state): State<AppState>,
    Json(body): Json<Login>,
) -> Result<Json<TokenPair>, ApiError> {
    // Normalise without rejecting: a malformed email is just another wrong login.
    let email = body.email.trim().to_lowercase();
    // No account has a longer address: answer at once, and keep such keys out of the throttle.
    if email.len() > 254 {
        return Err(wrong_credentials().into());
    }
    // Throttle per account before any hashing, so a flood cannot burn the CPU on Argon2.
    throttle(&state, &email)?;
    if body.password.chars().count() > crate::domain::password::MAX_CHARS {
        return Err(wrong_credentials().into());
    }
    let user = state.store.user_by_email(&email).await?;
    let valid = state
        .hasher
        .verify(
            body.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    let Some(user) = user.filter(|_| valid) else {
        return Err(wrong_credentials().into());
    };
    let pair = issue_pair(
        &state,
        &user.id,
        user.role,
        &uuid::Uuid::now_v7().to_string(),
        None,
    )
    .await?;
    Ok(Json(pair))
}

/// Takes one of the account's attempts (sign-ins and password changes share them): a 429 with
/// `Retry-After` when none is left.
fn throttle(state: &AppState, email: &str) -> Result<(), Problem> {
    let Err(not_until) = state.logins.check_key(&email.to_owned()) else {
        return Ok(());
    };
    let wait = not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ));
    let retry_after = wait.as_secs().max(1).to_string();
    Err(Problem::typed(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-logins",
        "Too many sign-in attempts",
    )
    .with_detail("too many attempts for this account; wait and try again")
    .with_header(
        http::header::RETRY_AFTER,
        http::HeaderValue::try_from(retry_after).unwrap_or(http::HeaderValue::from_static("60")),
    ))
}

fn wrong_credentials() -> Problem {
    unauthorized("the email or the password is wrong", None)
}

/// Exchanges a refresh token for a new pair; the old one stops working. Presenting a used token
/// again revokes every token of that login.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = Refresh,
    responses(
        (status = 200, description = "A new pair", body = TokenPair),
        (status = 401, description = "Unknown, expired, used or revoked", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn refresh_post(
    State(state): State<AppState>,
    Json(body): Json<Refresh>,
) -> Result<Json<TokenPair>, ApiError> {
    if body.refresh_token.len() > 256 {
        return Err(unauthorized("this refresh token is not valid", Some("invalid_token")).into());
    }
    match state
        .store
        .rotate_refresh(&tokens::refresh_hash(&body.refresh_token), now())
        .await?
    {
        Rotation::Rotated {
            user_id,
            family_id,
            expires_at,
        } => {
            let Some(user) = state.store.user_by_id(&user_id).await? else {
                return Err(
                    unauthorized("this account no longer exists", Some("invalid_token")).into(),
                );
            };
            Ok(Json(
                issue_pair(&state, &user.id, user.role, &family_id, Some(expires_at)).await?,
            ))
        }
        Rotation::Reused => {
            tracing::warn!("a used refresh token was presented again: its whole family is revoked");
            Err(unauthorized(
                "this refresh token was already used; sign in again",
                Some("invalid_token"),
            )
            .into())
        }
        Rotation::Invalid => {
            Err(unauthorized("this refresh token is not valid", Some("invalid_token")).into())
        }
    }
}

/// A refresh token whose login to end.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Logout {
    refresh_token: String,
}

/// Logs out: every refresh token of the login this one belongs to stops working (the access
/// token in hand lives out its few minutes). Answers 204 whether or not the token was known, so
/// the answer tells nothing about it.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = Logout,
    responses(
        (status = 204, description = "The login is ended (or was not one)"),
        (status = 422, description = "Not a JSON body with a refresh_token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn logout_post(
    State(state): State<AppState>,
    Json(body): Json<Logout>,
) -> Result<StatusCode, ApiError> {
    if body.refresh_token.len() <= 256 {
        let hash = tokens::refresh_hash(&body.refresh_token);
        if state.store.revoke_family_of(&hash, now()).await? {
            tracing::info!("logged out: the login's refresh tokens are revoked");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    current_password: String,
    /// 12 to 1024 characters, not a common password.
    new_password: String,
}

/// Changes the caller's password. Every refresh token of the account stops working (every
/// login, on every device, must sign in again); access tokens live out their few minutes.
/// Attempts count against the account's sign-in throttle.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", request_body = PasswordChange,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; every login of the account is ended"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The current password is wrong, or the new one is weak", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this account", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn password_post(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let claims = super::me::verified(&state, &headers)?;
    let user = state
        .store
        .user_by_id(&claims.sub)
        .await?
        .ok_or_else(|| unauthorized("this account no longer exists", Some("invalid_token")))?;
    throttle(&state, &user.email)?;
    let new = Password::new(&body.new_password, &user.email)
        .map_err(|e| Problem::validation(vec![FieldError::new("new_password", e.to_string())]))?;
    let current_ok = body.current_password.chars().count() <= crate::domain::password::MAX_CHARS
        && state
            .hasher
            .verify(body.current_password, Some(user.password_hash.clone()))
            .await?;
    if !current_ok {
        return Err(Problem::validation(vec![FieldError::new(
            "current_password",
            "is not this account's password",
        )])
        .into());
    }
    let hash = state.hasher.hash(new.expose().to_owned()).await?;
    state.store.change_password(&user.id, &hash, now()).await?;
    tracing::info!(user = %user.id, "password changed: every login of the account is ended");
    Ok(StatusCode::NO_CONTENT)
}

/// A new pair; the refresh token lives until `login_ends` (a new login: now + refresh_ttl_secs).
async fn issue_pair(
    state: &AppState,
    user_id: &str,
    role: Role,
    family_id: &str,
    login_ends: Option<i64>,
) -> Result<TokenPair, ApiError> {
    let now = now();
    let config = &state.config;
    let access = tokens::issue_access(
        &state.keys(),
        &config.issuer,
        &config.audience,
        user_id,
        role,
        now,
        config.access_ttl_secs,
    )
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let refresh = tokens::new_refresh_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .insert_refresh(
            &tokens::refresh_hash(&refresh),
            family_id,
            user_id,
            login_ends.unwrap_or(now + config.refresh_ttl_secs),
            now,
        )
        .await?;
    Ok(TokenPair {
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: config.access_ttl_secs,
    })
}
