//! `/v1/cart`: the caller's own cart. Its id is the caller's account id, so no other cart can
//! be named, let alone reached. Every answer is priced from the catalog on the spot.

use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use souk_chassis::auth::Caller;
use souk_chassis::{FieldError, Json, Path, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::domain::{CartView, Line, Lookup, MAX_LINES, Quantity, price};
use crate::store::SetError;

/// A line as a shopper sets it. Anything else in the body (a `price`, say) is ignored: prices
/// come from the catalog only.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct LineBody {
    /// How many: 1 to 99, or 0 to remove the line.
    #[schema(minimum = 0, maximum = 99, example = 2)]
    quantity: i64,
}

/// The caller's cart, priced now.
#[utoipa::path(get, path = "/v1/cart", tag = "cart", security(("bearer" = [])),
    responses(
        (status = 200, description = "The cart; lines the catalog could not price are flagged, never dropped", body = CartView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cart's store is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn cart_get(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CartView>, ApiError> {
    Ok(Json(priced(&state, &caller.id).await?))
}

/// Sets how many of a product the cart holds; 0 removes the line.
#[utoipa::path(put, path = "/v1/cart/items/{product_id}", tag = "cart", request_body = LineBody, security(("bearer" = [])),
    params(("product_id" = Uuid, Path, description = "The catalog's product id")),
    responses(
        (status = 200, description = "The cart after the change, priced now", body = CartView),
        (status = 400, description = "The id is not a UUID, or the body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The catalog has no such product", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Quantity out of range, or the cart already holds 100 products", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cart's store is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn cart_items_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(product_id): Path<Uuid>,
    Json(body): Json<LineBody>,
) -> Result<Json<CartView>, ApiError> {
    if body.quantity == 0 {
        state.store.remove(&caller.id, product_id).await?;
        return Ok(Json(priced(&state, &caller.id).await?));
    }
    let quantity = Quantity::new(body.quantity)
        .map_err(|message| Problem::validation(vec![FieldError::new("quantity", message)]))?;
    // A product the catalog says does not exist is refused; one it cannot answer about is
    // accepted, so the cart keeps working through a catalog outage.
    if state.catalog.lookup(&[product_id]).await.get(&product_id) == Some(&Lookup::Missing) {
        return Err(no_such_product(product_id).into());
    }
    let line = Line {
        product_id,
        quantity,
    };
    state
        .store
        .set(&caller.id, line)
        .await
        .map_err(|err| match err {
            SetError::Full => cart_full().into(),
            SetError::Store(err) => ApiError::Store(err),
        })?;
    Ok(Json(priced(&state, &caller.id).await?))
}

/// Removes a product's line (nothing happens when there is none).
#[utoipa::path(delete, path = "/v1/cart/items/{product_id}", tag = "cart", security(("bearer" = [])),
    params(("product_id" = Uuid, Path, description = "The catalog's product id")),
    responses(
        (status = 204, description = "The line is gone"),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cart's store is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn cart_items_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(product_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.store.remove(&caller.id, product_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Empties the cart.
#[utoipa::path(delete, path = "/v1/cart", tag = "cart", security(("bearer" = [])),
    responses(
        (status = 204, description = "The cart is empty"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cart's store is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn cart_delete(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    state.store.clear(&caller.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `user`'s cart, priced from the catalog (or its cache) now.
async fn priced(state: &AppState, user: &str) -> Result<CartView, ApiError> {
    let lines = state.store.lines(user).await?;
    let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
    let lookups = if ids.is_empty() {
        Default::default()
    } else {
        state.catalog.lookup(&ids).await
    };
    Ok(price(&lines, &lookups))
}

/// The path names a product that does not exist: a 404, like any other missing resource.
fn no_such_product(id: Uuid) -> Problem {
    Problem::typed(StatusCode::NOT_FOUND, "unknown-product", "No such product")
        .with_detail(format!("the catalog has no product {id}"))
}

fn cart_full() -> Problem {
    Problem::typed(
        StatusCode::UNPROCESSABLE_ENTITY,
        "cart-full",
        "Cart is full",
    )
    .with_detail(format!(
        "a cart holds at most {MAX_LINES} different products; remove one first"
    ))
}
