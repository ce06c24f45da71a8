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
    modifiers(&BearerScheme, &CountryCodes),
    tags((name = "orders", description = "The caller's own orders (a user token is required)")),
)]
pub struct ApiDoc;

/// Lists the country codes an address may name, from the one list `domain::address` checks.
#[derive(Debug)]
struct CountryCodes;

impl Modify for CountryCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(address))) = components.schemas.get_mut("AddressBody")
        else {
            return;
        };
        let description = "ISO 3166-1 alpha-2, in capitals.";
        let codes = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .enum_values(Some(crate::domain::address::countries()))
            .examples(["GB"])
            .build();
        address
            .properties
            .insert("country".to_owned(), RefOr::T(Schema::Object(codes)));
    }
}

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
