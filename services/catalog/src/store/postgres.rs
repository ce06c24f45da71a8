//! The catalog on PostgreSQL: ids as UUID, search with a generated tsvector and ts_rank.

use sqlx::{AssertSqlSafe, PgPool, Row};
use uuid::Uuid;

use super::{After, Filter, StoreError, category_from_row, product_from_row, sql};
use crate::domain::{Product, SearchQuery};

fn product_row(row: &sqlx::postgres::PgRow) -> Result<Product, StoreError> {
    let id: Uuid = row.try_get("id")?;
    product_from_row(row, id)
}

pub(super) async fn list(
    pool: &PgPool,
    filter: &Filter<'_>,
    after: Option<&After>,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    let sql = format!(
        "SELECT {} FROM products \
         WHERE ($1::text IS NULL OR category = $1) AND ($2::text IS NULL OR (name, id) > ($2, $3::uuid)) \
         AND ($5::uuid[] IS NULL OR id = ANY($5)) \
         ORDER BY name, id LIMIT $4",
        sql::COLUMNS
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(filter.category())
        .bind(after.map(|a| a.name.as_str()))
        .bind(after.map(|a| a.id))
        .bind(i64::from(limit))
        .bind(filter.ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(product_row).collect()
}

pub(super) async fn search(
    pool: &PgPool,
    query: &SearchQuery,
    filter: &Filter<'_>,
    offset: u32,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    // Name matches (weight A) rank above description matches (weight B).
    let sql = "SELECT id, sku, name, description, category, price_amount, currency, image_url \
         FROM products, to_tsquery('english', $1) AS q \
         WHERE search @@ q AND ($2::text IS NULL OR category = $2) \
         AND ($5::uuid[] IS NULL OR id = ANY($5)) \
         ORDER BY ts_rank(search, q) DESC, id LIMIT $3 OFFSET $4";
    let rows = sqlx::query(sql)
        .bind(query.to_tsquery())
        .bind(filter.category())
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .bind(filter.ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(product_row).collect()
}

pub(super) async fn product_by_id(pool: &PgPool, id: Uuid) -> Result<Option<Product>, StoreError> {
    let sql = format!("SELECT {} FROM products WHERE id = $1", sql::COLUMNS);
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(product_row).transpose()
}

pub(super) async fn categories(pool: &PgPool) -> Result<Vec<crate::domain::Category>, StoreError> {
    let rows = sqlx::query(sql::CATEGORIES).fetch_all(pool).await?;
    rows.iter().map(category_from_row).collect()
}
