//! `/openapi.json`: inventory's OpenAPI 3.1 document, generated from the handlers and types.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use souk_chassis::problem::{FieldError, Problem};
use utoipa::OpenApi;

use crate::domain::{Line, ReservationState};

/// Inventory's API description. `services/inventory/openapi.json` is this, committed.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "souk inventory", description = "Stock per product and reservations per order. Availability and admin stock are public through the gateway (/api/v1/...); reservations are internal, for services with a service token."),
    paths(
        super::availability::availability_get, super::availability::availability_list,
        super::admin::stock_set,
        super::reservations::reservations_create, super::reservations::reservations_get,
        super::reservations::reservations_release, super::reservations::reservations_commit,
    ),
    components(schemas(
        Problem, FieldError, Line, ReservationState,
        super::availability::Availability, super::availability::AvailabilityList,
        super::admin::StockBody, super::admin::StockLevel,
        super::reservations::ReserveBody, super::reservations::LineBody, super::reservations::ReservationBody,
        super::reservations::OutOfStockProblem, super::reservations::ReservationProblem,
    )),
    tags(
        (name = "availability", description = "How many units one can buy now"),
        (name = "admin", description = "Setting the units on sale (administrators)"),
        (name = "reservations", description = "Holding units for orders (internal: service tokens only)"),
    ),
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

/// Serves the OpenAPI document.
pub(super) async fn openapi_get() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}
