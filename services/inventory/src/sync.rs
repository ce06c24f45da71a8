//! Learning products from the catalog: inventory cannot read the catalog's tables, so it pages
//! through `GET /v1/products` at start and every `catalog_sync_secs`, and starts counting each
//! product it has not seen (with its demo quantity, or 0).
//!
//! Inserts are idempotent, so instances syncing at once are safe. The catalog being down costs a
//! warning and a retry; readiness never depends on it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use souk_chassis::client::ClientError;

use crate::clients::catalog::CatalogClient;
use crate::demo::DemoStock;
use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

/// A listing longer than this many pages is taken for a loop (100 products a page).
const MAX_PAGES: usize = 10_000;
/// Longest SKU inventory accepts from the catalog (the catalog's own limit is 32).
const MAX_SKU: usize = 64;

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Pages read.
    pub pages: usize,
    /// Products listed by the catalog.
    pub seen: usize,
    /// Products inventory started counting.
    pub added: usize,
    /// Known products whose SKU changed.
    pub renamed: usize,
    /// Products left out (an unusable SKU, or one another product holds).
    pub skipped: usize,
}

/// Why a sync stopped early. What it did before stays done.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The catalog could not be read.
    #[error("cannot read the catalog's products")]
    Catalog(#[from] ClientError),
    /// The store failed.
    #[error("cannot store the catalog's products")]
    Store(#[from] StoreError),
    /// The catalog kept answering with further pages.
    #[error("the catalog's product list did not end after {MAX_PAGES} pages")]
    Endless,
}

/// Reads every product from the catalog and starts counting the new ones.
pub async fn sync_catalog(
    store: &Store,
    catalog: &CatalogClient,
    demo: &DemoStock,
) -> Result<SyncReport, SyncError> {
    let mut known = store.known_products().await?;
    let mut report = SyncReport::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = catalog.products(cursor.as_deref()).await?;
        report.pages += 1;
        for product in page.items {
            report.seen += 1;
            if product.sku.is_empty() || product.sku.len() > MAX_SKU {
                tracing::warn!(product = %product.id, "the catalog lists a product with an unusable SKU; skipped");
                report.skipped += 1;
                continue;
            }
            match known.get(&product.id) {
                Some(sku) if *sku == product.sku => {}
                Some(_) => rename(store, &product.id, &product.sku, &mut report).await?,
                None => add(store, &product.id, &product.sku, demo, &mut report).await?,
            }
            known.insert(product.id, product.sku);
        }
        match page.next_cursor {
            Some(next) if report.pages < MAX_PAGES => cursor = Some(next),
            Some(_) => return Err(SyncError::Endless),
            None => return Ok(report),
        }
    }
}

async fn add(
    store: &Store,
    id: &uuid::Uuid,
    sku: &str,
    demo: &DemoStock,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    if store
        .add_product(*id, sku, demo.quantity(sku), Timestamp::now())
        .await?
    {
        report.added += 1;
    } else if store.stock(*id).await?.is_none() {
        // Not added, and not by a concurrent sync either: another product holds the SKU.
        tracing::warn!(product = %id, sku, "another product holds this SKU; not counted");
        report.skipped += 1;
    }
    Ok(())
}

async fn rename(
    store: &Store,
    id: &uuid::Uuid,
    sku: &str,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    match store.rename_sku(*id, sku, Timestamp::now()).await {
        Ok(true) => report.renamed += 1,
        Ok(false) => {}
        Err(StoreError::Database(err))
            if err
                .as_database_error()
                .is_some_and(|e| e.is_unique_violation()) =>
        {
            tracing::warn!(product = %id, sku, "another product holds this SKU; kept the old one");
            report.skipped += 1;
        }
        Err(err) => return Err(err),
    }
    Ok(())
}

/// Syncs now and then every `every`, retrying sooner while the catalog fails (after 1 s, then 2,
/// 4… up to `every`), until `alive` is gone (the service was dropped).
pub(crate) fn spawn(
    store: Store,
    catalog: CatalogClient,
    demo: Arc<DemoStock>,
    every: Duration,
    alive: Weak<()>,
) {
    tokio::spawn(async move {
        let mut failures: u32 = 0;
        while alive.strong_count() > 0 {
            let wait = match sync_catalog(&store, &catalog, &demo).await {
                Ok(report) => {
                    failures = 0;
                    if report.added + report.renamed > 0 {
                        tracing::info!(
                            added = report.added,
                            renamed = report.renamed,
                            seen = report.seen,
                            "synced products from the catalog"
                        );
                    }
                    every
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), failures, "catalog sync failed; will retry");
                    Duration::from_secs(1 << (failures - 1).min(6)).min(every)
                }
            };
            tokio::time::sleep(wait).await;
        }
    });
}
