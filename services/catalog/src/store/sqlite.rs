//! The catalog on SQLite: ids as hyphenated TEXT, search with FTS5 and bm25 ranking.

use sqlx::{AssertSqlSafe, Row, SqlitePool};
use uuid::Uuid;

use super::{After, StoreError, category_from_row, product_from_row, sql};
use crate::domain::{Product, SearchQuery};
use crate::seed::DemoCatalog;

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
    category: Option<&str>,
    after: Option<&After>,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    let sql = format!(
        "SELECT {} FROM products \
         WHERE ($1 IS NULL OR category = $1) AND ($2 IS NULL OR (name, id) > ($2, $3)) \
         ORDER BY name, id LIMIT $4",
        sql::COLUMNS
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(category)
        .bind(after.map(|a| a.name.as_str()))
        .bind(after.map(|a| a.id.to_string()))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(product_row).collect()
}

pub(super) async fn search(
    pool: &SqlitePool,
    query: &SearchQuery,
    category: Option<&str>,
    offset: u32,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    // Name matches weigh ten times description matches; bm25 is lower-is-better.
    let sql = "SELECT p.id, p.sku, p.name, p.description, p.category, p.price_amount, p.currency, p.image_url \
         FROM products_fts f JOIN products p ON p.rowid = f.rowid \
         WHERE products_fts MATCH $1 AND ($2 IS NULL OR p.category = $2) \
         ORDER BY bm25(products_fts, 10.0, 1.0), p.id LIMIT $3 OFFSET $4";
    let rows = sqlx::query(sql)
        .bind(query.to_fts5())
        .bind(category)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
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

pub(super) async fn seed_if_empty(
    pool: &SqlitePool,
    demo: &DemoCatalog,
) -> Result<u64, StoreError> {
    // IMMEDIATE takes the write lock up front: instances starting together queue here instead of
    // failing to upgrade a read lock.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(&mut *tx)
        .await?;
    if count > 0 {
        return Ok(0);
    }
    for (position, category) in demo.categories.iter().enumerate() {
        sqlx::query(sql::INSERT_CATEGORY)
            .bind(&category.slug)
            .bind(&category.name)
            .bind(&category.description)
            .bind(position as i64)
            .execute(&mut *tx)
            .await?;
    }
    let mut added = 0;
    for p in &demo.products {
        added += sqlx::query(sql::INSERT_PRODUCT)
            .bind(Uuid::now_v7().to_string())
            .bind(p.sku.as_str())
            .bind(&p.name)
            .bind(&p.description)
            .bind(&p.category)
            .bind(p.price.amount)
            .bind(p.price.currency.as_str())
            .bind(p.sku.image_url())
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(added)
}
