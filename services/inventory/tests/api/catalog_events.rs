//! The catalog's product events: a created product is counted within moments, a new SKU is
//! followed, a deleted product leaves sale and frees its SKU — each once, in the catalog's order,
//! however often an event arrives and however many consumers read them. The catalog is a real
//! chassis outbox serving its feed (or relayed to NATS, when `SOUK_TEST_NATS_URL` is set).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use souk_chassis::Shutdown;
use souk_chassis::client::{ClientConfig, ServiceClient};
use souk_chassis::events::{self, Event, Handler, Transport};
use souk_chassis::test_util::{
    ReplayFeed, SeededRng, TestFeed, consumer_position, inbox_count, test_nats,
};
use souk_inventory::Config;
use souk_inventory::catalog_events::CatalogEvents;
use uuid::Uuid;

use crate::helpers::{TestApp, demo_quantities, line, spawn, spawn_unsynced};

const CONSUMER: &str = "inventory.catalog";

/// A product event of `type_` (`product_created`…) for product `id` with `sku`, with the other
/// fields the catalog sends (which inventory does not read).
fn product_event(type_: &str, id: Uuid, sku: &str) -> Event {
    let data = if type_ == "product_deleted" {
        json!({ "id": id, "sku": sku })
    } else {
        json!({ "id": id, "sku": sku, "name": format!("Product {sku}"), "description": "", "category": "kitchen",
                "price": { "amount": 100, "currency": "USD" }, "image_url": "/assets/products/x.svg" })
    };
    Event::new(
        "catalog",
        &format!("souk.catalog.{type_}.v1"),
        id.to_string(),
        data,
    )
}

/// Starts a consumer of the catalog's events on the app's database, read from `catalog` (a feed,
/// or NATS per `config`), until the returned trigger fires or the test ends: an inventory built
/// on that catalog, as `souk serve inventory` builds one.
async fn consume(
    app: &TestApp,
    catalog: ServiceClient,
    config: &Config,
) -> souk_chassis::server::ShutdownTrigger {
    let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(1));
    let identity = ServiceClient::in_process(
        "identity",
        app.issuer.identity_router("inventory"),
        Duration::from_secs(1),
    );
    let inventory = souk_inventory::build_with(config, catalog).await.unwrap();
    inventory.consume_catalog_events(config, identity, shutdown);
    trigger
}

/// The test app's config: its database, no background loops.
fn config_of(app: &TestApp) -> Config {
    Config {
        database: app.db.config.clone(),
        auth: app.issuer.auth_config("inventory"),
        catalog_sync_secs: 0,
        expiry_interval_ms: 0,
        ..Config::default()
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

souk_chassis::backend_tests! { spawn;

    async fn product_events_count_rename_and_retire_products_once(app) {
        let catalog = TestFeed::start("catalog").await;
        let _consumer = consume(&app, ServiceClient::http("catalog", &catalog.client_config()), &config_of(&app)).await;
        let demo_sku = demo_quantities().into_keys().nth(149).unwrap();
        let (fresh, demo) = (Uuid::now_v7(), Uuid::now_v7());

        let created = product_event("product_created", fresh, "NEW-0001");
        catalog.emit(&created).await;
        catalog.emit(&product_event("product_created", demo, &format!("{demo_sku}-B"))).await;
        eventually("the new products are counted", async || {
            app.inventory.store.stock(demo).await.unwrap().is_some()
        })
        .await;
        let stock = app.stock(fresh).await;
        assert_eq!((stock.sku.as_str(), stock.available), ("NEW-0001", 0), "not a demo SKU: 0 units");
        assert_eq!(app.set_stock("NEW-0001", 4).await.0, StatusCode::OK, "an administrator can set its stock");
        let (status, held) = app.reserve(Uuid::now_v7(), vec![line(fresh, 1)]).await;
        assert_eq!(status, StatusCode::CREATED, "and a shopper can buy it: {held}");

        let updated = product_event("product_updated", fresh, "NEW-0002");
        catalog.emit(&updated).await;
        eventually("the new SKU is followed", async || app.stock(fresh).await.sku == "NEW-0002").await;
        assert_eq!(app.stock(fresh).await.available, 3, "a rename keeps the units");
        assert_eq!(app.set_stock("NEW-0001", 1).await.0, StatusCode::NOT_FOUND);

        catalog.emit(&product_event("product_deleted", fresh, "NEW-0002")).await;
        eventually("the deleted product leaves sale", async || {
            app.get(&format!("/v1/availability/{fresh}")).await.0 == StatusCode::NOT_FOUND
        })
        .await;
        let successor = Uuid::now_v7();
        catalog.emit(&product_event("product_created", successor, "NEW-0002")).await;
        eventually("its SKU goes to the next product", async || {
            app.inventory.store.stock(successor).await.unwrap().is_some()
        })
        .await;
        assert_eq!(app.set_stock("NEW-0002", 2).await.0, StatusCode::OK);
        assert_eq!(app.stock(successor).await.available, 2);

        // Delivered again, late (at least once): the inbox makes them no-ops, so an old SKU never
        // comes back and a deleted product stays out of sale.
        let handler = CatalogEvents::new(app.inventory.store.clone(), std::sync::Arc::new(souk_inventory::demo::DemoStock::none()), CONSUMER);
        handler.handle(&created).await.unwrap();
        handler.handle(&updated).await.unwrap();
        assert_eq!(app.get(&format!("/v1/availability/{fresh}")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.stock(successor).await.sku, "NEW-0002");
        assert_eq!(inbox_count(app.inventory.store.database(), CONSUMER).await, 5);
        assert!(events::dead_letters(app.inventory.store.database(), CONSUMER).await.unwrap().is_empty());
        app.assert_consistent().await;
    }

    async fn an_event_is_recorded_with_its_effect_even_when_it_changes_nothing(app) {
        use souk_inventory::store::{InboxEntry, Learned, Retired};
        let store = &app.inventory.store;
        let (known, sku) = app.product(5);
        let (other, taken) = app.product(6);
        let now = souk_inventory::domain::Timestamp::now();
        let entry = |event_id| Some(InboxEntry { consumer: CONSUMER, event_id });
        let cases = [
            ("same-sku", known, sku.as_str(), Learned::Unchanged),
            ("taken-sku", known, taken.as_str(), Learned::SkuTaken),
            ("new-sku", other, "NEW-0006", Learned::Renamed),
        ];
        for (event_id, id, sku, outcome) in cases {
            assert_eq!(store.learn_product(id, sku, 0, now, entry(event_id)).await.unwrap(), outcome, "{event_id}");
            assert_eq!(store.learn_product(id, sku, 0, now, entry(event_id)).await.unwrap(), Learned::AlreadyHandled, "{event_id}");
        }
        assert_eq!(store.retire_product(known, None, now, entry("gone")).await.unwrap(), Retired::Retired);
        assert_eq!(store.retire_product(known, None, now, entry("gone")).await.unwrap(), Retired::AlreadyHandled);
        assert_eq!(store.retire_product(known, None, now, entry("gone-again")).await.unwrap(), Retired::AlreadyRetired);
        assert_eq!(inbox_count(store.database(), CONSUMER).await, 5);
        assert_eq!(app.stock(other).await.sku, "NEW-0006");
    }

    async fn product_events_relayed_through_nats_are_counted(app) {
        let Some(nats) = test_nats().await else { return };
        // A producer name of its own, so the stream (SOUK_<NAME>) meets no other test's.
        let producer = format!("catalog_{}", &Uuid::now_v7().simple().to_string()[20..]);
        let catalog = TestFeed::start(&producer).await;
        let (stop, shutdown) = Shutdown::manual(Duration::from_secs(2));
        catalog.outbox.spawn_relay(nats.clone(), shutdown);
        let mut config = config_of(&app);
        config.events.transport = Transport::Nats;
        config.events.nats = nats.clone();
        // Nothing is served here: with NATS, inventory reads no feed.
        let nowhere = ClientConfig::with_url("http://127.0.0.1:9");
        let _consumer = consume(&app, ServiceClient::http(producer.clone(), &nowhere), &config).await;
        let id = Uuid::now_v7();
        catalog.emit(&product_event("product_created", id, "NATS-0001")).await;
        catalog.emit(&product_event("product_updated", id, "NATS-0002")).await;
        eventually("the product arrives through NATS", async || {
            app.inventory.store.stock(id).await.unwrap().is_some_and(|s| s.sku == "NATS-0002")
        })
        .await;
        let consumer = format!("inventory.{producer}");
        assert_eq!(inbox_count(app.inventory.store.database(), &consumer).await, 2);
        stop.trigger();
        let context = async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
        context.delete_stream(events::stream_name(&producer)).await.unwrap();
    }
}

/// Products in the generated history.
const PRODUCTS: usize = 60;
/// The generator's seed: the same histories, interleaving and copies on every run.
const SEED: u64 = 0x00CA_7A10_6EE7_5EED;

souk_chassis::backend_tests! { spawn_unsynced;

    async fn a_deletion_before_inventory_knew_the_product_keeps_a_late_listing_from_adding_it(app) {
        let catalog = TestFeed::start("catalog").await;
        let _consumer = consume(&app, ServiceClient::http("catalog", &catalog.client_config()), &config_of(&app)).await;
        // Listed by the catalog while the sync paged, deleted (and its event handled) before the
        // sync got to it: inventory never counted it.
        let (listed, sku) = app.product(7);
        app.catalog.remove(listed);
        app.catalog.set_listing(Some(vec![(listed, sku.clone())]));
        catalog.emit(&product_event("product_deleted", listed, &sku)).await;
        eventually("the deletion is handled", async || {
            inbox_count(app.inventory.store.database(), CONSUMER).await == 1
        })
        .await;
        let report = app.inventory.sync_catalog().await.unwrap();
        assert_eq!((report.added, report.restored), (0, 0), "{report:?}");
        assert_eq!(app.get(&format!("/v1/availability/{listed}")).await.0, StatusCode::NOT_FOUND);
    }

    async fn duplicated_and_interleaved_product_events_leave_inventory_as_the_catalog(app) {
        let started = Instant::now();
        let mut rng = SeededRng(SEED);
        // Each product: created, renamed up to three times (SKUs of its own), perhaps deleted.
        let mut histories = Vec::new();
        let mut truth: BTreeMap<Uuid, Option<String>> = BTreeMap::new();
        for n in 0..PRODUCTS {
            let id = Uuid::now_v7();
            let mut sku = format!("P{n:03}-V0");
            let mut history = vec![product_event("product_created", id, &sku)];
            for version in 1..=rng.below(4) {
                sku = format!("P{n:03}-V{version}");
                history.push(product_event("product_updated", id, &sku));
            }
            let deleted = rng.below(4) == 0;
            if deleted {
                history.push(product_event("product_deleted", id, &sku));
            }
            truth.insert(id, (!deleted).then_some(sku));
            histories.push(history);
        }
        let feed = ReplayFeed::schedule(histories, &mut rng);
        // Two instances read the same feed under the same consumer name, as two inventory
        // processes sharing a database do.
        let config = config_of(&app);
        let _a = consume(&app, ServiceClient::in_process("catalog", feed.router(), Duration::from_secs(5)), &config).await;
        let _b = consume(&app, ServiceClient::in_process("catalog", feed.router(), Duration::from_secs(5)), &config).await;
        let database = app.inventory.store.database();
        let end = i64::try_from(feed.deliveries.len()).unwrap();
        while consumer_position(database, CONSUMER).await < end {
            assert!(started.elapsed() < Duration::from_secs(60), "the consumers did not reach the end of the feed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(events::dead_letters(database, CONSUMER).await.unwrap().is_empty());
        assert_eq!(inbox_count(database, CONSUMER).await, feed.distinct, "each event handled once");
        let mut mismatches = Vec::new();
        for (id, sku) in &truth {
            let got = app.inventory.store.stock(*id).await.unwrap().map(|s| s.sku);
            if got != *sku {
                mismatches.push(format!("product {id}: want {sku:?}, got {got:?}"));
            }
        }
        println!(
            "inventory product-event redelivery ({}): {PRODUCTS} products, {} events, {} deliveries, \
             two consumers, mismatches {}; took {:.1?}",
            database.engine(), feed.distinct, feed.deliveries.len(), mismatches.len(), started.elapsed(),
        );
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
        app.assert_consistent().await;
    }
}
