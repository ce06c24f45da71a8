//! Balancing over endpoints, and what happens when an endpoint cannot be reached.

use std::net::SocketAddr;

use serde_json::Value;

use crate::helpers::{Stub, TestGateway, assert_problem, refused_addr, toml_list};

fn spread_gateway(balance: &str, endpoints: &[SocketAddr]) -> TestGateway {
    TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "spread-{balance}"
        prefix = "/"
        upstream = "pool"
        [upstreams.pool]
        endpoints = {}
        balance = "{balance}"
        "#,
        toml_list(endpoints)
    ))
}

async fn three_stubs() -> [Stub; 3] {
    [
        Stub::start("a").await,
        Stub::start("b").await,
        Stub::start("c").await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_exactly_evenly() {
    let stubs = three_stubs().await;
    let gateway = spread_gateway("round_robin", &stubs.each_ref().map(|s| s.addr));
    for _ in 0..30 {
        assert_eq!(gateway.get_status("/rr").await, 200);
    }
    assert_eq!(stubs.each_ref().map(Stub::hits), [10, 10, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_of_two_choices_gives_every_endpoint_a_fair_share() {
    let stubs = three_stubs().await;
    let gateway = spread_gateway("p2c", &stubs.each_ref().map(|s| s.addr));
    // Four clients at once, so in-flight counts differ now and then.
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, url) = (gateway.client.clone(), gateway.url("/p2c"));
        clients.spawn(async move {
            for _ in 0..75 {
                let status = client.get(&url).send().await.unwrap().status();
                assert_eq!(status, 200);
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    let hits = stubs.each_ref().map(Stub::hits);
    assert_eq!(hits.iter().sum::<usize>(), 300);
    assert!(hits.iter().all(|&n| n >= 50), "an unfair spread: {hits:?}");
}

/// Health checks and ejection are off, so the dead endpoint keeps being picked and only the retry
/// on a refused connection saves each request.
fn one_dead_gateway(live: &Stub, dead: SocketAddr) -> TestGateway {
    TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "failover"
        prefix = "/"
        upstream = "pool"
        [upstreams.pool]
        endpoints = {}
        balance = "round_robin"
        [upstreams.pool.health]
        path = ""
        [upstreams.pool.outlier]
        consecutive_failures = 0
        "#,
        toml_list(&[dead, live.addr])
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_over_when_an_endpoint_refuses_connections() {
    let live = Stub::start("live").await;
    let dead = refused_addr();
    let gateway = one_dead_gateway(&live, dead);

    for i in 0..50 {
        let response = gateway.get(&format!("/item/{i}")).await;
        assert_eq!(response.status(), 200, "request {i}");
        let echo: Value = response.json().await.unwrap();
        assert_eq!(echo["path"], format!("/item/{i}"));
    }
    // Nothing was sent to the dead endpoint, so even a POST without Idempotency-Key is retried.
    for i in 0..10 {
        let response = gateway
            .client
            .post(gateway.url("/orders"))
            .body(format!("order {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "POST {i}");
    }
    assert_eq!(live.hits(), 60);
    let dead_view = gateway.endpoint("pool", dead).await;
    assert_eq!(
        dead_view["requests"], 30,
        "round robin sent it every other first try: {dead_view}"
    );
    assert_eq!(dead_view["failures"], 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_502_that_does_not_reveal_its_address() {
    let dead = refused_addr();
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "unreachable"
        prefix = "/"
        upstream = "gone"
        [upstreams.gone]
        endpoints = {}
        [upstreams.gone.health]
        path = ""
        "#,
        toml_list(&[dead])
    ));
    let get = gateway.get("/anything").await;
    let post = gateway
        .client
        .post(gateway.url("/anything"))
        .body("x")
        .send()
        .await
        .unwrap();
    for response in [get, post] {
        let body = assert_problem(response, 502).await.to_string();
        assert!(!body.contains("127.0.0.1"), "{body}");
        assert!(!body.contains(&dead.port().to_string()), "{body}");
        assert!(
            !body.contains("gone"),
            "the upstream's name is for logs only: {body}"
        );
    }
}
