//! "Ready" means the shop can take and confirm an order: `souk up` and `souk monolith` say so (and
//! open the gateway's port) only once inventory knows the catalog, so the first product page has
//! its availability and the first checkout is confirmed. And a product an administrator creates
//! can be stocked and sold within moments, from the catalog's product event — with the periodic
//! reconciliation an hour away, so nothing else can have told inventory.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::Shop;
use crate::shopping::{ADMIN, ADMIN_ENV, card, details, place_order, send, settled, sign_in};

/// The reconciliation an hour away: within a test, only product events can teach inventory.
pub const NO_RECONCILIATION: (&str, &str) = ("SOUK_INVENTORY__CATALOG_SYNC_SECS", "3600");

/// The moment the shop says it is ready: the first product page shows availability, and the
/// first checkout, placed at once, is confirmed — not cancelled `out_of_stock`.
pub async fn sells_at_once(shop: &Shop) {
    let page: Value = shop
        .get("/api/v1/products?limit=3")
        .await
        .json()
        .await
        .unwrap();
    let product = page["items"][2].clone();
    let id = product["id"].as_str().unwrap().to_owned();
    let first = details(shop, &id).await;
    assert_eq!(first["degraded"], json!([]), "{first}");
    let units = first["availability"]["quantity"].as_i64();
    assert!(
        units.is_some_and(|u| u >= 1),
        "the first product page after ready knows the stock: {first}"
    );

    let token = sign_in(shop, "first@example.com", "the first buyer's passphrase").await;
    let (status, cart) = send(
        shop,
        reqwest::Method::PUT,
        &format!("/api/v1/cart/items/{id}"),
        &token,
        Some(json!({ "quantity": 1 })),
    )
    .await;
    assert_eq!(status, 200, "{cart}");
    let method = card(shop, &token, "4242424242424242").await;
    let order = place_order(shop, &token, &method, "first-order").await;
    let order = settled(shop, &token, &order).await;
    assert_eq!(order["status"], "confirmed", "{order}");
}

/// An administrator creates a product and sets its stock as soon as inventory knows it (a 404
/// until its event arrives); a shopper buys it at once. Returns how long inventory took to know it.
pub async fn a_new_product_sells_at_once(shop: &Shop, sku: &str) -> Duration {
    let admin = sign_in(shop, ADMIN.0, ADMIN.1).await;
    let shopper = sign_in(shop, "eager@example.com", "an eager buyer's passphrase").await;
    let method = card(shop, &shopper, "4242424242424242").await;

    let body = json!({ "sku": sku, "name": "Brass Tea Kettle", "description": "Just in.", "category": "kitchen", "price": { "amount": 4200, "currency": "USD" } });
    let (status, product) = send(
        shop,
        reqwest::Method::POST,
        "/api/v1/admin/products",
        &admin,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let created = Instant::now();
    let id = product["id"].as_str().unwrap().to_owned();
    let stock = format!("/api/v1/admin/stock/{sku}");
    let known = loop {
        let (status, answer) = send(
            shop,
            reqwest::Method::PUT,
            &stock,
            &admin,
            Some(json!({ "quantity": 3 })),
        )
        .await;
        match status {
            200 => break created.elapsed(),
            404 => {}
            _ => panic!("setting the new product's stock: {status} {answer}"),
        }
        assert!(
            created.elapsed() < Duration::from_secs(10),
            "inventory did not learn the new product within 10 s (its reconciliation is an hour away)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(details(shop, &id).await["availability"]["quantity"], 3);

    let (status, cart) = send(
        shop,
        reqwest::Method::PUT,
        &format!("/api/v1/cart/items/{id}"),
        &shopper,
        Some(json!({ "quantity": 2 })),
    )
    .await;
    assert_eq!(status, 200, "{cart}");
    let order = place_order(shop, &shopper, &method, &format!("buy-{sku}")).await;
    let order = settled(shop, &shopper, &order).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["total"]["amount"], 8400);
    assert_eq!(details(shop, &id).await["availability"]["quantity"], 1);
    known
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_sells_as_soon_as_it_says_ready_in_both_topologies() {
    for topology in ["up", "monolith"] {
        let mut shop = Shop::start(topology, &[]).await;
        sells_at_once(&shop).await;
        let (status, _) = shop.stop();
        assert!(status.success(), "{topology}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_an_administrator_creates_sells_at_once_in_both_topologies() {
    let mut env = ADMIN_ENV.to_vec();
    env.push(NO_RECONCILIATION);
    for topology in ["up", "monolith"] {
        let mut shop = Shop::start_with_env(topology, &[], &env).await;
        let known = a_new_product_sells_at_once(&shop, "KIT-0900").await;
        eprintln!("{topology}: inventory knew the new product {known:?} after its creation");
        let (status, _) = shop.stop();
        assert!(status.success(), "{topology}");
    }
}
