//! Products come from the catalog's list: paged, idempotent, and the catalog may be down.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use souk_chassis::client::ServiceClient;
use souk_inventory::Config;

use crate::helpers::{FakeCatalog, demo_quantities, spawn_unsynced, spawn_with};

souk_chassis::backend_tests! { spawn_unsynced;

    async fn a_sync_reads_every_page_and_applies_demo_quantities(app) {
        let report = app.inventory.sync_catalog().await.unwrap();
        assert_eq!((report.pages, report.seen, report.added, report.skipped), (2, 150, 150, 0));
        let demo = demo_quantities();
        let stock = app.inventory.store.all_stock().await.unwrap();
        assert_eq!(stock.len(), 150);
        for row in &stock {
            assert_eq!(row.available, demo[&row.sku], "{}", row.sku);
            assert_eq!(row.received, row.available);
        }
        assert!(stock.iter().any(|s| s.available == 0), "some demo products are sold out");
    }

    async fn a_second_sync_adds_only_new_products_and_follows_new_skus(app) {
        app.inventory.sync_catalog().await.unwrap();
        let (first, sku) = app.product(0);
        app.set_stock(&sku, 42).await;
        let fresh = app.catalog.add("ZZZ-0001");
        let report = app.inventory.sync_catalog().await.unwrap();
        assert_eq!((report.seen, report.added, report.renamed), (151, 1, 0));
        assert_eq!(app.stock(first).await.available, 42, "known products keep their stock");
        let added = app.stock(fresh).await;
        assert_eq!((added.sku.as_str(), added.available), ("ZZZ-0001", 0), "not a demo SKU: 0");
        assert_eq!(app.inventory.sync_catalog().await.unwrap().added, 0);
    }

    async fn a_catalog_that_is_down_fails_the_sync_but_not_the_service(app) {
        app.catalog.set_up(false);
        assert!(app.inventory.sync_catalog().await.is_err());
        let (status, _) = app.get("/readyz").await;
        assert_eq!(status, StatusCode::OK, "readiness does not depend on the catalog");
        app.catalog.set_up(true);
        assert_eq!(app.inventory.sync_catalog().await.unwrap().added, 150);
    }

    async fn instances_syncing_together_count_each_product_once(app) {
        let syncs = (0..3).map(|_| app.inventory.sync_catalog());
        let reports = futures::future::join_all(syncs).await;
        let added: usize = reports.iter().map(|r| r.as_ref().unwrap().added).sum();
        assert_eq!(added, 150);
        assert_eq!(app.inventory.store.all_stock().await.unwrap().len(), 150);
    }
}

souk_chassis::backend_tests! { spawn_background;

    async fn the_background_loop_syncs_at_start_and_retries_a_failing_catalog(app) {
        for _ in 0..100 {
            if app.inventory.store.all_stock().await.unwrap().len() == 150 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(app.inventory.store.all_stock().await.unwrap().len(), 150);
        app.catalog.set_up(false);
        let before = app.catalog.calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(app.catalog.calls.load(Ordering::SeqCst) > before, "it keeps trying");
        let fresh = app.catalog.add("ZZZ-0002");
        app.catalog.set_up(true);
        for _ in 0..100 {
            if app.inventory.store.stock(fresh).await.unwrap().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the product added while the catalog was down was never synced");
    }

    async fn the_monolith_reads_the_catalog_in_process(app) {
        let catalog = FakeCatalog::with_demo_products(30);
        let Some(db) = souk_chassis::test_util::TestDatabase::create(app.backend).await else { return };
        let config = Config { database: db.config.clone(), catalog_sync_secs: 0, expiry_interval_ms: 0, demo_stock: false, ..Config::default() };
        let client = ServiceClient::in_process("catalog", catalog.router(), Duration::from_secs(2));
        let inventory = souk_inventory::build_with(&config, client).await.unwrap();
        let report = inventory.sync_catalog().await.unwrap();
        assert_eq!((report.pages, report.added), (1, 30));
        let stock = inventory.store.all_stock().await.unwrap();
        assert!(stock.iter().all(|s| s.available == 0), "demo stock off: every product starts at 0");
    }
}

/// Inventory with the background sync on, every 1 s.
async fn spawn_background(
    backend: souk_chassis::test_util::Backend,
) -> Option<crate::helpers::TestApp> {
    spawn_with(backend, |config| config.catalog_sync_secs = 1).await
}
