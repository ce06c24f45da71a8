//! Passive outlier ejection: an endpoint failing in a row is taken out for a while, then comes
//! back; the last available endpoint is never taken out.

use std::time::Duration;

use crate::helpers::{Reply, Stub, TestGateway, sample, toml_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_after_five_failures_and_comes_back() {
    let bad = Stub::start("bad").await;
    bad.always(Reply::status(500));
    let good = Stub::start("good").await;
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "ejection"
        prefix = "/"
        upstream = "pool"
        [upstreams.pool]
        endpoints = {}
        balance = "round_robin"
        [upstreams.pool.health]
        path = ""
        [upstreams.pool.breaker]
        consecutive_failures = 0
        [upstreams.pool.outlier]
        consecutive_failures = 5
        base_ejection_ms = 600
        max_ejection_percent = 50
        "#,
        toml_list(&[bad.addr, good.addr])
    ));

    // Round robin: the bad endpoint gets every other request, and its 500 (not retried) passes.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(gateway.get_status("/x").await);
    }
    assert_eq!(statuses, [500, 200, 500, 200, 500, 200, 500, 200, 500, 200]);
    let ejected = gateway.endpoint("pool", bad.addr).await;
    assert_eq!(ejected["available"], false, "{ejected}");
    assert_eq!(ejected["times_ejected"], 1, "{ejected}");
    assert!(ejected["ejected_for_ms"].as_u64().unwrap() > 0, "{ejected}");
    assert_eq!(gateway.endpoint("pool", good.addr).await["available"], true);

    // While it is out, everything goes to the good one.
    for _ in 0..10 {
        assert_eq!(gateway.get_status("/x").await, 200);
    }
    assert_eq!((bad.hits(), good.hits()), (5, 15));

    tokio::time::sleep(Duration::from_millis(700)).await;
    let back = gateway.endpoint("pool", bad.addr).await;
    assert_eq!(back["available"], true, "{back}");
    assert_eq!(back["times_ejected"], 1, "{back}");
    for _ in 0..4 {
        gateway.get_status("/x").await;
    }
    assert_eq!(bad.hits(), 7, "back in the rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_endpoint_is_never_ejected() {
    let only = Stub::start("only").await;
    only.always(Reply::status(500));
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "never-ejected"
        prefix = "/"
        upstream = "single-endpoint"
        [upstreams.single-endpoint]
        endpoints = {}
        [upstreams.single-endpoint.health]
        path = ""
        [upstreams.single-endpoint.breaker]
        consecutive_failures = 0
        [upstreams.single-endpoint.outlier]
        consecutive_failures = 5
        base_ejection_ms = 60000
        "#,
        toml_list(&[only.addr])
    ));
    for _ in 0..12 {
        assert_eq!(gateway.get_status("/x").await, 500);
    }
    assert_eq!(only.hits(), 12);
    let view = gateway.endpoint("single-endpoint", only.addr).await;
    assert_eq!(view["available"], true, "{view}");
    assert_eq!(view["times_ejected"], 0, "{view}");
    assert_eq!(view["failures"], 12, "{view}");
    let metrics = gateway.metrics().await;
    let suppressed = sample(
        &metrics,
        "gateway_upstream_ejections_suppressed_total",
        &[("upstream", "single-endpoint")],
    );
    // Failures 5 to 12 each reached the threshold and were kept in.
    assert_eq!(suppressed, Some(8.0), "{metrics}");
}
