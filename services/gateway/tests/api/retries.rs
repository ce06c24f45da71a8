//! Retries: only what is safe to send twice, honouring `Retry-After` within the route's time, and
//! within a budget that keeps retries from multiplying an upstream's trouble.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Reply, Stub, TestGateway, sample, toml_list};

fn retrying_gateway(stub: &Stub, route_timeout_ms: u64) -> TestGateway {
    TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "retries"
        prefix = "/"
        upstream = "busy"
        timeout_ms = {route_timeout_ms}
        [upstreams.busy]
        endpoints = {}
        [upstreams.busy.health]
        path = ""
        [upstreams.busy.retry]
        max_retries = 2
        backoff_base_ms = 5
        backoff_max_ms = 10
        "#,
        toml_list(&[stub.addr])
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_requests_or_those_with_an_idempotency_key_are_retried() {
    let stub = Stub::start("busy").await;
    let gateway = retrying_gateway(&stub, 5_000);

    stub.then(Reply::status(503));
    let response = gateway.get("/stock/1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(stub.hits(), 2, "one 503, then the retry");

    stub.then(Reply::status(503));
    let response = gateway
        .client
        .post(gateway.url("/orders"))
        .body("{\"sku\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "the upstream's 503 passes back");
    assert_eq!(stub.hits(), 3, "a POST is sent once");

    let body = "{\"sku\": 3}";
    stub.then(Reply::status(503));
    let response = gateway
        .client
        .post(gateway.url("/orders"))
        .header("idempotency-key", "order-3")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        echo["body_bytes"],
        body.len(),
        "the body is sent again in full"
    );
    assert_eq!(echo["headers"]["idempotency-key"], "order-3");
    assert_eq!(stub.hits(), 5, "a POST with Idempotency-Key is retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_within_the_route_timeout_and_not_beyond() {
    let stub = Stub::start("busy").await;
    let gateway = retrying_gateway(&stub, 2_500);

    stub.then(Reply::status(503).header("retry-after", "1"));
    let started = Instant::now();
    assert_eq!(gateway.get_status("/soon").await, 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.hits(), 2);

    stub.then(Reply::status(503).header("retry-after", "5"));
    let started = Instant::now();
    assert_eq!(
        gateway.get_status("/later").await,
        503,
        "the upstream's 503 passes back"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a wait past the route's timeout is not started: {:?}",
        started.elapsed()
    );
    assert_eq!(stub.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries_at_a_fifth_of_requests_plus_a_small_floor() {
    let stub = Stub::start("down").await;
    stub.always(Reply::status(503));
    let started = Instant::now();
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "retry-budget"
        prefix = "/"
        upstream = "down"
        [upstreams.down]
        endpoints = {}
        [upstreams.down.health]
        path = ""
        [upstreams.down.breaker]
        consecutive_failures = 0
        [upstreams.down.outlier]
        consecutive_failures = 0
        [upstreams.down.retry]
        max_retries = 2
        backoff_base_ms = 1
        backoff_max_ms = 2
        budget_percent = 20
        min_retries_per_second = 3
        "#,
        toml_list(&[stub.addr])
    ));
    for _ in 0..200 {
        assert_eq!(gateway.get_status("/x").await, 503);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let hits = stub.hits();
    let retries = hits - 200;
    // 20 % of 200 requests, the second of floor it starts with, and the floor earned since.
    let allowed = 40 + 3 + (3.0 * elapsed).ceil() as usize;
    assert!(
        retries <= allowed,
        "{retries} retries in {elapsed:.1} s; the budget allows {allowed}"
    );
    assert!(
        retries >= 40,
        "the budget is spent, not withheld: {retries}"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "gateway_upstream_retries_total",
            &[("route", "retry-budget")]
        ),
        Some(retries as f64)
    );
}
