//! The reconciliation with the catalog: inventory cannot read the catalog's tables, so it pages
//! through `GET /v1/products` at start and every `catalog_sync_secs`, starts counting each
//! product it has not seen (with its demo quantity, or 0), and follows what its product events
//! may have missed: a new SKU, a deletion (the product is retired), a product back in the list.
//!
//! Product events (`catalog_events.rs`) carry changes within a second; this pass catches what
//! they cannot: products stored before the catalog had an outbox, events lost with a NATS stream,
//! a consumer parked on a dead letter. A listing is paged while the catalog changes, so it may
//! miss a product or show an old SKU: every correction other than an addition is made only after
//! the catalog confirms it for that one product (`GET /v1/products/{id}`).
//!
//! Inventory is ready only once a sync has succeeded ([`CatalogKnown`]): before that it cannot
//! take an order for a product it has not learned. Later failures cost a warning and a retry,
//! never readiness. Inserts are idempotent, so instances syncing at once are safe.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use souk_chassis::lifeline::Alive;
use std::time::Duration;

use souk_chassis::client::ClientError;
use souk_chassis::health::Check;
use uuid::Uuid;

use crate::clients::catalog::CatalogClient;
use crate::demo::DemoStock;
use crate::domain::Timestamp;
use crate::store::{Learned, NewProduct, Retired, Store, StoreError};

/// A listing longer than this many pages is taken for a loop (100 products a page).
const MAX_PAGES: usize = 10_000;
/// Longest SKU inventory accepts from the catalog (the catalog's own limit is 32).
pub(crate) const MAX_SKU: usize = 64;
/// Longest wait between attempts before the first sync has succeeded: readiness waits on it.
const FIRST_SYNC_RETRY_MAX: Duration = Duration::from_secs(5);

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
    /// Products the catalog no longer has, taken out of sale.
    pub retired: usize,
    /// Retired products the catalog has again, back on sale.
    pub restored: usize,
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

/// Whether a sync with the catalog has succeeded since start: inventory's readiness check
/// `catalog`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CatalogKnown(Arc<AtomicBool>);

impl CatalogKnown {
    /// Whether a sync has succeeded.
    pub fn is_known(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Check for CatalogKnown {
    fn name(&self) -> &str {
        "catalog"
    }

    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        let known = self.is_known();
        Box::pin(async move {
            if known {
                Ok(())
            } else {
                Err("the catalog's products have not been read yet".to_owned())
            }
        })
    }
}

/// What a sync needs, and the readiness it sets. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Syncer {
    pub(crate) store: Store,
    pub(crate) catalog: CatalogClient,
    pub(crate) demo: Arc<DemoStock>,
    pub(crate) known: CatalogKnown,
}

impl Syncer {
    /// One sync; a success makes inventory ready.
    pub(crate) async fn sync(&self) -> Result<SyncReport, SyncError> {
        let report = sync_catalog(&self.store, &self.catalog, &self.demo).await?;
        self.known.set();
        Ok(report)
    }

    /// Syncs now and then every `every`, retrying sooner while the catalog fails (after 1 s,
    /// then 2, 4… up to `every`, and at most 5 s until the first success), until `alive` is gone
    /// (the service was dropped).
    pub(crate) fn spawn(self, every: Duration, mut alive: Alive) {
        tokio::spawn(async move {
            let mut failures: u32 = 0;
            loop {
                let wait = match self.sync().await {
                    Ok(report) => {
                        failures = 0;
                        log(&report);
                        every
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), failures, "catalog sync failed; will retry");
                        let cap = if self.known.is_known() {
                            every
                        } else {
                            every.min(FIRST_SYNC_RETRY_MAX)
                        };
                        Duration::from_secs(1 << (failures - 1).min(6)).min(cap)
                    }
                };
                tokio::select! {
                    () = alive.gone() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
    }
}

fn log(report: &SyncReport) {
    let changed = report.added + report.renamed + report.retired + report.restored;
    if changed > 0 {
        tracing::info!(
            added = report.added,
            renamed = report.renamed,
            retired = report.retired,
            restored = report.restored,
            seen = report.seen,
            "synced products from the catalog"
        );
    }
}

/// Reads every product from the catalog, starts counting the new ones, and has the catalog
/// confirm every other difference before following it.
pub async fn sync_catalog(
    store: &Store,
    catalog: &CatalogClient,
    demo: &DemoStock,
) -> Result<SyncReport, SyncError> {
    let known = store.known_products().await?;
    let mut report = SyncReport::default();
    let mut listed = HashSet::new();
    let mut doubtful = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = catalog.products(cursor.as_deref()).await?;
        report.pages += 1;
        let mut fresh = Vec::new();
        for product in &page.items {
            report.seen += 1;
            if !listed.insert(product.id) {
                continue;
            }
            if !usable(&product.id, &product.sku) {
                report.skipped += 1;
                continue;
            }
            match known.get(&product.id) {
                None => fresh.push(NewProduct {
                    id: product.id,
                    sku: &product.sku,
                    available: demo.quantity(&product.sku),
                }),
                Some(k) if !k.retired && k.sku == product.sku => {}
                // A new SKU, or a retired product listed: the listing may be older than the
                // event that made the difference.
                Some(_) => doubtful.push(product.id),
            }
        }
        add(store, &fresh, &mut report).await?;
        match page.next_cursor {
            Some(next) if report.pages < MAX_PAGES => cursor = Some(next),
            Some(_) => return Err(SyncError::Endless),
            None => break,
        }
    }
    // Not listed: deleted, or moved past the cursor by a change while the list was paged.
    doubtful.extend(
        known
            .iter()
            .filter(|(id, k)| !k.retired && !listed.contains(*id))
            .map(|(id, _)| *id),
    );
    for id in doubtful {
        confirm(store, catalog, id, demo, &mut report).await?;
    }
    Ok(report)
}

/// Whether inventory can count a product under `sku`; a warning when not.
pub(crate) fn usable(id: &Uuid, sku: &str) -> bool {
    let ok = !sku.is_empty() && sku.len() <= MAX_SKU;
    if !ok {
        tracing::warn!(product = %id, "the catalog has a product with an unusable SKU; skipped");
    }
    ok
}

/// Starts counting `fresh`, one transaction for them all.
async fn add(
    store: &Store,
    fresh: &[NewProduct<'_>],
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    let added = store.add_products(fresh, Timestamp::now()).await?;
    for (product, added) in fresh.iter().zip(added) {
        if added {
            report.added += 1;
        } else if !store.knows_product(product.id).await? {
            // Not added, and not by a concurrent sync or event either: another product holds
            // the SKU.
            tracing::warn!(product = %product.id, sku = product.sku, "another product holds this SKU; not counted");
            report.skipped += 1;
        }
    }
    Ok(())
}

/// Asks the catalog for product `id` and follows its answer: retired when it is gone, its SKU
/// (back on sale if it was retired) when it is there.
async fn confirm(
    store: &Store,
    catalog: &CatalogClient,
    id: Uuid,
    demo: &DemoStock,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let now = Timestamp::now();
    let Some(product) = catalog.product(id).await? else {
        if store.retire_product(id, None, now, None).await? == Retired::Retired {
            tracing::info!(product = %id, "the catalog no longer has this product; out of sale");
            report.retired += 1;
        }
        return Ok(());
    };
    if !usable(&id, &product.sku) {
        report.skipped += 1;
        return Ok(());
    }
    let available = demo.quantity(&product.sku);
    match store
        .learn_product(id, &product.sku, available, now, None)
        .await?
    {
        Learned::Added => report.added += 1,
        Learned::Renamed => report.renamed += 1,
        Learned::Restored => report.restored += 1,
        Learned::SkuTaken => {
            tracing::warn!(product = %id, sku = %product.sku, "another product holds this SKU; kept the old one");
            report.skipped += 1;
        }
        Learned::Unchanged | Learned::AlreadyHandled => {}
    }
    Ok(())
}
