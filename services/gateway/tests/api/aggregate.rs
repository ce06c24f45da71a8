//! Aggregation: the product details page fanned out to catalog and inventory in parallel, whole
//! when both answer, degraded when inventory is down or slow, failed when catalog fails.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Reply, Stub, TestGateway, assert_problem, refused_addr, toml_list};

fn config(catalog: &str, inventory: &str) -> String {
    format!(
        r#"
        [upstreams.catalog]
        endpoints = {catalog}
        [upstreams.inventory]
        endpoints = {inventory}
        [upstreams.inventory.retry]
        max_retries = 0

        [[aggregates]]
        name = "product-details"
        path = "/api/v1/products/{{id}}/details"
        [[aggregates.parts]]
        name = "product"
        upstream = "catalog"
        path = "/v1/products/{{id}}"
        timeout_ms = 2000
        required = true
        [[aggregates.parts]]
        name = "availability"
        upstream = "inventory"
        path = "/v1/availability/{{id}}"
        timeout_ms = 200
        "#
    )
}

async fn details(gateway: &TestGateway, id: &str) -> (u16, Value) {
    let response = gateway.get(&format!("/api/v1/products/{id}/details")).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_parts_answer_in_one_object_fetched_in_parallel() {
    let catalog = Stub::start("catalog").await;
    let inventory = Stub::start("inventory").await;
    // Each part takes 400 ms: in parallel the whole takes about that, in series twice as long.
    catalog.always(Reply::ok().delay_ms(400));
    inventory.always(Reply::ok().delay_ms(400));
    let gateway = TestGateway::start(
        &config(&toml_list(&[catalog.addr]), &toml_list(&[inventory.addr]))
            .replace("timeout_ms = 200", "timeout_ms = 1500"),
    );
    let started = Instant::now();
    let (status, body) = details(&gateway, "p-1").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["product"]["stub"], "catalog");
    assert_eq!(body["product"]["path"], "/v1/products/p-1");
    assert_eq!(body["availability"]["stub"], "inventory");
    assert_eq!(body["availability"]["path"], "/v1/availability/p-1");
    assert_eq!(body["degraded"], json!([]));
    assert!(
        elapsed < Duration::from_millis(780),
        "{elapsed:?}: not parallel"
    );
    // The parts carry the client's request id and trace context like any proxied request.
    assert!(
        body["product"]["headers"]["x-request-id"].is_string(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_down_or_failing_degrades_availability_only() {
    let catalog = Stub::start("catalog").await;
    let gateway = TestGateway::start(&config(
        &toml_list(&[catalog.addr]),
        &toml_list(&[refused_addr()]),
    ));
    let (status, body) = details(&gateway, "p-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["product"]["stub"], "catalog");
    assert_eq!(body["availability"], Value::Null);
    assert_eq!(body["degraded"], json!(["availability"]));

    let inventory = Stub::start("inventory").await;
    inventory.always(Reply::status(500));
    let gateway = TestGateway::start(&config(
        &toml_list(&[catalog.addr]),
        &toml_list(&[inventory.addr]),
    ));
    let (status, body) = details(&gateway, "p-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degraded"], json!(["availability"]));
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("gateway_aggregate_degraded_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_inventory_costs_only_its_deadline() {
    let catalog = Stub::start("catalog").await;
    let inventory = Stub::start("inventory").await;
    let gateway = TestGateway::start(&config(
        &toml_list(&[catalog.addr]),
        &toml_list(&[inventory.addr]),
    ));
    let slowed = gateway
        .admin
        .put(gateway.admin_url("/faults/upstreams/inventory"))
        .json(&json!({"delay_ms": 2000, "delay_percent": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(slowed.status(), 200);
    let started = Instant::now();
    let (status, body) = details(&gateway, "p-1").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["product"]["stub"], "catalog");
    assert_eq!(body["degraded"], json!(["availability"]));
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}: the part's 200 ms deadline bounds the page"
    );

    // A fault on the part's own route works too, and clearing it restores the whole answer.
    gateway
        .admin
        .delete(gateway.admin_url("/faults/upstreams/inventory"))
        .send()
        .await
        .unwrap();
    let aborted = gateway
        .admin
        .put(gateway.admin_url("/faults/routes/product-details.availability"))
        .json(&json!({"abort_status": 503, "abort_percent": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(aborted.status(), 200);
    assert_eq!(
        details(&gateway, "p-1").await.1["degraded"],
        json!(["availability"])
    );
    gateway
        .admin
        .delete(gateway.admin_url("/faults/routes/product-details.availability"))
        .send()
        .await
        .unwrap();
    assert_eq!(details(&gateway, "p-1").await.1["degraded"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_catalog_fails_the_page_and_its_404_stays_a_404() {
    let catalog = Stub::start("catalog").await;
    let inventory = Stub::start("inventory").await;
    catalog.then(Reply::status(404).header("content-type", "application/problem+json"));
    let gateway = TestGateway::start(&config(
        &toml_list(&[catalog.addr]),
        &toml_list(&[inventory.addr]),
    ));
    let missing = gateway.get("/api/v1/products/p-404/details").await;
    assert_eq!(missing.status(), 404);

    let gateway = TestGateway::start(&config(
        &toml_list(&[refused_addr()]),
        &toml_list(&[inventory.addr]),
    ));
    assert_problem(gateway.get("/api/v1/products/p-1/details").await, 502).await;

    // Ids are one URL-safe segment: anything else matches no aggregate (and no route here).
    assert_eq!(
        gateway.get_status("/api/v1/products/a.b/details").await,
        404
    );
    assert_eq!(
        gateway
            .client
            .post(gateway.url("/api/v1/products/p-1/details"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// `body` decoded from `coding` (as `Content-Encoding` names it).
fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some(other) => panic!("an unexpected coding: {other}"),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accept_encoding_gets_the_aggregate_coded_as_it_accepts() {
    let catalog = Stub::start("catalog").await;
    let inventory = Stub::start("inventory").await;
    let gateway = TestGateway::start(
        &config(&toml_list(&[catalog.addr]), &toml_list(&[inventory.addr]))
            .replace("timeout_ms = 200", "timeout_ms = 2000"),
    );
    // What browsers, curl --compressed, requests/urllib3 and plain clients send.
    let cases: [(Option<&str>, Option<&str>); 7] = [
        (None, None),
        (Some("identity"), None),
        (Some("gzip"), Some("gzip")),
        (Some("deflate"), Some("deflate")),
        (Some("br"), None),
        (Some("gzip, deflate, br, zstd"), Some("gzip")),
        (Some("deflate, gzip;q=0.5"), Some("deflate")),
    ];
    for (accept, expected) in cases {
        // reqwest is built without decompression, so the body arrives as the gateway coded it.
        let mut request = gateway
            .client
            .get(gateway.url("/api/v1/products/p-1/details"));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{accept:?}");
        let headers = response.headers().clone();
        let coding = headers
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(coding.as_deref(), expected, "{accept:?}: {headers:?}");
        assert_eq!(headers["vary"], "accept-encoding", "{accept:?}");
        assert_eq!(headers["content-type"], "application/json", "{accept:?}");
        let body = decode(coding.as_deref(), &response.bytes().await.unwrap());
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["degraded"], json!([]), "{accept:?}: {body}");
        // Parts always ask for the identity coding, whatever the client accepts.
        for part in ["product", "availability"] {
            assert_eq!(
                body[part]["headers"]["accept-encoding"], "identity",
                "{accept:?}: {body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_part_that_cannot_be_read_is_a_502_never_a_200() {
    let catalog = Stub::start("catalog").await;
    let inventory = Stub::start("inventory").await;
    let gateway = TestGateway::start(&config(
        &toml_list(&[catalog.addr]),
        &toml_list(&[inventory.addr]),
    ));
    // A coded body, whatever it says it is, is not JSON as it stands.
    catalog.then(Reply::ok().header("content-encoding", "gzip"));
    assert_problem(gateway.get("/api/v1/products/p-1/details").await, 502).await;
    // Nor is a 200 in another media type.
    catalog.then(Reply::ok().header("content-type", "text/html"));
    let response = gateway.get("/api/v1/products/p-1/details").await;
    assert_ne!(response.status(), 200, "{response:?}");
    // A refusal without a problem body keeps its status, with the gateway's problem.
    catalog.then(Reply::status(404).header("content-type", "text/plain"));
    assert_problem(gateway.get("/api/v1/products/p-1/details").await, 404).await;
    // An optional part that cannot be read degrades only itself.
    inventory.then(Reply::ok().header("content-encoding", "gzip"));
    let (status, body) = details(&gateway, "p-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["availability"], Value::Null);
    assert_eq!(body["degraded"], json!(["availability"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_and_range_headers_never_reach_the_parts() {
    let catalog = Stub::start("catalog").await;
    let inventory = Stub::start("inventory").await;
    let gateway = TestGateway::start(
        &config(&toml_list(&[catalog.addr]), &toml_list(&[inventory.addr]))
            .replace("timeout_ms = 200", "timeout_ms = 2000"),
    );
    let response = gateway
        .client
        .get(gateway.url("/api/v1/products/p-1/details"))
        .header("if-none-match", "\"abc\"")
        .header("range", "bytes=0-10")
        .header("if-modified-since", "Sun, 06 Dec 2026 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    for part in ["product", "availability"] {
        let headers = &body[part]["headers"];
        for name in ["if-none-match", "range", "if-modified-since"] {
            assert!(headers.get(name).is_none(), "{part} got {name}: {body}");
        }
    }
}
