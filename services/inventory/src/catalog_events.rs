//! The catalog's product events, as inventory reads them: a created product is counted (with its
//! demo quantity, or 0), a new SKU followed, a deleted product taken out of sale — within a
//! second of the change instead of at the next reconciliation (`sync.rs`), which stays for what
//! events cannot carry.
//!
//! Each effect is recorded in the consumer's inbox in its own transaction, so it happens once
//! and in the catalog's order, however often an event arrives and however many instances read
//! them. Only `id` and `sku` are read; an unusable SKU, or one another product holds, is skipped
//! with a warning, as the reconciliation does, and left for it to sort out.

use std::sync::Arc;

use serde::Deserialize;
use souk_chassis::events::{Event, HandleError, Handler};
use uuid::Uuid;

use crate::demo::DemoStock;
use crate::domain::Timestamp;
use crate::store::{InboxEntry, Learned, Store, StoreError};

const CREATED: &str = "souk.catalog.product_created.v1";
const UPDATED: &str = "souk.catalog.product_updated.v1";
const DELETED: &str = "souk.catalog.product_deleted.v1";

/// The consumer's name for `producer` (`inventory.catalog`): its offset, inbox and dead letters
/// are kept under it.
pub fn consumer_name(producer: &str) -> String {
    format!("{}.{producer}", crate::NAME)
}

/// The fields of a product event inventory reads.
#[derive(Debug, Deserialize)]
struct ProductEvent {
    id: Uuid,
    sku: String,
}

/// Counts, renames and retires products as the catalog's events say.
#[derive(Debug, Clone)]
pub struct CatalogEvents {
    store: Store,
    demo: Arc<DemoStock>,
    consumer: String,
}

impl CatalogEvents {
    /// A handler on `store`, giving new products their quantity from `demo`, recording handled
    /// events in the inbox of `consumer`.
    pub fn new(store: Store, demo: Arc<DemoStock>, consumer: &str) -> Self {
        Self {
            store,
            demo,
            consumer: consumer.to_owned(),
        }
    }

    async fn learn(&self, product: &ProductEvent, inbox: InboxEntry<'_>) -> Result<(), StoreError> {
        if !crate::sync::usable(&product.id, &product.sku) {
            return Ok(());
        }
        let available = self.demo.quantity(&product.sku);
        let learned = self
            .store
            .learn_product(
                product.id,
                &product.sku,
                available,
                Timestamp::now(),
                Some(inbox),
            )
            .await?;
        match learned {
            Learned::SkuTaken => {
                tracing::warn!(product = %product.id, sku = %product.sku, "another product holds this SKU; left for the reconciliation");
            }
            Learned::Added | Learned::Renamed | Learned::Restored => {
                tracing::debug!(product = %product.id, sku = %product.sku, ?learned, "product learned from its event");
            }
            Learned::Unchanged | Learned::AlreadyHandled => {}
        }
        Ok(())
    }
}

impl Handler for CatalogEvents {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        let deleted = match event.type_.as_str() {
            CREATED | UPDATED => false,
            DELETED => true,
            _ => return Ok(()),
        };
        let product: ProductEvent = event.data_as()?;
        let inbox = InboxEntry {
            consumer: &self.consumer,
            event_id: &event.id,
        };
        let outcome = if deleted {
            self.store
                .retire_product(
                    product.id,
                    Some(&product.sku),
                    Timestamp::now(),
                    Some(inbox),
                )
                .await
                .map(drop)
        } else {
            self.learn(&product, inbox).await
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(StoreError::Database(err)) => Err(err.into()),
            Err(err) => Err(HandleError::Retry(err.to_string())),
        }
    }
}
