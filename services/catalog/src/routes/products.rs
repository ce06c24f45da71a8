//! `/v1/products`: list, search and fetch products.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use souk_chassis::pagination::{self, decode_cursor, encode_cursor};
use souk_chassis::{FieldError, Json, Path, Problem, Query};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::domain::{CategorySlug, Product, SearchQuery};
use crate::store::After;

/// Query parameters of the product list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Full-text search over name and description; every word must match (as a prefix).
    q: Option<String>,
    /// Only products of this category (slug).
    category: Option<String>,
    /// Only these products: up to 100 comma-separated ids, answered in one page (unknown ids are
    /// left out). Not combinable with `q`, `category` or `cursor`.
    ids: Option<String>,
    /// Page size, 1 to 100 (default 20).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProductPage {
    /// The products, by name (or by relevance for a search).
    items: Vec<Product>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Where a search continues: results are ranked, so the position is an offset.
#[derive(Debug, Serialize, Deserialize)]
struct SearchPosition {
    offset: u32,
}

/// Lists products by name, or searches them when `q` is given.
#[utoipa::path(
    get, path = "/v1/products", tag = "products", params(ListParams),
    responses(
        (status = 200, description = "A page of products", body = ProductPage),
        (status = 400, description = "Invalid query parameters", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn products_list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ProductPage>, ApiError> {
    if let Some(ids) = params.ids.as_deref() {
        return by_ids(&state, ids, &params).await.map(Json);
    }
    let limit = pagination::limit(params.limit)?;
    let category = params
        .category
        .as_deref()
        .map(|c| {
            CategorySlug::parse(c)
                .map_err(|m| Problem::invalid_query(vec![FieldError::new("category", m)]))
        })
        .transpose()?;
    let page = match params.q.as_deref().filter(|q| !q.is_empty()) {
        Some(q) => {
            search(
                &state,
                q,
                category.as_ref(),
                params.cursor.as_deref(),
                limit,
            )
            .await?
        }
        None => list(&state, category.as_ref(), params.cursor.as_deref(), limit).await?,
    };
    Ok(Json(page))
}

async fn list(
    state: &AppState,
    category: Option<&CategorySlug>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<ProductPage, ApiError> {
    let after: Option<After> = cursor.map(decode_cursor).transpose()?;
    // One extra row tells whether another page exists.
    let mut items = state
        .store
        .list(category, after.as_ref(), limit + 1)
        .await?;
    let next_cursor = next_page(&mut items, limit).then(|| {
        items.last().map(|last| {
            encode_cursor(&After {
                name: last.name.clone(),
                id: last.id,
            })
        })
    });
    Ok(ProductPage {
        items,
        next_cursor: next_cursor.flatten(),
    })
}

async fn search(
    state: &AppState,
    q: &str,
    category: Option<&CategorySlug>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<ProductPage, ApiError> {
    let query =
        SearchQuery::parse(q).map_err(|m| Problem::invalid_query(vec![FieldError::new("q", m)]))?;
    let offset = cursor
        .map(decode_cursor::<SearchPosition>)
        .transpose()?
        .map_or(0, |p| p.offset);
    let mut items = state
        .store
        .search(&query, category, offset, limit + 1)
        .await?;
    let next_cursor = next_page(&mut items, limit).then(|| {
        encode_cursor(&SearchPosition {
            offset: offset.saturating_add(limit),
        })
    });
    Ok(ProductPage { items, next_cursor })
}

/// Most ids one `ids` query may name.
const MAX_IDS: usize = 100;

async fn by_ids(state: &AppState, ids: &str, params: &ListParams) -> Result<ProductPage, ApiError> {
    let invalid = |message: &str| Problem::invalid_query(vec![FieldError::new("ids", message)]);
    if params.q.is_some() || params.category.is_some() || params.cursor.is_some() {
        return Err(invalid("ids cannot be combined with q, category or cursor").into());
    }
    let ids = ids
        .split(',')
        .map(|id| Uuid::parse_str(id.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("ids must be comma-separated product ids (UUIDs)"))?;
    if ids.len() > MAX_IDS {
        return Err(invalid("at most 100 ids at once").into());
    }
    let items = state.store.products_by_ids(&ids).await?;
    Ok(ProductPage {
        items,
        next_cursor: None,
    })
}

/// Trims the look-ahead row; true when there was one.
fn next_page(items: &mut Vec<Product>, limit: u32) -> bool {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    more
}

/// One product.
#[utoipa::path(
    get, path = "/v1/products/{id}", tag = "products",
    params(("id" = Uuid, Path, description = "Product id (UUID)")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn products_get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Product>, ApiError> {
    match state.store.product(id).await? {
        Some(product) => Ok(Json(product)),
        None => Err(Problem::not_found(format!("no product with id {id}")).into()),
    }
}
