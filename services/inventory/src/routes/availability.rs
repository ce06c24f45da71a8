//! `/v1/availability`: how many units of a product one can buy now. Public.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use souk_chassis::{FieldError, Json, Path, Problem, Query};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::domain::Stock;

/// Most products one availability request may name.
const MAX_IDS: usize = 100;

/// A product's availability.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Availability {
    /// The product (catalog id).
    product_id: Uuid,
    /// Its SKU.
    #[schema(example = "KIT-0001")]
    sku: String,
    /// Whether at least one unit can be bought now.
    in_stock: bool,
    /// Units one can buy now: on hand minus reserved.
    #[schema(minimum = 0)]
    quantity: i64,
}

impl From<Stock> for Availability {
    fn from(stock: Stock) -> Self {
        Self {
            product_id: stock.product_id,
            sku: stock.sku,
            in_stock: stock.available > 0,
            quantity: stock.available,
        }
    }
}

/// The availability of several products.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AvailabilityList {
    /// The known products among those asked for, in the order asked; unknown ones are left out.
    items: Vec<Availability>,
}

/// Query parameters of the availability list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Product ids (UUIDs), comma-separated, 1 to 100.
    #[param(value_type = Vec<Uuid>, required = true, style = Form, explode = false, min_items = 1, max_items = 100)]
    ids: Option<String>,
}

/// One product's availability.
#[utoipa::path(
    get, path = "/v1/availability/{product_id}", tag = "availability",
    params(("product_id" = Uuid, Path, description = "Product id (UUID)")),
    responses(
        (status = 200, description = "The product's availability", body = Availability),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Inventory does not know the product", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn availability_get(
    State(state): State<AppState>,
    Path(product_id): Path<Uuid>,
) -> Result<Json<Availability>, ApiError> {
    match state.store.stock(product_id).await? {
        Some(stock) => Ok(Json(stock.into())),
        None => {
            Err(Problem::not_found(format!("no stock is kept for product {product_id}")).into())
        }
    }
}

/// The availability of several products at once.
#[utoipa::path(
    get, path = "/v1/availability", tag = "availability", params(ListParams),
    responses(
        (status = 200, description = "The known products' availability", body = AvailabilityList),
        (status = 400, description = "Missing, malformed or too many ids", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn availability_list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<AvailabilityList>, ApiError> {
    let ids = parse_ids(params.ids.as_deref().unwrap_or(""))
        .map_err(|message| Problem::invalid_query(vec![FieldError::new("ids", message)]))?;
    let mut found = state.store.stock_of(&ids).await?;
    let position = |stock: &Stock| ids.iter().position(|id| *id == stock.product_id);
    found.sort_by_key(position);
    Ok(Json(AvailabilityList {
        items: found.into_iter().map(Availability::from).collect(),
    }))
}

/// Parses `a,b,c` into 1 to 100 distinct UUIDs, in order.
fn parse_ids(text: &str) -> Result<Vec<Uuid>, String> {
    let mut ids: Vec<Uuid> = Vec::new();
    for (named, part) in text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        // Counted as sent, repeats included: the document's `maxItems`.
        if named == MAX_IDS {
            return Err(format!("name at most {MAX_IDS} products"));
        }
        let id = Uuid::parse_str(part).map_err(|_| {
            let shown: String = part.chars().take(40).collect();
            format!("{shown:?} is not a UUID")
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err("name 1 to 100 product ids, comma-separated".into());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_comma_separated_uuids_deduplicated_in_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(parse_ids(&format!("{b}, {a},{b},")).unwrap(), vec![b, a]);
        assert!(parse_ids("").is_err());
        assert!(parse_ids(" , ").is_err());
        assert!(
            parse_ids(&format!("{a},nope"))
                .unwrap_err()
                .contains("nope")
        );
        let many: Vec<String> = (0..101).map(|n| Uuid::from_u128(n).to_string()).collect();
        assert!(parse_ids(&many.join(",")).is_err());
        assert_eq!(parse_ids(&many[..100].join(",")).unwrap().len(), 100);
    }
}
