//! The catalog's storage: SQLite (embedded default) or PostgreSQL, chosen by the database URL.
//!
//! Both engines hold the same schema (see `migrations/`) and answer the same queries; they differ
//! in how ids are stored (TEXT vs UUID) and in full-text search (FTS5 vs tsvector).
//!
//! Every change an administrator makes to a product appends its event (`crate::events`) to the
//! outbox in the transaction that makes the change, and wakes the outbox's readers once it has
//! committed. The demo catalog is loaded without events.

mod postgres;
mod sqlite;

use souk_chassis::Database;
use souk_chassis::db::{DatabaseConfig, DbError, Migrations, Reads};
use souk_chassis::events::{
    OUTBOX_META_MIGRATION_POSTGRES, OUTBOX_META_MIGRATION_SQLITE, OUTBOX_MIGRATION_POSTGRES,
    OUTBOX_MIGRATION_SQLITE, Outbox,
};
use uuid::Uuid;

use crate::domain::{Category, CategorySlug, Product, SearchQuery};
use crate::events;
use crate::seed::DemoCatalog;

/// The catalog's migrations for both engines, embedded in the binary: its own schema, then the
/// chassis' outbox table and its epoch and retention watermark.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        (
            1,
            "catalog",
            include_str!("../../migrations/sqlite/0001_catalog.sql"),
        ),
        OUTBOX_MIGRATION_SQLITE,
        OUTBOX_META_MIGRATION_SQLITE,
    ],
    postgres: &[
        (
            1,
            "catalog",
            include_str!("../../migrations/postgres/0001_catalog.sql"),
        ),
        OUTBOX_MIGRATION_POSTGRES,
        OUTBOX_META_MIGRATION_POSTGRES,
    ],
};

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A read on SQLite's read connections failed.
    #[error("database read failed")]
    Read(#[from] rusqlite::Error),
    /// A stored row does not hold a valid value (the schema was changed behind our back).
    #[error("stored {column} is invalid: {reason}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// What an administrator sets on a product.
#[derive(Debug, Clone)]
pub struct ProductInput {
    /// Unique SKU.
    pub sku: crate::domain::Sku,
    /// Display name.
    pub name: String,
    /// Product copy.
    pub description: String,
    /// An existing category.
    pub category: CategorySlug,
    /// Unit price.
    pub price: crate::domain::Money,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No category with that slug.
    #[error("no such category")]
    UnknownCategory,
    /// Another product has that SKU.
    #[error("the SKU is taken")]
    SkuTaken,
    /// No product with that id.
    #[error("no such product")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for WriteError {
    fn from(err: sqlx::Error) -> Self {
        if err
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation())
        {
            return Self::SkuTaken;
        }
        if err
            .as_database_error()
            .is_some_and(|e| e.is_foreign_key_violation())
        {
            return Self::UnknownCategory;
        }
        Self::Store(StoreError::Database(err))
    }
}

/// Binds the same product columns on either engine; ids differ (TEXT on SQLite, UUID on PostgreSQL).
macro_rules! bind_product {
    ($query:expr, $id:expr, $input:expr) => {
        $query
            .bind($id)
            .bind($input.sku.as_str())
            .bind(&$input.name)
            .bind(&$input.description)
            .bind($input.category.as_str())
            .bind($input.price.amount)
            .bind($input.price.currency.as_str())
            .bind($input.sku.image_url())
    };
}

/// The product that binding `$input` with [`bind_product!`] stores under `$id`, as reads return it.
macro_rules! product_of {
    ($id:expr, $input:expr) => {
        Product {
            id: $id,
            sku: $input.sku.as_str().to_owned(),
            name: $input.name.clone(),
            description: $input.description.clone(),
            category: $input.category.as_str().to_owned(),
            price: $input.price.clone(),
            image_url: $input.sku.image_url(),
        }
    };
}

/// Runs `$body` with `$tx`, a writing transaction, `$append`, the engine's outbox append, and
/// `$id`, which turns a product id into what the engine stores (TEXT on SQLite, UUID on
/// PostgreSQL).
macro_rules! in_write_tx {
    ($db:expr, |$tx:ident, $append:ident, $id:ident| $body:expr) => {
        souk_chassis::in_write_tx!($db, |$tx, $append = (souk_chassis::events::append_sqlite, souk_chassis::events::append_postgres), $id = (|id: Uuid| id.to_string(), |id: Uuid| id)| $body)
    };
}

/// Loads the demo catalog inside transaction `$tx` unless products exist; `$id` turns a new id
/// into what the engine stores. Returns how many products were added.
macro_rules! seed_in {
    ($tx:ident, $demo:expr, $id:expr) => {{
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
            .fetch_one(&mut *$tx)
            .await?;
        if count > 0 {
            return Ok(0);
        }
        for (position, category) in $demo.categories.iter().enumerate() {
            sqlx::query(sql::INSERT_CATEGORY)
                .bind(&category.slug)
                .bind(&category.name)
                .bind(&category.description)
                .bind(i64::try_from(position).unwrap_or(i64::MAX))
                .execute(&mut *$tx)
                .await?;
        }
        let mut added = 0;
        for product in &$demo.products {
            added += bind_product!(
                sqlx::query(sql::INSERT_PRODUCT),
                ($id)(Uuid::now_v7()),
                product
            )
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        }
        $tx.commit().await?;
        Ok(added)
    }};
}

/// Where a product listing continues: after this (name, id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct After {
    /// Name of the last product on the previous page.
    pub name: String,
    /// Id of the last product on the previous page.
    pub id: Uuid,
}

/// What narrows a list or search: every part given must hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// Only products of this category.
    pub category: Option<&'a CategorySlug>,
    /// Only these products.
    pub ids: Option<&'a [Uuid]>,
}

impl Filter<'_> {
    fn category(&self) -> Option<&str> {
        self.category.map(CategorySlug::as_str)
    }

    /// The ids as one JSON array of strings (SQLite binds them so, however many there are).
    fn ids_json(&self) -> Option<String> {
        self.ids.map(|ids| {
            serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
                .unwrap_or_else(|_| "[]".into())
        })
    }
}

/// The catalog's store, and the outbox its changes write their events to.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// The hot reads' path: SQLite's read connections, or PostgreSQL's pool.
    reads: Reads,
    outbox: Outbox,
}

impl Store {
    /// Connects to the configured database and brings its schema up to date.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, DbError> {
        let db = Database::connect(config).await?;
        db.migrate(&MIGRATIONS).await?;
        let reads = Reads::open(&db)?;
        let outbox = Outbox::new(db.clone(), crate::NAME);
        Ok(Self { db, reads, outbox })
    }

    /// The underlying pool (for readiness checks).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The outbox of the catalog's events (served as a feed, or relayed to NATS).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// A page of products by name, after `after`, narrowed by `filter`.
    pub async fn list(
        &self,
        filter: &Filter<'_>,
        after: Option<&After>,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError> {
        match &self.reads {
            Reads::Sqlite(reads) => sqlite::list(reads, filter, after, limit),
            Reads::Postgres(pool) => postgres::list(pool, filter, after, limit).await,
        }
    }

    /// Products matching `query`, best match first, narrowed by `filter`.
    pub async fn search(
        &self,
        query: &SearchQuery,
        filter: &Filter<'_>,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError> {
        if query.is_empty() {
            return Ok(Vec::new());
        }
        match &self.reads {
            Reads::Sqlite(reads) => sqlite::search(reads, query, filter, offset, limit),
            Reads::Postgres(pool) => postgres::search(pool, query, filter, offset, limit).await,
        }
    }

    /// One product.
    pub async fn product(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        match &self.reads {
            Reads::Sqlite(reads) => sqlite::product_by_id(reads, id),
            Reads::Postgres(pool) => postgres::product_by_id(pool, id).await,
        }
    }

    /// Every category in display order, with its product count.
    pub async fn categories(&self) -> Result<Vec<Category>, StoreError> {
        match &self.reads {
            Reads::Sqlite(reads) => sqlite::categories(reads),
            Reads::Postgres(pool) => postgres::categories(pool).await,
        }
    }

    /// Adds a product, with its `product_created` event.
    pub async fn create(&self, input: &ProductInput) -> Result<Product, WriteError> {
        let product = product_of!(Uuid::now_v7(), input);
        in_write_tx!(&self.db, |tx, append, id| {
            let inserted = bind_product!(sqlx::query(sql::INSERT_PRODUCT), id(product.id), input)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                return Err(WriteError::SkuTaken);
            }
            append(&mut tx, &events::created(&product)).await?;
            tx.commit().await?;
        });
        self.outbox.notify();
        Ok(product)
    }

    /// Replaces a product's fields, with its `product_updated` event.
    pub async fn update(&self, id: Uuid, input: &ProductInput) -> Result<Product, WriteError> {
        let product = product_of!(id, input);
        in_write_tx!(&self.db, |tx, append, to_id| {
            let updated = bind_product!(sqlx::query(sql::UPDATE_PRODUCT), to_id(id), input)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(WriteError::NotFound);
            }
            append(&mut tx, &events::updated(&product)).await?;
            tx.commit().await?;
        });
        self.outbox.notify();
        Ok(product)
    }

    /// Removes a product, with its `product_deleted` event; `false` when there was none.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let sql = "DELETE FROM products WHERE id = $1 RETURNING sku";
        in_write_tx!(&self.db, |tx, append, to_id| {
            let sku: Option<String> = sqlx::query_scalar(sql)
                .bind(to_id(id))
                .fetch_optional(&mut *tx)
                .await?;
            let Some(sku) = sku else {
                return Ok(false);
            };
            append(&mut tx, &events::deleted(id, &sku)).await?;
            tx.commit().await?;
        });
        self.outbox.notify();
        Ok(true)
    }

    /// Loads `demo` if the catalog holds no product yet. Safe to run from several instances at
    /// once: rows that already exist are left alone. Returns how many products were added.
    ///
    /// The demo catalog gets no events, like products stored before the catalog had an outbox:
    /// consumers learn those from the product list, as inventory's first sync does before it is
    /// ready. (Announcing 220 products would only make inventory learn them twice, on the path
    /// of the first start.)
    pub async fn seed_if_empty(&self, demo: &DemoCatalog) -> Result<u64, StoreError> {
        match &self.db {
            Database::Sqlite(pool) => {
                // IMMEDIATE takes the write lock up front: instances starting together queue here
                // instead of failing to upgrade a read lock.
                let mut tx = souk_chassis::db::begin_write_sqlite(pool).await?;
                seed_in!(tx, demo, |id: Uuid| id.to_string())
            }
            Database::Postgres(pool) => {
                let mut tx = souk_chassis::db::begin_write_postgres(pool).await?;
                // Instances starting together queue here instead of seeding side by side.
                sqlx::query("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                seed_in!(tx, demo, |id: Uuid| id)
            }
        }
    }
}

/// SQL shared by both engines (sqlx binds `$N` on SQLite too).
mod sql {
    pub(super) const COLUMNS: &str =
        "id, sku, name, description, category, price_amount, currency, image_url";

    pub(super) const CATEGORIES: &str = "SELECT c.slug, c.name, c.description, COUNT(p.id) AS product_count \
         FROM categories c LEFT JOIN products p ON p.category = c.slug \
         GROUP BY c.slug, c.name, c.description, c.position ORDER BY c.position, c.slug";

    pub(super) const INSERT_CATEGORY: &str = "INSERT INTO categories (slug, name, description, position) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (slug) DO NOTHING";

    pub(super) const UPDATE_PRODUCT: &str = "UPDATE products SET sku = $2, name = $3, description = $4, category = $5, \
         price_amount = $6, currency = $7, image_url = $8 WHERE id = $1";

    pub(super) const INSERT_PRODUCT: &str = "INSERT INTO products (id, sku, name, description, category, price_amount, currency, image_url) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (sku) DO NOTHING";
}

/// Builds a product from the columns both engines return, given its already-decoded id.
fn product_from_row<'r, R>(row: &'r R, id: Uuid) -> Result<Product, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let currency: String = row.try_get("currency")?;
    Ok(Product {
        id,
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        category: row.try_get("category")?,
        price: money(row.try_get("price_amount")?, &currency)?,
        image_url: row.try_get("image_url")?,
    })
}

/// A stored price: its amount and currency columns.
fn money(amount: i64, currency: &str) -> Result<crate::domain::Money, StoreError> {
    use crate::domain::{Currency, Money};
    let currency = Currency::parse(currency).map_err(|reason| StoreError::Corrupt {
        column: "currency",
        reason,
    })?;
    Money::price(amount, currency).map_err(|reason| StoreError::Corrupt {
        column: "price_amount",
        reason,
    })
}

fn category_from_row<'r, R>(row: &'r R) -> Result<Category, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Category {
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        product_count: row.try_get("product_count")?,
    })
}
