//! The Prometheus metrics on the admin listener.

use crate::helpers::{Reply, Stub, TestGateway, sample, toml_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_retries_are_counted_per_route() {
    let stub = Stub::start("counted").await;
    // Route and upstream names are unique to this test: the recorder is shared by the process.
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "metrics-route"
        prefix = "/"
        upstream = "metrics-upstream"
        [upstreams.metrics-upstream]
        endpoints = {}
        [upstreams.metrics-upstream.retry]
        backoff_base_ms = 1
        "#,
        toml_list(&[stub.addr])
    ));
    stub.then(Reply::status(503));
    for _ in 0..5 {
        assert_eq!(gateway.get_status("/m").await, 200);
    }
    stub.then(Reply::status(404));
    assert_eq!(gateway.get_status("/m").await, 404);
    let posted = gateway.client.post(gateway.url("/m")).send().await.unwrap();
    assert_eq!(posted.status(), 200);

    let metrics = gateway.metrics().await;
    let route = ("route", "metrics-route");
    let count = |labels: &[(&str, &str)]| sample(&metrics, "gateway_requests_total", labels);
    assert_eq!(
        count(&[route, ("method_class", "read"), ("status_class", "2xx")]),
        Some(5.0),
        "{metrics}"
    );
    assert_eq!(
        count(&[route, ("method_class", "read"), ("status_class", "4xx")]),
        Some(1.0)
    );
    assert_eq!(
        count(&[route, ("method_class", "write"), ("status_class", "2xx")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "gateway_upstream_retries_total", &[route]),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "gateway_upstream_attempts_total", &[route]),
        Some(8.0)
    );
    assert!(
        metrics.contains("gateway_request_duration_seconds")
            && metrics.contains("route=\"metrics-route\""),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "gateway_upstream_endpoints",
            &[("upstream", "metrics-upstream")]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_map_is_served_and_its_counts_follow_the_answers() {
    let stub = Stub::start("mapped").await;
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "mapped"
        prefix = "/"
        upstream = "mapped"
        [upstreams.mapped]
        endpoints = {}
        [upstreams.mapped.retry]
        max_retries = 0
        "#,
        toml_list(&[stub.addr])
    ));
    let page = gateway
        .client
        .get(gateway.metrics_url("/map"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("service map") && html.contains("fetch(\"upstreams\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page fetches nothing from another host"
    );

    stub.then(Reply::status(500));
    assert_eq!(gateway.get_status("/a").await, 500);
    assert_eq!(gateway.get_status("/b").await, 200);
    assert_eq!(gateway.get_status("/c").await, 200);
    let upstream = gateway.upstream("mapped").await;
    assert_eq!(upstream["answered"], 3, "{upstream}");
    assert_eq!(upstream["failed"], 1, "{upstream}");
}
