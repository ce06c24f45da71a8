//! The shop on NATS JetStream instead of the producers' feeds: every producer's relay runs and
//! every consumer reads the bus, in both topologies. Each test runs a nats-server of its own.

use serde_json::Value;

use crate::helpers::{NatsServer, Shop, eventually};
use crate::shopping::{card, place_order, send, settled, sign_in};

/// Issue 16: `souk monolith` started orders' relay but not payments', so with NATS payments'
/// events never left its outbox and history never learnt of a capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_history_records_the_capture_in_both_topologies() {
    let Some(nats) = NatsServer::start_if_enabled("the NATS checkout test").await else {
        return;
    };
    let env = nats.shop_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for topology in ["monolith", "up"] {
        let mut shop = Shop::start_with_env(topology, &[], &env).await;
        buys_and_sees_the_payment_in_history(&shop, topology).await;
        let (status, _) = shop.stop();
        assert!(status.success(), "{topology}");
    }
}

async fn buys_and_sees_the_payment_in_history(shop: &Shop, topology: &str) {
    let page: Value = shop
        .get("/api/v1/products?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let token = sign_in(
        shop,
        &format!("{topology}@nats.example.com"),
        "a buyer's long passphrase",
    )
    .await;
    let item = format!("/api/v1/cart/items/{id}");
    eventually(
        std::time::Duration::from_secs(30),
        "the product is on sale",
        || async {
            let page: Value = shop
                .get(&format!("/api/v1/products/{id}/details"))
                .await
                .json()
                .await
                .unwrap();
            page["availability"]["quantity"].as_i64().unwrap_or(0) > 0
        },
    )
    .await;
    let (status, cart) = send(
        shop,
        reqwest::Method::PUT,
        &item,
        &token,
        Some(serde_json::json!({ "quantity": 1 })),
    )
    .await;
    assert_eq!(status, 200, "{cart}");
    let method = card(shop, &token, "4242424242424242").await;
    let order = place_order(shop, &token, &method, "nats-1").await;
    assert_eq!(settled(shop, &token, &order).await["status"], "confirmed");
    eventually(
        std::time::Duration::from_secs(30),
        &format!("{topology}: history records the capture"),
        || async {
            let (_, history) =
                send(shop, reqwest::Method::GET, "/api/v1/history", &token, None).await;
            history["items"][0]["order_id"] == order.as_str()
                && history["items"][0]["status"] == "confirmed"
                && history["items"][0]["payment"]["last4"] == "4242"
        },
    )
    .await;
    eventually(
        std::time::Duration::from_secs(30),
        &format!("{topology}: the cart empties"),
        || async {
            send(shop, reqwest::Method::GET, "/api/v1/cart", &token, None)
                .await
                .1["items"]
                == serde_json::json!([])
        },
    )
    .await;
}
