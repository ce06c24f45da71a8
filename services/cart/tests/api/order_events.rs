//! Orders' events: once an order is confirmed, what it bought leaves the buyer's cart — and only
//! that; other events and other carts are left alone. Orders is a real chassis outbox feed.

use std::time::Duration;

use serde_json::json;
use souk_chassis::Shutdown;
use souk_chassis::client::ServiceClient;
use souk_chassis::events::Event;
use souk_chassis::test_util::{TestDatabase, TestFeed};
use uuid::Uuid;

use crate::helpers::{TestApp, ids, spawn};

/// Starts the cart's consumer of `orders`' feed, its bookkeeping in `events_db`; it runs until
/// the returned trigger fires or the test ends.
async fn consume(
    app: &TestApp,
    orders: &TestFeed,
    events_db: &TestDatabase,
) -> souk_chassis::server::ShutdownTrigger {
    let config = souk_cart::Config {
        events_database: events_db.config.clone(),
        ..souk_cart::Config::default()
    };
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
    let lines: Vec<_> = products
        .iter()
        .map(|p| json!({ "product_id": p, "name": "x", "quantity": 1 }))
        .collect();
    let order = Uuid::now_v7();
    Event::new(
        "orders",
        type_,
        order.to_string(),
        json!({ "order_id": order, "user_id": user, "lines": lines }),
    )
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
