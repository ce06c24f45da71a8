//! `/openapi.json`: identity's OpenAPI 3.1 document, generated from the handlers and types.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use souk_chassis::problem::{FieldError, Problem};
use utoipa::OpenApi;

/// Identity's API description. `services/identity/openapi.json` is this, committed.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "souk identity", description = "Accounts, sign-in and the keys that verify access tokens. Served at /api/v1 through the gateway."),
    paths(super::auth::register_post, super::auth::login_post, super::auth::refresh_post,
        super::auth::logout_post, super::auth::password_post,
        super::service::service_token_post, super::me::me_get, super::jwks::jwks_get),
    components(schemas(Problem, FieldError, crate::domain::Role, crate::keys::Jwks, crate::keys::Jwk)),
    tags((name = "auth", description = "Register, sign in, refresh, log out, change the password"), (name = "accounts", description = "The caller's account"), (name = "keys", description = "Token verification keys")),
)]
pub struct ApiDoc;

impl ApiDoc {
    /// The document as committed: pretty JSON with a trailing newline, completed with the
    /// answers the chassis gives on the handlers' behalf (`souk_chassis::openapi`).
    pub fn json() -> String {
        souk_chassis::openapi::to_json(&Self::openapi())
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(ApiDoc::json);

pub(super) async fn openapi_get() -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}
