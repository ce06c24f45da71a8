//! Browsing: the home page, the product list (search, category, paging) and a product's page.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Deserialize;
use souk_chassis::Path;

use super::{App, id, query};
use crate::gateway::{Category, ProductQuery};
use crate::pages::{self, HomePage, PageError, ProductPage, ProductsPage, encode};
use crate::session::Shopper;

/// How many products the home page features.
const FEATURED: u32 = 12;

/// `GET /`: categories and featured products.
pub(super) async fn home(State(app): State<App>, shopper: Shopper) -> Response {
    let result = async {
        let who = shopper.anonymous();
        let featured = ProductQuery {
            limit: FEATURED,
            ..ProductQuery::default()
        };
        let (categories, products) = tokio::join!(
            app.gateway.categories(&who),
            app.gateway.products(&featured, &who)
        );
        pages::render(&HomePage {
            chrome: shopper.chrome(),
            categories: categories?,
            featured: products?.items,
        })
    }
    .await;
    shopper.finish(result)
}

/// The product list's query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ListQuery {
    q: String,
    category: String,
    cursor: String,
}

/// `GET /products?q=&category=&cursor=`.
pub(super) async fn products(
    State(app): State<App>,
    shopper: Shopper,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = async {
        let asked: ListQuery = query(raw.as_deref())?;
        let q = asked.q.trim().chars().take(200).collect::<String>();
        let who = shopper.anonymous();
        let list = ProductQuery {
            q: (!q.is_empty()).then(|| q.clone()),
            category: (!asked.category.is_empty()).then(|| asked.category.clone()),
            limit: app.settings.page_size,
            cursor: (!asked.cursor.is_empty()).then(|| asked.cursor.clone()),
        };
        let (categories, page) = tokio::join!(
            app.gateway.categories(&who),
            app.gateway.products(&list, &who)
        );
        // The filter is a nicety: the list still shows when the categories cannot be had.
        let categories = categories.unwrap_or_default();
        let page = page.map_err(|e| match PageError::from(e) {
            // A cursor or category the catalog refuses is a bad link, not a broken shop.
            PageError::Refused { .. } => PageError::BadRequest(
                "This list link is out of date. Start again from the first page.".into(),
            ),
            other => other,
        })?;
        let base = list_link(&q, &asked.category);
        let mut chrome = shopper.chrome();
        chrome.q = q;
        pages::render(&ProductsPage {
            chrome,
            category: categories
                .iter()
                .find(|c| c.slug == asked.category)
                .cloned(),
            categories,
            next: page
                .next_cursor
                .map(|cursor| format!("{base}&cursor={}", encode(&cursor))),
            first: (!asked.cursor.is_empty()).then_some(base),
            products: page.items,
        })
    }
    .await;
    shopper.finish(result)
}

/// `/products?q=…&category=…` (always with a `?`, so `&cursor=` can follow).
fn list_link(q: &str, category: &str) -> String {
    format!("/products?q={}&category={}", encode(q), encode(category))
}

/// `GET /products/{id}`: the product, and what one can buy now — or "availability unknown"
/// when inventory did not answer, never an error page for that.
pub(super) async fn product(
    State(app): State<App>,
    shopper: Shopper,
    Path(raw_id): Path<String>,
) -> Response {
    let result = async {
        let product_id = id(&raw_id)?;
        let who = shopper.anonymous();
        let (details, categories) = tokio::join!(
            app.gateway.details(&product_id, &who),
            app.gateway.categories(&who)
        );
        let details = details?;
        let category_name = categories
            .unwrap_or_default()
            .into_iter()
            .find(|c: &Category| c.slug == details.product.category)
            .map_or_else(|| details.product.category.clone(), |c| c.name);
        let availability = if details.degraded.iter().any(|d| d == "availability") {
            None
        } else {
            details.availability
        };
        pages::render(&ProductPage {
            chrome: shopper.chrome(),
            product: details.product,
            availability,
            category_name,
        })
    }
    .await;
    shopper.finish(result)
}
