//! Traces without a tracing backend: the gateway of `souk up` and `souk monolith` receives every
//! process's spans, and a checkout is one trace — the gateway's request, orders' acceptance, the
//! saga's reserve, charge, commit and confirmation in orders, inventory and payments, the SQL
//! they ran, and the consumers in cart, inventory and history that handled its events, each
//! linked to the span that published the event.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Shop, eventually};
use crate::shopping::{card, send, settled, sign_in};

/// The trace id of an answer's `traceparent`.
fn trace_id(response: &reqwest::Response) -> String {
    let traceparent = response.headers()["traceparent"].to_str().unwrap();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1].len(), 32, "{traceparent}");
    parts[1].to_owned()
}

async fn trace(shop: &Shop, id: &str) -> (u16, Value) {
    let response = shop
        .client
        .get(format!("http://{}/traces/{id}", shop.metrics))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn spans(trace: &Value) -> &[Value] {
    trace["spans"].as_array().map_or(&[], Vec::as_slice)
}

fn names(trace: &Value) -> BTreeSet<String> {
    spans(trace)
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The services a checkout's trace has spans of.
const SERVICES: [&str; 6] = [
    "gateway",
    "orders",
    "inventory",
    "payments",
    "cart",
    "history",
];

/// Spans a checkout's trace holds: the gateway's, orders' acceptance, the saga's steps, the
/// calls they made and an SQL statement.
const STEPS: [&str; 9] = [
    "POST place-order",
    "saga reserve",
    "saga charge",
    "saga commit",
    "saga confirmed",
    "POST /v1/orders",
    "POST /v1/reservations",
    "POST /v1/payments",
    "INSERT sagas",
];

/// Whether every span but the roots has its parent in the trace.
fn every_parent_held(trace: &Value) -> bool {
    let ids: BTreeSet<&str> = spans(trace)
        .iter()
        .filter_map(|s| s["span_id"].as_str())
        .collect();
    spans(trace).iter().all(|s| {
        s["parent_span_id"]
            .as_str()
            .is_none_or(|parent| ids.contains(parent))
    })
}

/// Places an order for one unit; the answer's trace id and the order's id.
async fn checkout(shop: &Shop, who: &str) -> (String, String, String) {
    let page: Value = shop
        .get("/api/v1/products?limit=3")
        .await
        .json()
        .await
        .unwrap();
    let product = page["items"][1]["id"].as_str().unwrap().to_owned();
    let token = sign_in(
        shop,
        &format!("{who}@example.com"),
        "a tracer's long passphrase",
    )
    .await;
    let (status, _) = send(
        shop,
        reqwest::Method::PUT,
        &format!("/api/v1/cart/items/{product}"),
        &token,
        Some(json!({ "quantity": 1 })),
    )
    .await;
    assert_eq!(status, 200);
    let method = card(shop, &token, "4242424242424242").await;
    let placed = shop
        .client
        .post(format!("http://{}/api/v1/orders", shop.gateway))
        .bearer_auth(&token)
        .header("idempotency-key", format!("trace-{who}"))
        .json(&json!({
            "payment_method_id": method,
            "shipping_address": { "name": "Grace Hopper", "line1": "1 Navy Yard", "city": "Arlington", "postal_code": "22202", "country": "US" }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 202);
    let trace = trace_id(&placed);
    let order: Value = placed.json().await.unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    let order = settled(shop, &token, &id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    (trace, id, token)
}

/// Checks that the trace of a checkout tells its whole story.
async fn checkout_is_one_trace(shop: &Shop, topology: &str) {
    let (id, _order, _token) = checkout(shop, &format!("tracer-{topology}")).await;
    let wanted_consumers = ["cart", "inventory", "history"];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let found = loop {
        let (status, found) = trace(shop, &id).await;
        // Each process sends its spans in batches of its own: wait for every one's.
        let services: BTreeSet<&str> = spans(&found)
            .iter()
            .filter_map(|s| s["service"].as_str())
            .collect();
        let names = names(&found);
        let whole = status == 200
            && SERVICES.iter().all(|s| services.contains(s))
            && STEPS.iter().all(|n| names.contains(*n))
            && wanted_consumers.iter().all(|service| {
                spans(&found).iter().any(|s| {
                    s["kind"] == "consumer"
                        && s["service"] == *service
                        && s["name"] == "handle souk.orders.order_confirmed.v1"
                })
            })
            && every_parent_held(&found);
        if whole {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the checkout's trace lacks a service, a step or a consumer: {status} {services:?} {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let all = spans(&found);
    assert!(
        all.iter().all(|s| s["trace_id"] == id.as_str()),
        "one trace"
    );
    // The root is the gateway's, with what it decided.
    let root = all
        .iter()
        .find(|s| s.get("parent_span_id").is_none())
        .unwrap();
    assert_eq!(root["service"], "gateway");
    assert_eq!(root["kind"], "server");
    assert_eq!(root["attributes"]["http.response.status_code"], 202);
    assert_eq!(root["attributes"]["souk.upstream"], "orders");
    assert_eq!(root["attributes"]["souk.attempts"], 1);
    // Every span but the root has its parent in the trace, and every consumer is linked to
    // the span that published its event.
    let ids: BTreeSet<&str> = all.iter().filter_map(|s| s["span_id"].as_str()).collect();
    for span in all {
        if let Some(parent) = span["parent_span_id"].as_str() {
            assert!(ids.contains(parent), "{span}: parent not in the trace");
        }
        if span["kind"] == "consumer" {
            let link = &span["links"][0];
            assert_eq!(link["trace_id"], id.as_str(), "{span}");
            assert_eq!(
                link["span_id"], span["parent_span_id"],
                "{span}: linked to its publisher"
            );
        }
    }
    // SQL as spans, with their text and no values.
    let statement = all.iter().find(|s| s["name"] == "INSERT sagas").unwrap();
    let text = statement["attributes"]["db.query.text"].as_str().unwrap();
    assert!(text.contains("$1") || text.contains('?'), "{text}");
    assert!(!text.contains("Grace Hopper"));

    // The list finds it, by service and route; the page draws it.
    let list = shop
        .traces("service=payments&route=place-order&limit=100")
        .await;
    let listed = list["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trace_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert_eq!(listed["root_name"], "POST place-order");
    assert_eq!(listed["error"], false);
    let page = shop
        .client
        .get(format!("http://{}/waterfall?trace={id}", shop.metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("saga charge"), "the page draws the saga");

    // And the terminal draws it too.
    let drawn = crate::helpers::souk()
        .args(["trace", &id, "--data-dir"])
        .arg(shop.data_dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&drawn.stdout);
    assert!(
        drawn.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&drawn.stderr)
    );
    for line in [
        "saga reserve",
        "saga charge",
        "INSERT sagas",
        "handle souk.orders.order_confirmed.v1",
    ] {
        assert!(text.contains(line), "souk trace shows {line}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_one_trace_across_the_shop_in_both_topologies() {
    for topology in ["up", "monolith"] {
        let mut shop = Shop::start(topology, &[]).await;
        checkout_is_one_trace(&shop, topology).await;
        // Every answer carries its trace; probes make none.
        let products = shop.get("/api/v1/products?limit=1").await;
        let id = trace_id(&products);
        eventually(
            Duration::from_secs(10),
            "a read's trace arrives",
            || async { trace(&shop, &id).await.0 == 200 },
        )
        .await;
        // The storefront's error page quotes the trace the shopper's request was in.
        let missing = shop
            .get("/products/0190a0b4-0000-7000-8000-000000000000")
            .await;
        assert_eq!(missing.status(), 404);
        let id = trace_id(&missing);
        let html = missing.text().await.unwrap();
        assert!(
            html.contains(&format!("<code id=\"trace-id\">{id}</code>")),
            "{html}"
        );
        // Probes, feed polls and the operators' own pages (the map polls every second) begin
        // no trace of their own: the list holds the shop's traffic.
        for path in ["/map", "/upstreams", "/traces?limit=1"] {
            let answer = shop
                .client
                .get(format!("http://{}{path}", shop.metrics))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200, "{path}");
            assert!(answer.headers().get("traceparent").is_none(), "{path}");
        }
        let list = shop.traces("limit=1000").await;
        for listed in list["traces"].as_array().unwrap() {
            let root = listed["root_name"].as_str().unwrap();
            for noise in [
                "/healthz",
                "/readyz",
                "/metrics",
                "/v1/events",
                "/upstreams",
                "/map",
                "/traces",
            ] {
                assert!(
                    !root.ends_with(noise),
                    "a trace of its own for {root}: {listed}"
                );
            }
        }
        let (status, problem) = trace(&shop, "00000000000000000000000000000000").await;
        assert_eq!(status, 400, "{problem}");
        let (status, _) = trace(&shop, "0123456789abcdef0123456789abcdef").await;
        assert_eq!(status, 404);
        let (status, _) = shop.stop();
        assert!(status.success(), "{topology}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traces_nothing_is_received_and_answers_carry_no_trace() {
    let mut shop = Shop::start("monolith", &["--no-traces"]).await;
    let products = shop.get("/api/v1/products?limit=1").await;
    assert_eq!(products.status(), 200);
    assert!(
        products.headers().get("traceparent").is_none(),
        "no trace to open"
    );
    let (status, problem) = trace(&shop, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 404);
    assert_eq!(problem["type"], "urn:souk:problem:traces-off", "{problem}");
    let (status, _) = shop.stop();
    assert!(status.success());
}
