//! `/openapi.json`: history's OpenAPI 3.1 document, generated from the handlers and types.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use souk_chassis::problem::{FieldError, Problem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::domain::{Card, Line, Money, Status};

/// History's API description. `services/history/openapi.json` is this, committed.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "souk history", description = "The caller's purchase history: a read model built only from orders' and payments' events (order_placed, order_confirmed, order_cancelled, payment_captured, payment_refunded), so it can lag them by a moment. Served at /api/v1 through the gateway. The consumers' dead letters (/v1/admin/dead-letters) are internal, for administrators on history's own address."),
    paths(super::history::history_list, super::history::history_get),
    components(schemas(
        Problem, FieldError, Money, Line, Card, Status,
        super::history::PurchaseView, super::history::HistoryPage,
    )),
    modifiers(&BearerScheme),
    tags((name = "history", description = "The caller's own purchases (a user token is required)")),
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the operations name: an access token from identity.
#[derive(Debug)]
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        }
    }
}

impl ApiDoc {
    /// The document as committed: pretty JSON with a trailing newline, completed with the
    /// answers the chassis gives on the handlers' behalf (`souk_chassis::openapi`).
    pub fn json() -> String {
        souk_chassis::openapi::to_json(&Self::openapi())
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(ApiDoc::json);

/// Serves the OpenAPI document.
pub(super) async fn openapi_get() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}
