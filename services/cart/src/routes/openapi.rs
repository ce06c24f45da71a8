//! `/openapi.json`: the cart's OpenAPI 3.1 document, generated from the handlers and types.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use souk_chassis::problem::{FieldError, Problem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::domain::{CartView, LineStatus, LineView, Money, Quantity};

/// The cart's API description. `services/cart/openapi.json` is this, committed.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "souk cart", description = "The caller's cart, priced from the catalog on every read. Served at /api/v1 through the gateway."),
    paths(super::cart::cart_get, super::cart::cart_delete, super::cart::cart_items_put, super::cart::cart_items_delete),
    components(schemas(CartView, LineView, LineStatus, Money, Quantity, Problem, FieldError, super::cart::LineBody)),
    modifiers(&BearerScheme),
    tags((name = "cart", description = "The caller's own cart (a user token is required)")),
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
