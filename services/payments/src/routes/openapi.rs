//! `/openapi.json`: payments' OpenAPI 3.1 document, generated from the handlers and types.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use souk_chassis::problem::{FieldError, Problem};
use utoipa::OpenApi;

use crate::domain::{Brand, DeclineCode, Money, PaymentStatus};

/// Payments' API description. `services/payments/openapi.json` is this, committed.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "souk payments", description = "Payment methods (card tokens), payments per order and refunds, through a simulated card processor. Payment methods are public through the gateway (/api/v1/payment-methods, user tokens); payments and refunds are internal, for services with a service token (orders' checkout saga). The outbox feed GET /v1/events (payment_captured, payment_declined, payment_refunded) is internal too: service tokens for payments only."),
    paths(
        super::methods::payment_methods_create, super::methods::payment_methods_list, super::methods::payment_methods_get,
        super::payments::payments_create, super::payments::payments_get,
        super::refunds::refunds_create,
    ),
    components(schemas(
        Problem, FieldError, Money, Brand, PaymentStatus, DeclineCode,
        super::methods::CardBody, super::methods::PaymentMethodBody, super::methods::PaymentMethodList,
        super::payments::ChargeBody, super::payments::AmountBody, super::payments::PaymentBody, super::payments::DeclinedProblem,
        super::refunds::RefundResult, super::refunds::RefundStatus, super::refunds::RefundBody,
    )),
    tags(
        (name = "payment-methods", description = "A user's cards: registered once, charged by id"),
        (name = "payments", description = "Charging and refunding orders (internal: service tokens only)"),
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
