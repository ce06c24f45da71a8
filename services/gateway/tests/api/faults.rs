//! Fault injection through the admin API: aborts and delays per route, and what it refuses.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{PROBLEM_JSON, Stub, TestGateway, assert_problem, toml_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_aborts_and_delays_apply_until_cleared() {
    let stub = Stub::start("target").await;
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "chaos"
        prefix = "/"
        upstream = "target"
        [upstreams.target]
        endpoints = {}
        "#,
        toml_list(&[stub.addr])
    ));
    let put = |path: &str, fault: Value| {
        gateway
            .admin
            .put(gateway.admin_url(path))
            .json(&fault)
            .send()
    };

    let set = put(
        "/faults/routes/chaos",
        json!({"abort_status": 418, "abort_percent": 100}),
    )
    .await
    .unwrap();
    assert_eq!(set.status(), 200);
    for _ in 0..5 {
        let body = assert_problem(gateway.get("/tea").await, 418).await;
        assert!(body["detail"].as_str().unwrap().contains("fault"), "{body}");
    }
    assert_eq!(
        stub.hits(),
        0,
        "an aborted request never reaches the upstream"
    );
    let listed: Value = gateway
        .admin
        .get(gateway.admin_url("/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["routes"]["chaos"]["abort_status"], 418, "{listed}");

    let cleared = gateway
        .admin
        .delete(gateway.admin_url("/faults/routes/chaos"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert_eq!(gateway.get_status("/tea").await, 200);
    assert_eq!(stub.hits(), 1);

    put(
        "/faults/routes/chaos",
        json!({"delay_ms": 300, "delay_percent": 100}),
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(gateway.get_status("/slow").await, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.hits(), 2, "a delayed request still goes through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_unknown_routes_or_with_invalid_percentages_are_refused() {
    let stub = Stub::start("target").await;
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "chaos"
        prefix = "/"
        upstream = "target"
        [upstreams.target]
        endpoints = {}
        "#,
        toml_list(&[stub.addr])
    ));
    let attempts = [
        (
            "/faults/routes/nope",
            json!({"abort_status": 503, "abort_percent": 100}),
            404,
        ),
        (
            "/faults/upstreams/nope",
            json!({"delay_ms": 10, "delay_percent": 100}),
            404,
        ),
        (
            "/faults/routes/chaos",
            json!({"abort_status": 503, "abort_percent": 150}),
            422,
        ),
        (
            "/faults/routes/chaos",
            json!({"delay_ms": 10, "delay_percent": 101}),
            422,
        ),
        (
            "/faults/routes/chaos",
            json!({"abort_status": 200, "abort_percent": 10}),
            422,
        ),
    ];
    for (path, fault, status) in attempts {
        let response = gateway
            .admin
            .put(gateway.admin_url(path))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path} {fault}");
        assert_eq!(response.headers()["content-type"], PROBLEM_JSON);
    }
    let listed: Value = gateway
        .admin
        .get(gateway.admin_url("/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!({"routes": {}, "upstreams": {}}),
        "nothing was set"
    );
    assert_eq!(gateway.get_status("/fine").await, 200);
}
