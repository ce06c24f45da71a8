//! Orders' events: a confirmed order's reservation becomes a sale, a cancelled one's goes back on
//! sale — exactly once however often the event arrives — and an event that contradicts the
//! reservations is parked, not guessed at. Orders is a real chassis outbox serving its feed.

use std::time::Duration;

use serde_json::json;
use souk_chassis::Shutdown;
use souk_chassis::client::ServiceClient;
use souk_chassis::events::{self, Event, Handler};
use souk_chassis::test_util::TestFeed;
use uuid::Uuid;

use crate::helpers::{TestApp, line, spawn};

/// Starts inventory's consumer of `orders`' feed (until the returned trigger fires, or the test
/// ends); identity hands out service tokens in-process.
fn consume(app: &TestApp, orders: &TestFeed) -> souk_chassis::server::ShutdownTrigger {
    let config = souk_inventory::Config::default();
    let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(1));
    app.inventory.consume_order_events(
        &config,
        ServiceClient::http("orders", &orders.client_config()),
        ServiceClient::in_process(
            "identity",
            app.issuer.identity_router("inventory"),
            Duration::from_secs(1),
        ),
        shutdown,
    );
    trigger
}

/// Appends an order event of `type_` for `order_id`.
async fn emit(orders: &TestFeed, type_: &str, order_id: Uuid) -> Event {
    let data = json!({ "order_id": order_id, "user_id": "u-1", "lines": [] });
    let event = Event::new("orders", type_, order_id.to_string(), data);
    orders.emit(&event).await;
    event
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not within 5 s");
}

souk_chassis::backend_tests! { spawn;
    async fn confirmed_orders_sell_and_cancelled_ones_give_back_once(app) {
        let orders = TestFeed::start("orders").await;
        let (product, sku) = app.product(0);
        app.set_stock(&sku, 10).await;
        let (sold, kept) = (Uuid::now_v7(), Uuid::now_v7());
        app.reserve(sold, vec![line(product, 3)]).await;
        app.reserve(kept, vec![line(product, 2)]).await;
        let _consumer = consume(&app, &orders);

        let confirmed = emit(&orders, "souk.orders.order_confirmed.v1", sold).await;
        emit(&orders, "souk.orders.order_placed.v1", kept).await; // not for inventory
        emit(&orders, "souk.orders.order_cancelled.v1", kept).await;
        eventually("the sale and the release", async || {
            let stock = app.stock(product).await;
            stock.sold == 3 && stock.reserved == 0
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stock = app.stock(product).await;
        assert_eq!((stock.available, stock.reserved, stock.sold), (7, 0, 3), "{stock:?}");
        // Delivered again (delivery is at least once): the handler makes no second effect.
        let handler = souk_inventory::order_events::OrderEvents::new(app.inventory.store.clone());
        handler.handle(&confirmed).await.unwrap();
        let again = app.stock(product).await;
        assert_eq!((again.available, again.reserved, again.sold), (7, 0, 3), "{again:?}");
        app.assert_consistent().await;
        let (_, reservation) = app.send(reqwest::Method::GET, &format!("/v1/reservations/{kept}"), Some(&app.service()), None).await;
        assert_eq!(reservation["state"], "released", "{reservation}");
    }

    async fn a_confirmation_without_a_reservation_is_parked_and_later_events_go_on(app) {
        let orders = TestFeed::start("orders").await;
        let (product, sku) = app.product(1);
        app.set_stock(&sku, 5).await;
        let later = Uuid::now_v7();
        app.reserve(later, vec![line(product, 1)]).await;
        let _consumer = consume(&app, &orders);

        let stray = emit(&orders, "souk.orders.order_confirmed.v1", Uuid::now_v7()).await;
        emit(&orders, "souk.orders.order_confirmed.v1", later).await;
        eventually("the later order is sold", async || app.stock(product).await.sold == 1).await;
        let parked = events::dead_letters(app.inventory.store.database(), "inventory.orders")
            .await
            .unwrap();
        assert_eq!(parked.len(), 1, "{parked:?}");
        assert_eq!(parked[0].event.id, stray.id);
    }
}
