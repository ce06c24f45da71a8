//! `/v1/categories`: the categories, in display order.

use axum::extract::State;
use serde::Serialize;
use souk_chassis::{Json, Problem};
use utoipa::ToSchema;

use super::{ApiError, AppState};
use crate::domain::Category;

/// Every category (one page: there are few).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CategoryList {
    /// The categories, in display order.
    items: Vec<Category>,
    /// Always `null`: categories fit on one page.
    next_cursor: Option<String>,
}

/// Lists the categories with their product counts.
#[utoipa::path(
    get, path = "/v1/categories", tag = "categories",
    responses(
        (status = 200, description = "Every category", body = CategoryList),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn categories_list(
    State(state): State<AppState>,
) -> Result<Json<CategoryList>, ApiError> {
    let items = state.store.categories().await?;
    Ok(Json(CategoryList {
        items,
        next_cursor: None,
    }))
}
