//! `/v1/admin/stock/{sku}`: administrators set how many units of a product are on sale.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use souk_chassis::auth::Caller;
use souk_chassis::{FieldError, Json, Path, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::domain::{MAX_STOCK, Stock, Timestamp};

/// The units to put on sale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StockBody {
    /// Units one can buy from now on, 0 to 1 000 000. Units held for orders and units sold are
    /// not counted here and do not change.
    #[schema(minimum = 0, maximum = 1_000_000, example = 25)]
    quantity: i64,
}

/// A product's stock, as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StockLevel {
    /// Its SKU.
    #[schema(example = "KIT-0001")]
    sku: String,
    /// The product (catalog id).
    product_id: Uuid,
    /// Units one can buy now.
    available: i64,
    /// Units held for orders not yet confirmed.
    reserved: i64,
    /// Units sold.
    sold: i64,
}

impl From<Stock> for StockLevel {
    fn from(stock: Stock) -> Self {
        Self {
            sku: stock.sku,
            product_id: stock.product_id,
            available: stock.available,
            reserved: stock.reserved,
            sold: stock.sold,
        }
    }
}

/// Sets the units on sale of one product.
#[utoipa::path(put, path = "/v1/admin/stock/{sku}", tag = "admin", request_body = StockBody, security(("bearer" = [])),
    params(("sku" = String, Path, description = "The product's SKU")),
    responses(
        (status = 200, description = "The product's stock now", body = StockLevel),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No product with that SKU", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The quantity is out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn stock_set(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
    Json(body): Json<StockBody>,
) -> Result<Json<StockLevel>, ApiError> {
    let caller = caller.require_admin()?;
    if !(0..=MAX_STOCK).contains(&body.quantity) {
        return Err(Problem::validation(vec![FieldError::new(
            "quantity",
            format!("must be 0 to {MAX_STOCK}"),
        )])
        .into());
    }
    let Some(stock) = state
        .store
        .set_available(&sku, body.quantity, Timestamp::now())
        .await?
    else {
        return Err(Problem::not_found("no product with this SKU").into());
    };
    tracing::info!(admin = %caller.id, sku = %stock.sku, available = stock.available, "stock set");
    Ok(Json(stock.into()))
}
