//! The circuit breaker: open after failures in a row (refusing at once, without reaching the
//! upstream), half-open after a pause, closed or open again by how the probe ends.

use std::time::Duration;

use crate::helpers::{Reply, Stub, TestGateway, assert_problem, toml_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_refuses_without_reaching_the_upstream_and_probes_after_a_pause() {
    let stub = Stub::start("flaky").await;
    stub.always(Reply::status(500));
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "breaker"
        prefix = "/"
        upstream = "flaky"
        [upstreams.flaky]
        endpoints = {}
        [upstreams.flaky.health]
        path = ""
        [upstreams.flaky.retry]
        max_retries = 0
        [upstreams.flaky.outlier]
        consecutive_failures = 0
        [upstreams.flaky.breaker]
        consecutive_failures = 3
        open_ms = 300
        half_open_probes = 1
        "#,
        toml_list(&[stub.addr])
    ));

    for _ in 0..3 {
        assert_eq!(
            gateway.get_status("/pay").await,
            500,
            "the upstream's own 500"
        );
    }
    assert_eq!(gateway.breaker("flaky").await, "open");
    let refused = gateway.get("/pay").await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_problem(refused, 503).await;
    assert_eq!(
        stub.hits(),
        3,
        "an open breaker answers without the upstream"
    );

    // After open_ms, one probe goes through; it fails, so the breaker opens again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(gateway.get_status("/pay").await, 500);
    assert_eq!(stub.hits(), 4);
    assert_eq!(gateway.breaker("flaky").await, "open");
    assert_problem(gateway.get("/pay").await, 503).await;
    assert_eq!(stub.hits(), 4);

    // The upstream recovers: the next probe succeeds and closes it.
    stub.always(Reply::ok());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(gateway.get_status("/pay").await, 200);
    assert_eq!(gateway.breaker("flaky").await, "closed");
    for _ in 0..5 {
        assert_eq!(gateway.get_status("/pay").await, 200);
    }
    assert_eq!(stub.hits(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_probe_goes_through_while_half_open() {
    let stub = Stub::start("slow").await;
    stub.always(Reply::status(500));
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "half-open"
        prefix = "/"
        upstream = "slow"
        [upstreams.slow]
        endpoints = {}
        [upstreams.slow.health]
        path = ""
        [upstreams.slow.retry]
        max_retries = 0
        [upstreams.slow.outlier]
        consecutive_failures = 0
        [upstreams.slow.breaker]
        consecutive_failures = 3
        open_ms = 300
        half_open_probes = 1
        "#,
        toml_list(&[stub.addr])
    ));
    for _ in 0..3 {
        gateway.get_status("/x").await;
    }
    stub.always(Reply::ok().delay_ms(400));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let probe = tokio::spawn({
        let (client, url) = (gateway.client.clone(), gateway.url("/x"));
        async move { client.get(url).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(gateway.breaker("slow").await, "half_open");
    assert_problem(gateway.get("/x").await, 503).await;
    assert_eq!(probe.await.unwrap(), 200);
    assert_eq!(stub.hits(), 4);
    assert_eq!(gateway.breaker("slow").await, "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_abandoned_by_its_client_does_not_hold_the_breaker_half_open() {
    let stub = Stub::start("abandoned").await;
    stub.always(Reply::status(500));
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "abandoned-probe"
        prefix = "/"
        upstream = "abandoned"
        [upstreams.abandoned]
        endpoints = {}
        [upstreams.abandoned.health]
        path = ""
        [upstreams.abandoned.retry]
        max_retries = 0
        [upstreams.abandoned.outlier]
        consecutive_failures = 0
        [upstreams.abandoned.breaker]
        consecutive_failures = 3
        open_ms = 300
        half_open_probes = 1
        "#,
        toml_list(&[stub.addr])
    ));
    for _ in 0..3 {
        gateway.get_status("/x").await;
    }
    assert_eq!(gateway.breaker("abandoned").await, "open");

    // The probe's client gives up before the slow upstream answers.
    stub.always(Reply::ok().delay_ms(1_000));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(impatient.get(gateway.url("/x")).send().await.is_err());
    assert_eq!(stub.hits(), 4, "the probe went through");

    // The upstream is fine again: within a few open periods a new probe closes the breaker.
    stub.always(Reply::ok());
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let status = gateway.get_status("/x").await;
        statuses.push(status);
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert_eq!(gateway.breaker("abandoned").await, "closed");
}
