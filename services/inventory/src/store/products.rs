//! The catalog's products as inventory knows them: learning one (new, with a new SKU, or back
//! after a deletion) and retiring one the catalog deleted. Each is one transaction; a product
//! event's handler records the event in the consumer's inbox in that same transaction, so its
//! effect happens once, in the producer's order, however many instances read the events.

use std::collections::HashMap;

use souk_chassis::Database;
use uuid::Uuid;

use super::{Store, StoreError, parse_id, retrying};
use crate::domain::Timestamp;

/// A product inventory counts (or counted, before the catalog deleted it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownProduct {
    /// Its SKU as the catalog last said (for a retired product, the one it had).
    pub sku: String,
    /// The catalog deleted it: out of sale.
    pub retired: bool,
}

/// A product to start counting.
#[derive(Debug, Clone, Copy)]
pub struct NewProduct<'a> {
    /// The catalog's id.
    pub id: Uuid,
    /// Its SKU.
    pub sku: &'a str,
    /// Units on sale from the start.
    pub available: i64,
}

/// An event whose effect this is: recorded in `consumer`'s inbox with the effect.
#[derive(Debug, Clone, Copy)]
pub struct InboxEntry<'a> {
    /// The consumer's name (`inventory.catalog`).
    pub consumer: &'a str,
    /// The event's id.
    pub event_id: &'a str,
}

/// What learning a product's SKU did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A product inventory did not know: counted from now on.
    Added,
    /// It has a new SKU.
    Renamed,
    /// It was retired, and is on sale again with this SKU.
    Restored,
    /// Inventory knew it with this SKU.
    Unchanged,
    /// Another product holds this SKU: nothing changed.
    SkuTaken,
    /// The inbox had the event: nothing changed.
    AlreadyHandled,
}

/// What retiring a product did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    /// It was on sale; now it is not, and its SKU is free.
    Retired,
    /// Inventory never counted it: a retired row keeps a late reconciliation from adding it.
    Tombstoned,
    /// It was retired already.
    AlreadyRetired,
    /// The inbox had the event: nothing changed.
    AlreadyHandled,
}

/// Runs `$body` with `$tx`, a writing transaction, and `$record`, the engine's inbox record.
macro_rules! in_write_tx {
    ($db:expr, |$tx:ident, $record:ident| $body:expr) => {
        souk_chassis::in_write_tx!($db, |$tx, $record = (souk_chassis::events::inbox_record_sqlite, souk_chassis::events::inbox_record_postgres)| $body)
    };
}

impl Store {
    /// Every product inventory knows, retired ones included, by product id.
    pub async fn known_products(&self) -> Result<HashMap<Uuid, KnownProduct>, StoreError> {
        let sql =
            "SELECT product_id, COALESCE(retired_sku, sku), retired_at IS NOT NULL FROM stock";
        let rows: Vec<(String, String, bool)> = match &self.db {
            Database::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        rows.into_iter()
            .map(|(id, sku, retired)| Ok((parse_id(&id)?, KnownProduct { sku, retired })))
            .collect()
    }

    /// Starts counting each of `products`, in one transaction (a first sync adds hundreds, and
    /// readiness waits for it); like [`Store::add_product`], a product or SKU known already is
    /// left alone. Returns, in order, which were added.
    pub async fn add_products(
        &self,
        products: &[NewProduct<'_>],
        now: Timestamp,
    ) -> Result<Vec<bool>, StoreError> {
        if products.is_empty() {
            return Ok(Vec::new());
        }
        retrying(|| self.try_add_products(products, now)).await
    }

    async fn try_add_products(
        &self,
        products: &[NewProduct<'_>],
        now: Timestamp,
    ) -> Result<Vec<bool>, StoreError> {
        in_write_tx!(&self.db, |tx, _record| {
            let mut added = Vec::with_capacity(products.len());
            for product in products {
                let inserted = sqlx::query(super::sql::ADD_PRODUCT)
                    .bind(product.id.to_string())
                    .bind(product.sku)
                    .bind(product.available)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                added.push(inserted == 1);
            }
            tx.commit().await?;
            Ok(added)
        })
    }

    /// Whether inventory knows product `product_id` (on sale or retired).
    pub async fn knows_product(&self, product_id: Uuid) -> Result<bool, StoreError> {
        let id = product_id.to_string();
        let found: Option<String> = match &self.db {
            Database::Sqlite(pool) => {
                sqlx::query_scalar(sql::LOOKUP)
                    .bind(&id)
                    .fetch_optional(pool)
                    .await?
            }
            Database::Postgres(pool) => {
                sqlx::query_scalar(sql::LOOKUP)
                    .bind(&id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(found.is_some())
    }

    /// Makes product `product_id` known with `sku`, on sale: added with `available` units when
    /// new, renamed when its SKU changed, restored (with the units it had) when it was retired.
    /// With `inbox`, only if the event was not handled before, and recorded in the same
    /// transaction.
    pub async fn learn_product(
        &self,
        product_id: Uuid,
        sku: &str,
        available: i64,
        now: Timestamp,
        inbox: Option<InboxEntry<'_>>,
    ) -> Result<Learned, StoreError> {
        retrying(|| self.try_learn(product_id, sku, available, now, inbox)).await
    }

    async fn try_learn(
        &self,
        product_id: Uuid,
        sku: &str,
        available: i64,
        now: Timestamp,
        inbox: Option<InboxEntry<'_>>,
    ) -> Result<Learned, StoreError> {
        let id = product_id.to_string();
        in_write_tx!(&self.db, |tx, record| {
            if let Some(entry) = inbox
                && !record(&mut tx, entry.consumer, entry.event_id).await?
            {
                return Ok(Learned::AlreadyHandled);
            }
            let known: Option<(String, Option<i64>)> = sqlx::query_as(sql::LOOKUP)
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
            // Each outcome commits, even with no change: the inbox record goes with it.
            if let Some((current, None)) = &known
                && current == sku
            {
                tx.commit().await?;
                return Ok(Learned::Unchanged);
            }
            let holder: Option<String> = sqlx::query_scalar(sql::HOLDER)
                .bind(sku)
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
            if holder.is_some() {
                tx.commit().await?;
                return Ok(Learned::SkuTaken);
            }
            let learned = match known {
                None => {
                    let added = sqlx::query(super::sql::ADD_PRODUCT)
                        .bind(&id)
                        .bind(sku)
                        .bind(available)
                        .bind(now.millis())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if added == 0 {
                        // Added by a concurrent transaction since the lookup: look again.
                        return Err(StoreError::Contended);
                    }
                    Learned::Added
                }
                Some((_, retired)) => {
                    sqlx::query(sql::SET_SKU)
                        .bind(&id)
                        .bind(sku)
                        .bind(now.millis())
                        .execute(&mut *tx)
                        .await?;
                    if retired.is_some() {
                        Learned::Restored
                    } else {
                        Learned::Renamed
                    }
                }
            };
            tx.commit().await?;
            Ok(learned)
        })
    }

    /// Takes product `product_id` out of sale (the catalog deleted it) and frees its SKU; its
    /// books stay, and holds on it still commit or release. A product never seen gets a retired
    /// row of its own, with `sku` (the one it had) when known. With `inbox`, only if the event
    /// was not handled before, and recorded in the same transaction.
    pub async fn retire_product(
        &self,
        product_id: Uuid,
        sku: Option<&str>,
        now: Timestamp,
        inbox: Option<InboxEntry<'_>>,
    ) -> Result<Retired, StoreError> {
        retrying(|| self.try_retire(product_id, sku, now, inbox)).await
    }

    async fn try_retire(
        &self,
        product_id: Uuid,
        sku: Option<&str>,
        now: Timestamp,
        inbox: Option<InboxEntry<'_>>,
    ) -> Result<Retired, StoreError> {
        let id = product_id.to_string();
        in_write_tx!(&self.db, |tx, record| {
            if let Some(entry) = inbox
                && !record(&mut tx, entry.consumer, entry.event_id).await?
            {
                return Ok(Retired::AlreadyHandled);
            }
            let retired = sqlx::query(sql::RETIRE)
                .bind(&id)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let outcome = if retired == 1 {
                Retired::Retired
            } else {
                let inserted = sqlx::query(sql::TOMBSTONE)
                    .bind(&id)
                    .bind(now.millis())
                    .bind(sku)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted == 1 {
                    Retired::Tombstoned
                } else {
                    Retired::AlreadyRetired
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }
}

/// SQL shared by both engines (sqlx binds `$N` on SQLite too).
mod sql {
    pub(super) const LOOKUP: &str = "SELECT sku, retired_at FROM stock WHERE product_id = $1";

    /// Another product holding a SKU (a retired one holds none).
    pub(super) const HOLDER: &str =
        "SELECT product_id FROM stock WHERE sku = $1 AND product_id <> $2";

    pub(super) const SET_SKU: &str = "UPDATE stock SET sku = $2, retired_at = NULL, retired_sku = NULL, updated_at = $3 \
         WHERE product_id = $1";

    /// Every right-hand side reads the row as it was, on both engines.
    pub(super) const RETIRE: &str = "UPDATE stock SET retired_sku = sku, sku = 'retired:' || product_id, retired_at = $2, \
         updated_at = $2 WHERE product_id = $1 AND retired_at IS NULL";

    pub(super) const TOMBSTONE: &str = "INSERT INTO stock (product_id, sku, available, reserved, sold, received, updated_at, retired_at, retired_sku) \
         VALUES ($1, 'retired:' || $1, 0, 0, 0, 0, $2, $2, $3) ON CONFLICT DO NOTHING";
}
