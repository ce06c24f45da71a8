//! `/openapi.json`: the catalog's OpenAPI 3.1 document, generated from the handlers and types.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use souk_chassis::problem::{FieldError, Problem};
use utoipa::OpenApi;

use crate::domain::{Category, Money, Product};

/// The catalog's API description. `services/catalog/openapi.json` is this, committed.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "souk catalog", description = "Products, categories, prices and search. Served at /api/v1 through the gateway. The outbox feed GET /v1/events (product_created, product_updated, product_deleted) is internal: service tokens for catalog only."),
    paths(
        super::products::products_list, super::products::products_get, super::categories::categories_list,
        super::admin::products_create, super::admin::products_update, super::admin::products_delete,
    ),
    components(schemas(Product, Category, Money, Problem, FieldError, super::products::ProductPage, super::categories::CategoryList)),
    tags((name = "products", description = "The product list, search and product pages"), (name = "categories", description = "Product categories"), (name = "admin", description = "Managing products (administrators)")),
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
