//! The catalog on SQLite: ids as hyphenated TEXT, search with FTS5 and bm25 ranking.
//!
//! Reads run on the chassis' [`SqliteReads`] (on the calling thread, statements prepared once per
//! connection): they are the catalog's hot path and each touches an index and one bounded page.
//! Writes go through the sqlx pool in `super`.

use rusqlite::named_params;
use souk_chassis::db::inline::SqliteReads;
use uuid::Uuid;

use super::{After, Filter, StoreError, money, sql};
use crate::domain::{Category, Product, SearchQuery};

/// The columns of `sql::COLUMNS`, in its order (the statements below spell them out).
fn product_row(row: &rusqlite::Row<'_>) -> Result<Product, StoreError> {
    let id: String = row.get(0)?;
    let id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt {
        column: "id",
        reason: e.to_string(),
    })?;
    Ok(Product {
        id,
        sku: row.get(1)?,
        name: row.get(2)?,
        description: row.get(3)?,
        category: row.get(4)?,
        price: money(row.get(5)?, &row.get::<_, String>(6)?)?,
        image_url: row.get(7)?,
    })
}

/// Runs `sql` with `params` and maps every row with `map`.
fn rows<T>(
    reads: &SqliteReads,
    sql: &str,
    params: &[(&str, &dyn rusqlite::ToSql)],
    map: fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    reads.read(|connection| {
        let mut statement = connection.prepare_cached(sql)?;
        let mut rows = statement.query(params)?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            found.push(map(row)?);
        }
        Ok(found)
    })
}

/// The conditions `filter` (and a listing's `after`) set, each a constant fragment, and the
/// values they bind.
///
/// Only the parts given are in the statement: a `(:x IS NULL OR …)` condition makes SQLite plan
/// around the bound value, so the statement would be prepared again whenever the value changes,
/// and no index could serve it. Each combination is its own statement, prepared once per
/// connection.
struct Conditions<'a> {
    sql: Vec<&'static str>,
    params: Vec<(&'static str, Box<dyn rusqlite::ToSql + 'a>)>,
}

impl<'a> Conditions<'a> {
    fn new() -> Self {
        Self {
            sql: Vec::new(),
            params: Vec::new(),
        }
    }

    /// A condition, and the value of its parameter `name`.
    fn with(
        mut self,
        sql: &'static str,
        name: &'static str,
        value: impl rusqlite::ToSql + 'a,
    ) -> Self {
        self.sql.push(sql);
        self.value(name, value)
    }

    /// The value of parameter `name`, used by a condition already given or by the statement.
    fn value(mut self, name: &'static str, value: impl rusqlite::ToSql + 'a) -> Self {
        self.params.push((name, Box::new(value)));
        self
    }

    fn filter(mut self, filter: &Filter<'_>, prefix: Prefix) -> Self {
        if let Some(category) = filter.category() {
            self = self.with(
                prefix.pick("category = :category", "p.category = :category"),
                ":category",
                category.to_owned(),
            );
        }
        if let Some(ids) = filter.ids_json() {
            self = self.with(
                prefix.pick(
                    "id IN (SELECT value FROM json_each(:ids))",
                    "p.id IN (SELECT value FROM json_each(:ids))",
                ),
                ":ids",
                ids,
            );
        }
        self
    }

    /// `AND`-joined, each after the keyword that starts them.
    fn joined(&self, start: &str) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!(" {start} {}", self.sql.join(" AND "))
        }
    }

    fn bind(&self) -> Vec<(&str, &dyn rusqlite::ToSql)> {
        self.params
            .iter()
            .map(|(name, value)| (*name, value.as_ref() as &dyn rusqlite::ToSql))
            .collect()
    }
}

/// Whether the columns are the products table's own or under its alias `p`.
#[derive(Clone, Copy)]
enum Prefix {
    Bare,
    P,
}

impl Prefix {
    fn pick(self, bare: &'static str, p: &'static str) -> &'static str {
        match self {
            Self::Bare => bare,
            Self::P => p,
        }
    }
}

pub(super) fn list(
    reads: &SqliteReads,
    filter: &Filter<'_>,
    after: Option<&After>,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    let mut conditions = Conditions::new().filter(filter, Prefix::Bare);
    if let Some(after) = after {
        conditions = conditions
            .with(
                "(name, id) > (:after_name, :after_id)",
                ":after_name",
                after.name.as_str(),
            )
            .value(":after_id", after.id.to_string());
    }
    let conditions = conditions.value(":limit", i64::from(limit));
    // Ids arrive as one bound JSON array, however many: no SQL is built from the input, only
    // from the constant fragments above.
    let sql = format!(
        "SELECT id, sku, name, description, category, price_amount, currency, image_url \
         FROM products{} ORDER BY name, id LIMIT :limit",
        conditions.joined("WHERE")
    );
    rows(reads, &sql, &conditions.bind(), product_row)
}

pub(super) fn search(
    reads: &SqliteReads,
    query: &SearchQuery,
    filter: &Filter<'_>,
    offset: u32,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    let conditions = Conditions::new()
        .with("products_fts MATCH :match", ":match", query.to_fts5())
        .filter(filter, Prefix::P)
        .value(":limit", i64::from(limit))
        .value(":offset", i64::from(offset));
    // Name matches weigh ten times description matches; bm25 is lower-is-better.
    let sql = format!(
        "SELECT p.id, p.sku, p.name, p.description, p.category, p.price_amount, p.currency, p.image_url \
         FROM products_fts f JOIN products p ON p.rowid = f.rowid{} \
         ORDER BY bm25(products_fts, 10.0, 1.0), p.id LIMIT :limit OFFSET :offset",
        conditions.joined("WHERE")
    );
    rows(reads, &sql, &conditions.bind(), product_row)
}

pub(super) fn product_by_id(reads: &SqliteReads, id: Uuid) -> Result<Option<Product>, StoreError> {
    const SQL: &str = "SELECT id, sku, name, description, category, price_amount, currency, image_url \
         FROM products WHERE id = :id";
    let found = rows(
        reads,
        SQL,
        named_params! { ":id": id.to_string() },
        product_row,
    )?;
    Ok(found.into_iter().next())
}

pub(super) fn categories(reads: &SqliteReads) -> Result<Vec<Category>, StoreError> {
    rows(reads, sql::CATEGORIES, &[], |row| {
        Ok(Category {
            slug: row.get(0)?,
            name: row.get(1)?,
            description: row.get(2)?,
            product_count: row.get(3)?,
        })
    })
}
