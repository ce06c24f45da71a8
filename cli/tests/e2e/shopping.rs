//! Shopping through the gateway in both topologies: the product page with availability, a cart
//! priced by the catalog whatever the client claims, stock set by an administrator — and the
//! product page still answering while inventory is stopped.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::helpers::{Shop, eventually, signal};

pub const ADMIN: (&str, &str) = ("root@example.com", "a very long admin passphrase");
pub const ADMIN_ENV: [(&str, &str); 2] = [
    ("SOUK_ADMIN_EMAIL", ADMIN.0),
    ("SOUK_ADMIN_PASSWORD", ADMIN.1),
];

pub async fn send(
    shop: &Shop,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = shop
        .client
        .request(method, format!("http://{}{path}", shop.gateway))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An administrator's reading of `sku`'s stock, and its `ETag`.
pub async fn read_stock(shop: &Shop, admin: &str, sku: &str) -> (u16, Value, String) {
    let response = shop
        .client
        .get(format!("http://{}/api/v1/admin/stock/{sku}", shop.gateway))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, response.json().await.unwrap_or(Value::Null), etag)
}

/// Sets `sku`'s units on sale from the version `etag` names (`If-Match`; none when empty).
pub async fn write_stock(
    shop: &Shop,
    admin: &str,
    sku: &str,
    quantity: i64,
    etag: &str,
) -> (u16, Value) {
    let mut request = shop
        .client
        .put(format!("http://{}/api/v1/admin/stock/{sku}", shop.gateway))
        .bearer_auth(admin)
        .json(&json!({ "quantity": quantity }));
    if !etag.is_empty() {
        request = request.header("if-match", etag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers (if new) and logs in `email`; its access token. Sign-in is rate-limited per address
/// at the gateway, and every test shopper comes from one: a 429 is waited out, as a client would.
pub async fn sign_in(shop: &Shop, email: &str, password: &str) -> String {
    let register = json!({ "email": email, "password": password, "name": "Shopper" });
    auth_call(shop, "/api/v1/auth/register", &register).await;
    let login = json!({ "email": email, "password": password });
    let tokens = auth_call(shop, "/api/v1/auth/login", &login).await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn auth_call(shop: &Shop, path: &str, body: &Value) -> Value {
    for _ in 0..20 {
        let response = shop
            .client
            .post(format!("http://{}{path}", shop.gateway))
            .json(body)
            .send()
            .await
            .unwrap();
        if response.status() != 429 {
            return response.json().await.unwrap_or(Value::Null);
        }
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    panic!("{path} kept answering 429");
}

pub async fn details(shop: &Shop, id: &str) -> Value {
    let response = shop.get(&format!("/api/v1/products/{id}/details")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A shopper's round through the shop; the shop must have been started with [`ADMIN_ENV`].
pub async fn shops_and_manages_stock(shop: &Shop) {
    let page: Value = shop
        .get("/api/v1/products?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let first = page["items"][0].clone();
    let second = page["items"][1].clone();
    let id = first["id"].as_str().unwrap().to_owned();

    // A ready shop's inventory knows the catalog's products, with their demo stock.
    let page = details(shop, &id).await;
    assert_eq!(page["product"], first);
    assert_eq!(page["degraded"], json!([]));
    assert!(page["availability"]["quantity"].is_u64(), "{page}");

    // An administrator puts 7 units on sale from the stock it read; the page says so. A count
    // naming no version is refused, and so is one from a stale reading.
    let admin = sign_in(shop, ADMIN.0, ADMIN.1).await;
    let sku = first["sku"].as_str().unwrap();
    let (status, _, etag) = read_stock(shop, &admin, sku).await;
    assert_eq!(status, 200);
    let (status, problem) = write_stock(shop, &admin, sku, 7, "").await;
    assert_eq!(status, 428, "{problem}");
    let (status, stock) = write_stock(shop, &admin, sku, 7, &etag).await;
    assert_eq!(status, 200, "{stock}");
    assert_eq!(details(shop, &id).await["availability"]["quantity"], 7);
    let (status, problem) = write_stock(shop, &admin, sku, 9, &etag).await;
    assert_eq!(status, 412, "{problem}");
    // Goods received: three more units, whatever happened meanwhile.
    let (status, adjusted) = send(
        shop,
        reqwest::Method::POST,
        &format!("/api/v1/admin/stock/{sku}/adjustments"),
        &admin,
        Some(json!({ "delta": 3, "reason": "a delivery" })),
    )
    .await;
    assert_eq!(status, 201, "{adjusted}");
    assert_eq!(details(shop, &id).await["availability"]["quantity"], 10);
    let (status, _, etag) = read_stock(shop, &admin, sku).await;
    assert_eq!(status, 200);
    assert_eq!(write_stock(shop, &admin, sku, 7, &etag).await.0, 200);
    assert_eq!(details(shop, &id).await["availability"]["quantity"], 7);

    // A shopper's cart: prices come from the catalog, never from the client.
    let token = sign_in(shop, "shopper@example.com", "a shopper's long passphrase").await;
    let (status, _) = send(
        shop,
        reqwest::Method::PUT,
        "/api/v1/admin/stock/KIT-0001",
        &token,
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(status, 403, "shoppers do not set stock");
    let (status, cart) = send(
        shop,
        reqwest::Method::PUT,
        &format!("/api/v1/cart/items/{id}"),
        &token,
        Some(json!({ "quantity": 2, "unit_price": { "amount": 1, "currency": "USD" } })),
    )
    .await;
    assert_eq!(status, 200, "{cart}");
    let second_id = second["id"].as_str().unwrap();
    send(
        shop,
        reqwest::Method::PUT,
        &format!("/api/v1/cart/items/{second_id}"),
        &token,
        Some(json!({ "quantity": 1 })),
    )
    .await;
    let (status, cart) = send(shop, reqwest::Method::GET, "/api/v1/cart", &token, None).await;
    assert_eq!(status, 200, "{cart}");
    let price = |p: &Value| p["price"]["amount"].as_i64().unwrap();
    assert_eq!(cart["items"][0]["unit_price"], first["price"], "{cart}");
    assert_eq!(cart["items"][0]["line_total"]["amount"], 2 * price(&first));
    assert_eq!(
        cart["total"]["amount"],
        2 * price(&first) + price(&second),
        "{cart}"
    );

    // Someone else's cart is their own; nobody's without a token.
    let other = sign_in(shop, "other@example.com", "another long passphrase").await;
    let (_, theirs) = send(shop, reqwest::Method::GET, "/api/v1/cart", &other, None).await;
    assert_eq!(theirs["items"], json!([]));
    assert_eq!(shop.get("/api/v1/cart").await.status(), 401);

    // A card becomes a token: only its brand and last four digits come back.
    let card = json!({ "card_number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2031, "cvc": "123" });
    let (status, method) = send(
        shop,
        reqwest::Method::POST,
        "/api/v1/payment-methods",
        &token,
        Some(card),
    )
    .await;
    assert_eq!(status, 201, "{method}");
    assert_eq!(
        (method["brand"].as_str(), method["last4"].as_str()),
        (Some("visa"), Some("4242"))
    );
    assert!(!method.to_string().contains("42424242"), "{method}");
    let bad = json!({ "card_number": "4242424242424241", "exp_month": 12, "exp_year": 2031, "cvc": "123" });
    let (status, _) = send(
        shop,
        reqwest::Method::POST,
        "/api/v1/payment-methods",
        &token,
        Some(bad),
    )
    .await;
    assert_eq!(status, 422, "a non-Luhn number is refused when registered");
    let path = format!("/api/v1/payment-methods/{}", method["id"].as_str().unwrap());
    assert_eq!(
        send(shop, reqwest::Method::GET, &path, &token, None)
            .await
            .0,
        200
    );
    assert_eq!(
        send(shop, reqwest::Method::GET, &path, &other, None)
            .await
            .0,
        404,
        "not another's"
    );

    // The merged public document describes the new paths, the aggregate with its parts' schemas.
    let document: Value = shop.get("/api/openapi.json").await.json().await.unwrap();
    for path in [
        "/api/v1/cart",
        "/api/v1/cart/items/{product_id}",
        "/api/v1/admin/stock/{sku}",
        "/api/v1/admin/stock/{sku}/adjustments",
        "/api/v1/payment-methods",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    let details = &document["paths"]["/api/v1/products/{id}/details"]["get"];
    let schema = &details["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        schema["properties"]["product"]["$ref"], "#/components/schemas/Product",
        "{details}"
    );
    assert!(
        schema["properties"]["availability"]["oneOf"].is_array(),
        "{details}"
    );

    let (status, _) = send(shop, reqwest::Method::DELETE, "/api/v1/cart", &token, None).await;
    assert_eq!(status, 204);
    let (_, cart) = send(shop, reqwest::Method::GET, "/api/v1/cart", &token, None).await;
    assert_eq!(cart["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopping_works_alike_in_both_topologies() {
    for topology in ["up", "monolith"] {
        let mut shop = Shop::start_with_env(topology, &[], &ADMIN_ENV).await;
        shops_and_manages_stock(&shop).await;
        let (status, _) = shop.stop();
        assert!(status.success(), "{topology}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_page_outlives_a_stopped_inventory() {
    let shop = Shop::start_with_env("up", &[], &ADMIN_ENV).await;
    let page: Value = shop
        .get("/api/v1/products?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(20), "availability is known", || async {
        details(&shop, &id).await["availability"].is_object()
    })
    .await;
    let processes = shop.processes().await;
    let inventory = processes
        .iter()
        .find(|p| p["service"] == "inventory")
        .unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;

    // Stopped, not killed: it hangs rather than refuses, the harder case for the page.
    signal(inventory, Signal::SIGSTOP);
    // The stop must have taken: signalled at a pid that is no longer inventory's, it would go on
    // answering, and the page below would fail for a reason it does not name.
    let stat = || std::fs::read_to_string(format!("/proc/{inventory}/stat")).unwrap_or_default();
    let what = format!("inventory (pid {inventory}, of {processes:?}) is stopped");
    eventually(Duration::from_secs(2), &what, || async {
        stat().contains(") T ")
    })
    .await;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let page = details(&shop, &id).await;
        assert_eq!(
            page["degraded"],
            json!(["availability"]),
            "{page}; stopped pid {inventory}; processes now: {:?}",
            shop.processes().await
        );
        assert!(page["availability"].is_null());
        assert_eq!(page["product"]["id"], id.as_str());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    signal(inventory, Signal::SIGCONT);
    eventually(
        Duration::from_secs(20),
        "availability comes back",
        || async { details(&shop, &id).await["degraded"] == json!([]) },
    )
    .await;
}

/// Registers `card_number` for `token`'s user; its payment method id.
pub async fn card(shop: &Shop, token: &str, card_number: &str) -> String {
    let body =
        json!({ "card_number": card_number, "exp_month": 12, "exp_year": 2031, "cvc": "123" });
    let (status, method) = send(
        shop,
        reqwest::Method::POST,
        "/api/v1/payment-methods",
        token,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{method}");
    method["id"].as_str().unwrap().to_owned()
}

/// Places an order for `token`'s cart; its id (after checking a replay answers the same).
pub async fn place_order(shop: &Shop, token: &str, payment_method: &str, key: &str) -> String {
    let body = json!({
        "payment_method_id": payment_method,
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" }
    });
    let post = || {
        shop.client
            .post(format!("http://{}/api/v1/orders", shop.gateway))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let placed = post().await.unwrap();
    assert_eq!(placed.status(), 202);
    let location = placed.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = placed.json().await.unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/orders/{id}"));
    assert_eq!(order["status"], "pending");
    let replayed: Value = post().await.unwrap().json().await.unwrap();
    assert_eq!(replayed["id"], id.as_str(), "the same key places one order");
    id
}

/// Waits for order `id` to leave `pending`; the order.
pub async fn settled(shop: &Shop, token: &str, id: &str) -> Value {
    let path = format!("/api/v1/orders/{id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, order) = send(shop, reqwest::Method::GET, &path, token, None).await;
        assert_eq!(status, 200, "{order}");
        if order["status"] != "pending" {
            return order;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "order {id} still pending: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn available(shop: &Shop, id: &str) -> i64 {
    details(shop, id).await["availability"]["quantity"]
        .as_i64()
        .unwrap()
}

/// A shopper checks out: the order is confirmed, the stock is sold, the cart empties; a
/// declined card cancels the next order and gives its stock back.
pub async fn checks_out(shop: &Shop) {
    let page: Value = shop
        .get("/api/v1/products?limit=3")
        .await
        .json()
        .await
        .unwrap();
    let product = page["items"][2].clone();
    let id = product["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(20), "availability is known", || async {
        details(shop, &id).await["availability"].is_object()
    })
    .await;
    let before = available(shop, &id).await;
    assert!(before >= 2, "demo stock for {id}: {before}");

    let token = sign_in(shop, "buyer@example.com", "a buyer's long passphrase").await;
    let item = format!("/api/v1/cart/items/{id}");
    send(
        shop,
        reqwest::Method::PUT,
        &item,
        &token,
        Some(json!({ "quantity": 2 })),
    )
    .await;
    let good = card(shop, &token, "4242424242424242").await;
    let order_id = place_order(shop, &token, &good, "checkout-1").await;
    let order = settled(shop, &token, &order_id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(
        order["total"]["amount"],
        2 * product["price"]["amount"].as_i64().unwrap()
    );
    assert_eq!(order["lines"][0]["name"], product["name"]);
    eventually(Duration::from_secs(10), "the cart empties", || async {
        send(shop, reqwest::Method::GET, "/api/v1/cart", &token, None)
            .await
            .1["items"]
            == json!([])
    })
    .await;
    assert_eq!(available(shop, &id).await, before - 2, "two units sold");
    let (status, list) = send(shop, reqwest::Method::GET, "/api/v1/orders", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], order_id.as_str());
    let stranger = sign_in(shop, "stranger@example.com", "a stranger's passphrase").await;
    let (status, _) = send(
        shop,
        reqwest::Method::GET,
        &format!("/api/v1/orders/{order_id}"),
        &stranger,
        None,
    )
    .await;
    assert_eq!(status, 404, "another's order does not exist for them");

    send(
        shop,
        reqwest::Method::PUT,
        &item,
        &token,
        Some(json!({ "quantity": 1 })),
    )
    .await;
    let declined = card(shop, &token, "4000000000000002").await;
    let order_id = place_order(shop, &token, &declined, "checkout-2").await;
    let order = settled(shop, &token, &order_id).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(order["cancel_reason"], "payment_declined");
    eventually(
        Duration::from_secs(10),
        "the held unit goes back on sale",
        || async { available(shop, &id).await == before - 2 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_works_alike_in_both_topologies() {
    for topology in ["up", "monolith"] {
        let mut shop = Shop::start(topology, &[]).await;
        checks_out(&shop).await;
        let (status, _) = shop.stop();
        assert!(status.success(), "{topology}");
    }
}
