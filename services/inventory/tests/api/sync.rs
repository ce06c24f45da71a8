//! The reconciliation with the catalog's list: paged, idempotent, the catalog may be down; new
//! SKUs and deletions are followed only once the catalog confirms them for that product; and
//! inventory is not ready before its first successful sync.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use souk_chassis::client::ServiceClient;
use souk_inventory::Config;
use uuid::Uuid;

use crate::helpers::{FakeCatalog, demo_quantities, line, spawn_unsynced, spawn_with};

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

    async fn readiness_waits_for_the_first_successful_sync_and_then_keeps_it(app) {
        let (status, body) = app.readiness().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no sync yet: {body}");
        app.catalog.set_up(false);
        assert!(app.inventory.sync_catalog().await.is_err());
        assert_eq!(app.readiness().await.0, StatusCode::SERVICE_UNAVAILABLE, "a failed sync is not one");
        assert!(!app.inventory.catalog_known().is_known());
        app.catalog.set_up(true);
        assert_eq!(app.inventory.sync_catalog().await.unwrap().added, 150);
        let (status, body) = app.readiness().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let catalog = body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "catalog").cloned();
        assert_eq!(catalog.map(|c| c["ok"].clone()), Some(serde_json::json!(true)), "{body}");
        app.catalog.set_up(false);
        assert!(app.inventory.sync_catalog().await.is_err());
        assert_eq!(app.readiness().await.0, StatusCode::OK, "once known, a catalog outage costs a retry, not readiness");
    }

    async fn a_deleted_product_leaves_sale_and_frees_its_sku_with_its_books_kept(app) {
        app.inventory.sync_catalog().await.unwrap();
        let (gone, sku) = app.product(0);
        let (kept, _) = app.product(1);
        app.set_stock(&sku, 10).await;
        let order = Uuid::now_v7();
        assert_eq!(app.reserve(order, vec![line(gone, 4)]).await.0, StatusCode::CREATED);
        app.catalog.remove(gone);
        let report = app.inventory.sync_catalog().await.unwrap();
        assert_eq!((report.retired, report.added, report.renamed), (1, 0, 0), "{report:?}");
        assert_eq!(app.get(&format!("/v1/availability/{gone}")).await.0, StatusCode::NOT_FOUND);
        let (_, items) = app.get(&format!("/v1/availability?ids={gone},{kept}")).await;
        assert_eq!(items["items"].as_array().unwrap().len(), 1, "{items}");
        assert_eq!(app.set_stock(&sku, 3).await.0, StatusCode::NOT_FOUND, "its SKU is no longer it");
        let (status, problem) = app.reserve(Uuid::now_v7(), vec![line(gone, 1)]).await;
        assert_eq!(status, StatusCode::CONFLICT, "not for sale: {problem}");
        // The hold made before still settles, and the books balance.
        assert_eq!(app.commit(order).await.0, StatusCode::OK);
        let books = app.inventory.store.all_stock().await.unwrap().into_iter().find(|s| s.product_id == gone).unwrap();
        assert_eq!((books.available, books.reserved, books.sold, books.received), (6, 0, 4, 10));
        app.assert_consistent().await;
        // A new product may take the SKU.
        let successor = app.catalog.add(&sku);
        assert_eq!(app.inventory.sync_catalog().await.unwrap().added, 1);
        assert_eq!(app.stock(successor).await.sku, sku);
        assert_eq!(app.set_stock(&sku, 5).await.0, StatusCode::OK);
        assert_eq!(app.inventory.sync_catalog().await.unwrap().retired, 0, "retired once");
    }

    async fn a_listing_that_lags_behind_the_catalog_changes_nothing_the_catalog_denies(app) {
        app.inventory.sync_catalog().await.unwrap();
        let (renamed, old_sku) = app.product(2);
        let (hidden, hidden_sku) = app.product(3);
        // The product was renamed, and the listing still shows its old SKU; another moved past
        // the cursor while the list was paged.
        app.catalog.rename(renamed, "NEW-0002");
        let stale: Vec<_> = app.catalog.products().into_iter()
            .filter(|(id, _)| *id != hidden)
            .map(|(id, sku)| if id == renamed { (id, old_sku.clone()) } else { (id, sku) })
            .collect();
        app.catalog.set_listing(Some(stale));
        let report = app.inventory.sync_catalog().await.unwrap();
        assert_eq!((report.retired, report.renamed), (0, 0), "{report:?}");
        assert_eq!(app.stock(hidden).await.sku, hidden_sku, "still on sale");
        assert_eq!(app.stock(renamed).await.sku, old_sku, "the listing agrees with what inventory knows");
        // The listing shows the new SKU: the catalog confirms it, inventory follows.
        app.catalog.set_listing(None);
        let report = app.inventory.sync_catalog().await.unwrap();
        assert_eq!((report.retired, report.renamed), (0, 1), "{report:?}");
        assert_eq!(app.stock(renamed).await.sku, "NEW-0002");
        // A listing showing an SKU the catalog has since changed again is not followed.
        app.catalog.rename(renamed, "NEW-0003");
        let stale: Vec<_> = app.catalog.products().into_iter()
            .map(|(id, sku)| if id == renamed { (id, "NEW-0004".to_owned()) } else { (id, sku) })
            .collect();
        app.catalog.set_listing(Some(stale));
        assert_eq!(app.inventory.sync_catalog().await.unwrap().renamed, 1);
        assert_eq!(app.stock(renamed).await.sku, "NEW-0003", "what the catalog says for that product");
    }

    async fn a_retired_product_the_catalog_has_again_comes_back_with_its_units(app) {
        app.inventory.sync_catalog().await.unwrap();
        let (product, sku) = app.product(4);
        app.set_stock(&sku, 8).await;
        app.catalog.remove(product);
        assert_eq!(app.inventory.sync_catalog().await.unwrap().retired, 1);
        app.catalog.put_back(product, &sku);
        let report = app.inventory.sync_catalog().await.unwrap();
        assert_eq!((report.restored, report.added), (1, 0), "{report:?}");
        let stock = app.stock(product).await;
        assert_eq!((stock.sku.as_str(), stock.available), (sku.as_str(), 8));
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
            if app.readiness().await.0 == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(app.readiness().await.0, StatusCode::OK, "ready after the sync at start");
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

    async fn an_inventory_started_while_the_catalog_is_down_becomes_ready_when_it_is_back(app) {
        let catalog = FakeCatalog::with_demo_products(10);
        catalog.set_up(false);
        let Some(db) = souk_chassis::test_util::TestDatabase::create(app.backend).await else { return };
        let config = Config { database: db.config.clone(), catalog_sync_secs: 1, expiry_interval_ms: 0, ..Config::default() };
        let client = ServiceClient::in_process("catalog", catalog.router(), Duration::from_secs(2));
        let inventory = souk_inventory::build_with(&config, client).await.unwrap();
        let server = souk_chassis::test_util::TestServer::spawn(inventory.router.clone()).await;
        let ready = || async { server.client.get(server.url("/readyz")).send().await.unwrap().status() };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
        catalog.set_up(true);
        for _ in 0..200 {
            if ready().await == StatusCode::OK {
                assert_eq!(inventory.store.all_stock().await.unwrap().len(), 10);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not ready within 10 s of the catalog's return");
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
