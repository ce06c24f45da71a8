//! `/openapi.json`: orders' OpenAPI 3.1 document, generated from the handlers and types.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use souk_chassis::problem::{FieldError, Problem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::domain::{CancelReason, Money, OrderLine, OrderStatus, ShippingAddress};

/// Orders' API description. `services/orders/openapi.json` is this, committed.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "souk orders", description = "Checkout and the caller's orders. POST /v1/orders accepts the caller's cart as a pending order (202) and a saga reserves stock, charges the card and confirms — or gives everything back and cancels. Served at /api/v1 through the gateway. The outbox feed GET /v1/events (order_placed, order_confirmed, order_cancelled) is internal: service tokens for orders only."),
    paths(super::orders::orders_create, super::orders::orders_get, super::orders::orders_list),
    components(schemas(
        Problem, FieldError, Money, OrderStatus, CancelReason, OrderLine, ShippingAddress,
        super::orders::CreateOrderBody, super::orders::AddressBody, super::orders::Accepted,
        super::orders::OrderView, super::orders::OrderPage,
    )),
    modifiers(&BearerScheme),
    tags((name = "orders", description = "The caller's own orders (a user token is required)")),
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
    /// The document as pretty JSON with a trailing newline, as committed.
    pub fn json() -> String {
        let mut json = Self::openapi().to_pretty_json().unwrap_or_default();
        json.push('\n');
        json
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
