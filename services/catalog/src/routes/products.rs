//! `/v1/products`: list, search and fetch products.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use souk_chassis::pagination::{self, encode_cursor};
use souk_chassis::{FieldError, Json, Path, Problem, Query};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::domain::{CategorySlug, Product, SearchQuery};
use crate::store::{After, Filter};

/// Query parameters of the product list. Every one given narrows the list; an empty `q`,
/// `category` or `cursor` counts as absent (what a search form sends for a field left blank).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Full-text search over name and description; every word must match (as a prefix).
    #[param(max_length = 200)]
    q: Option<String>,
    /// Only products of this category (slug).
    #[param(pattern = r"^[a-z0-9-]{0,64}$")]
    category: Option<String>,
    /// Only these products (comma-separated ids, 1 to 100; unknown ids are left out). Without
    /// a `limit`, one page holds them all.
    #[param(value_type = Option<Vec<Uuid>>, style = Form, explode = false, min_items = 1, max_items = 100)]
    ids: Option<String>,
    /// Page size, 1 to 100 (default 20, or the number of `ids`).
    #[param(minimum = 1, maximum = 100)]
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
    let ids = params.ids.as_deref().map(parse_ids).transpose()?;
    let limit = match (&ids, params.limit) {
        (Some(ids), None) => u32::try_from(ids.len()).unwrap_or(u32::MAX),
        _ => pagination::limit(params.limit)?,
    };
    let category = params
        .category
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            CategorySlug::parse(c)
                .map_err(|m| Problem::invalid_query(vec![FieldError::new("category", m)]))
        })
        .transpose()?;
    let filter = Filter {
        category: category.as_ref(),
        ids: ids.as_deref(),
    };
    let cursor = params.cursor.as_deref();
    let page = match params.q.as_deref().filter(|q| !q.is_empty()) {
        Some(q) => search(&state, q, &filter, cursor, limit).await?,
        None => list(&state, &filter, cursor, limit).await?,
    };
    Ok(Json(page))
}

async fn list(
    state: &AppState,
    filter: &Filter<'_>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<ProductPage, ApiError> {
    let after: Option<After> = pagination::position(cursor)?;
    // One extra row tells whether another page exists.
    let mut items = state.store.list(filter, after.as_ref(), limit + 1).await?;
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
    filter: &Filter<'_>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<ProductPage, ApiError> {
    let query =
        SearchQuery::parse(q).map_err(|m| Problem::invalid_query(vec![FieldError::new("q", m)]))?;
    let offset = pagination::position::<SearchPosition>(cursor)?.map_or(0, |p| p.offset);
    let mut items = state
        .store
        .search(&query, filter, offset, limit + 1)
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

/// `ids` as product ids: 1 to 100, comma-separated.
fn parse_ids(ids: &str) -> Result<Vec<Uuid>, Problem> {
    let invalid = |message: &str| Problem::invalid_query(vec![FieldError::new("ids", message)]);
    let ids = ids
        .split(',')
        .map(|id| Uuid::parse_str(id.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("ids must be comma-separated product ids (UUIDs)"))?;
    if ids.len() > MAX_IDS {
        return Err(invalid("at most 100 ids at once"));
    }
    Ok(ids)
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
