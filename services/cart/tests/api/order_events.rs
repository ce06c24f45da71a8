//! Orders' events: once an order is confirmed, what it bought leaves the buyer's cart — and only
//! that; other events and other carts are left alone. Orders is a real chassis outbox feed.

use std::time::Duration;

use serde_json::json;
use souk_chassis::Shutdown;
use souk_chassis::client::ServiceClient;
use souk_chassis::events::Event;
use souk_chassis::test_util::{TestDatabase, TestFeed};
use souk_chassis::time::Timestamp;
use uuid::Uuid;

use crate::helpers::{TestApp, ids, spawn, spawn_with};
use crate::proxy::CuttableProxy;

/// Starts the cart's consumer of `orders`' feed, its bookkeeping in `events_db`; it runs until
/// the returned trigger fires or the test ends.
async fn consume(
    app: &TestApp,
    orders: &TestFeed,
    events_db: &TestDatabase,
) -> souk_chassis::server::ShutdownTrigger {
    let mut config = souk_cart::Config {
        events_database: events_db.config.clone(),
        ..souk_cart::Config::default()
    };
    // Impatient: an event failing for a reason that may pass is parked after two quick tries.
    config.consumers.max_attempts = 2;
    config.consumers.retry_base_ms = 10;
    config.consumers.retry_max_ms = 200;
    let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(1));
    app.cart
        .consume_order_events(
            &config,
            ServiceClient::http("orders", &orders.client_config()),
            ServiceClient::in_process(
                "identity",
                app.issuer.identity_router("cart"),
                Duration::from_secs(1),
            ),
            shutdown,
        )
        .await
        .unwrap();
    trigger
}

fn order_event(type_: &str, user: &str, products: &[Uuid]) -> Event {
    placed_at(type_, user, products, Timestamp::now())
}

/// An order event for an order placed at `created_at`.
fn placed_at(type_: &str, user: &str, products: &[Uuid], created_at: Timestamp) -> Event {
    let lines: Vec<_> = products
        .iter()
        .map(|p| json!({ "product_id": p, "name": "x", "quantity": 1 }))
        .collect();
    let order = Uuid::now_v7();
    Event::new(
        "orders",
        type_,
        order.to_string(),
        json!({ "order_id": order, "user_id": user, "lines": lines, "created_at": created_at }),
    )
}

/// Waits until `app`'s cart holds exactly `expected` (by product), or fails.
async fn cart_becomes(app: &TestApp, expected: &[Uuid]) {
    let mut cart = app.cart().await;
    for _ in 0..400 {
        if ids(&cart) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        cart = app.cart().await;
    }
    assert_eq!(ids(&cart), expected, "{cart}");
}

/// The consumer's dead letters.
async fn parked(events_db: &TestDatabase) -> usize {
    let db = souk_chassis::Database::connect(&events_db.config)
        .await
        .unwrap();
    souk_chassis::events::dead_letters(&db, "cart.orders")
        .await
        .unwrap()
        .len()
}

cart_tests! { spawn;
    async fn a_confirmed_order_takes_what_it_bought_out_of_the_cart(app) {
        let (bought, kept, other) = (app.catalog.add(500), app.catalog.add(700), app.catalog.add(900));
        app.set(bought, 2).await;
        app.set(kept, 1).await;
        let neighbour = Uuid::now_v7().to_string();
        let neighbour_token = app.issuer.user_token(&neighbour, "user");
        app.set_as(&neighbour_token, bought, json!({ "quantity": 1 })).await;

        let orders = TestFeed::start("orders").await;
        let events_db = TestDatabase::create(souk_chassis::test_util::Backend::Sqlite).await.unwrap();
        let _consumer = consume(&app, &orders, &events_db).await;
        orders.emit(&order_event("souk.orders.order_placed.v1", &app.user_id, &[kept])).await;
        orders.emit(&order_event("souk.orders.order_cancelled.v1", &app.user_id, &[kept])).await;
        orders.emit(&order_event("souk.orders.order_confirmed.v1", &app.user_id, &[bought, other])).await;

        let mut cart = app.cart().await;
        for _ in 0..200 {
            if ids(&cart) == vec![kept] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            cart = app.cart().await;
        }
        assert_eq!(ids(&cart), vec![kept], "{cart}");
        let theirs = app.cart_of(&neighbour_token).await;
        assert_eq!(ids(&theirs), vec![bought], "another buyer's cart is untouched");
    }
}

cart_tests! { spawn;
    async fn a_line_changed_after_the_order_was_placed_stays(app) {
        let (bought, changed_after) = (app.catalog.add(500), app.catalog.add(700));
        app.set(bought, 1).await;
        app.set(changed_after, 1).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let placed = Timestamp::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // After checking out, the shopper puts the product back (another quantity).
        app.set(changed_after, 3).await;

        let orders = TestFeed::start("orders").await;
        let events_db = TestDatabase::create(souk_chassis::test_util::Backend::Sqlite).await.unwrap();
        let _consumer = consume(&app, &orders, &events_db).await;
        orders.emit(&placed_at("souk.orders.order_confirmed.v1", &app.user_id, &[bought, changed_after], placed)).await;
        cart_becomes(&app, &[changed_after]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cart = app.cart().await;
        assert_eq!(ids(&cart), vec![changed_after], "{cart}");
        assert_eq!(cart["items"][0]["quantity"], 3);
    }
}

/// Issue 16: Redis down for a while — the cart's store, not the events' (their bookkeeping is in
/// SQL, which is up). Confirmed orders are waited out and applied once Redis is back, never
/// parked for an operator.
#[tokio::test]
async fn a_confirmed_order_waits_out_redis_being_down() {
    let Ok(url) = std::env::var(crate::helpers::REDIS_URL_VAR) else {
        eprintln!(
            "skipped: {} is not set, so the Redis outage test did not run",
            crate::helpers::REDIS_URL_VAR
        );
        return;
    };
    let authority = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap();
    let upstream = tokio::net::lookup_host(authority)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = CuttableProxy::start(upstream).await;
    let proxied = format!("redis://{}", proxy.addr);
    let app = spawn_with(crate::helpers::Backend::Redis, |config| {
        config.store.url = souk_chassis::Secret::new(proxied);
    })
    .await
    .unwrap();
    let (bought, kept) = (app.catalog.add(500), app.catalog.add(700));
    app.set(bought, 2).await;
    app.set(kept, 1).await;
    let orders = TestFeed::start("orders").await;
    let events_db = TestDatabase::create(souk_chassis::test_util::Backend::Sqlite)
        .await
        .unwrap();
    let _consumer = consume(&app, &orders, &events_db).await;

    proxy.cut();
    orders
        .emit(&order_event(
            "souk.orders.order_confirmed.v1",
            &app.user_id,
            &[bought],
        ))
        .await;
    // Longer than the consumer's two tries with their backoff.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(parked(&events_db).await, 0, "an outage parks nothing");
    proxy.restore();
    cart_becomes(&app, &[kept]).await;
    assert_eq!(parked(&events_db).await, 0);
}
