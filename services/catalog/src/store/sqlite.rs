//! The catalog on SQLite: ids as hyphenated TEXT, search with FTS5 and bm25 ranking.

use sqlx::{AssertSqlSafe, Row, SqlitePool};
use uuid::Uuid;

use super::{After, Filter, StoreError, category_from_row, product_from_row, sql};
use crate::domain::{Product, SearchQuery};

fn product_row(row: &sqlx::sqlite::SqliteRow) -> Result<Product, StoreError> {
    let id: String = row.try_get("id")?;
    let id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt {
        column: "id",
        reason: e.to_string(),
    })?;
    product_from_row(row, id)
}

pub(super) async fn list(
    pool: &SqlitePool,
    filter: &Filter<'_>,
    after: Option<&After>,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    // Ids arrive as one bound JSON array, however many: no SQL is built from the input.
    let sql = format!(
        "SELECT {} FROM products \
         WHERE ($1 IS NULL OR category = $1) AND ($2 IS NULL OR (name, id) > ($2, $3)) \
         AND ($5 IS NULL OR id IN (SELECT value FROM json_each($5))) \
         ORDER BY name, id LIMIT $4",
        sql::COLUMNS
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(filter.category())
        .bind(after.map(|a| a.name.as_str()))
        .bind(after.map(|a| a.id.to_string()))
        .bind(i64::from(limit))
        .bind(filter.ids_json())
        .fetch_all(pool)
        .await?;
    rows.iter().map(product_row).collect()
}

pub(super) async fn search(
    pool: &SqlitePool,
    query: &SearchQuery,
    filter: &Filter<'_>,
    offset: u32,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    // Name matches weigh ten times description matches; bm25 is lower-is-better.
    let sql = "SELECT p.id, p.sku, p.name, p.description, p.category, p.price_amount, p.currency, p.image_url \
         FROM products_fts f JOIN products p ON p.rowid = f.rowid \
         WHERE products_fts MATCH $1 AND ($2 IS NULL OR p.category = $2) \
         AND ($5 IS NULL OR p.id IN (SELECT value FROM json_each($5))) \
         ORDER BY bm25(products_fts, 10.0, 1.0), p.id LIMIT $3 OFFSET $4";
    let rows = sqlx::query(sql)
        .bind(query.to_fts5())
        .bind(filter.category())
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .bind(filter.ids_json())
        .fetch_all(pool)
        .await?;
    rows.iter().map(product_row).collect()
}

pub(super) async fn product_by_id(
    pool: &SqlitePool,
    id: Uuid,
) -> Result<Option<Product>, StoreError> {
    let sql = format!("SELECT {} FROM products WHERE id = $1", sql::COLUMNS);
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(product_row).transpose()
}

pub(super) async fn categories(
    pool: &SqlitePool,
) -> Result<Vec<crate::domain::Category>, StoreError> {
    let rows = sqlx::query(sql::CATEGORIES).fetch_all(pool).await?;
    rows.iter().map(category_from_row).collect()
}
