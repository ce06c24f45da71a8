//! Time and concurrency limits: per-attempt and per-route timeouts, and load shedding beyond
//! `max_in_flight` instead of queueing.

use std::time::{Duration, Instant};

use crate::helpers::{Reply, Stub, TestGateway, assert_problem, toml_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_is_a_504_after_the_per_try_timeout_and_retries_stay_within_the_route_timeout()
 {
    let stub = Stub::start("slow").await;
    stub.always(Reply::ok().delay_ms(2_000));
    let endpoints = toml_list(&[stub.addr]);
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "one-try"
        prefix = "/once"
        upstream = "once"
        [[routes]]
        name = "bounded"
        prefix = "/bounded"
        upstream = "retrying"
        timeout_ms = 700

        [upstreams.once]
        endpoints = {endpoints}
        per_try_timeout_ms = 200
        [upstreams.once.health]
        path = ""
        [upstreams.once.retry]
        max_retries = 0

        [upstreams.retrying]
        endpoints = {endpoints}
        per_try_timeout_ms = 500
        [upstreams.retrying.health]
        path = ""
        [upstreams.retrying.retry]
        max_retries = 5
        backoff_base_ms = 1
        backoff_max_ms = 1
        "#
    ));

    let started = Instant::now();
    let response = gateway.get("/once").await;
    let elapsed = started.elapsed();
    assert_problem(response, 504).await;
    assert!(
        (Duration::from_millis(190)..Duration::from_millis(1_500)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert_eq!(stub.hits(), 1);

    let started = Instant::now();
    let response = gateway.get("/bounded").await;
    let elapsed = started.elapsed();
    assert_problem(response, 504).await;
    // 500 ms for the first attempt, and only the 200 ms left for the second: not 1 s.
    assert!(
        (Duration::from_millis(650)..Duration::from_millis(950)).contains(&elapsed),
        "the route's 700 ms bound all attempts together: {elapsed:?}"
    );
    assert_eq!(
        stub.hits() - 1,
        2,
        "a timed-out attempt is retried while time is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_are_shed_at_once() {
    let stub = Stub::start("busy").await;
    stub.always(Reply::ok().delay_ms(500));
    let gateway = TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "shedding"
        prefix = "/"
        upstream = "small"
        [upstreams.small]
        endpoints = {}
        max_in_flight = 2
        [upstreams.small.health]
        path = ""
        "#,
        toml_list(&[stub.addr])
    ));

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (client, url) = (gateway.client.clone(), gateway.url(&format!("/x/{i}")));
        requests.spawn(async move {
            let started = Instant::now();
            let response = client.get(url).send().await.unwrap();
            (response, started.elapsed())
        });
    }
    let mut served = 0;
    let mut shed = 0;
    while let Some(done) = requests.join_next().await {
        let (response, elapsed) = done.unwrap();
        if response.status() == 200 {
            served += 1;
            assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
            continue;
        }
        shed += 1;
        assert_eq!(response.headers()["retry-after"], "1");
        assert_problem(response, 503).await;
        assert!(
            elapsed < Duration::from_millis(400),
            "shed at once, not queued: {elapsed:?}"
        );
    }
    assert_eq!((served, shed), (2, 8));
    assert_eq!(stub.hits(), 2);
    // The slots are given back when the responses end.
    let mut in_flight = gateway.upstream("small").await["in_flight"].clone();
    for _ in 0..20 {
        if in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        in_flight = gateway.upstream("small").await["in_flight"].clone();
    }
    assert_eq!(in_flight, 0);
    assert_eq!(gateway.get_status("/after").await, 200);
}

/// Two gateways with `shared = true` on the same Redis give one budget between them. Runs when
/// `SOUK_TEST_REDIS_URL` names a Redis server; says it was skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_limits_give_several_gateways_one_budget() {
    let Ok(redis) = std::env::var("SOUK_TEST_REDIS_URL") else {
        eprintln!("skipped: SOUK_TEST_REDIS_URL is not set, so shared rate limits were not tried");
        return;
    };
    let upstream = crate::helpers::Stub::start("shop").await;
    // A route name of its own, so parallel runs on one Redis do not share buckets.
    let route = format!("login-{}", uuid::Uuid::now_v7().simple());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nthreads = 1\naccess_log = false\nredis_url = \"{redis}\"\n\n\
         [[routes]]\nname = \"{route}\"\nprefix = \"/login\"\nupstream = \"shop\"\n[routes.rate_limit]\nclient_per_minute = 60\nclient_burst = 3\nshared = true\n\n\
         [upstreams.shop]\nendpoints = {}\n[upstreams.shop.health]\npath = \"\"\n",
        crate::helpers::toml_list(&[upstream.addr])
    );
    let (a, b) = (
        crate::helpers::TestGateway::start_with(&config),
        crate::helpers::TestGateway::start_with(&config),
    );
    let mut statuses = Vec::new();
    for i in 0..6 {
        let gateway = if i % 2 == 0 { &a } else { &b };
        statuses.push(gateway.get("/login").await.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        3,
        "one budget of 3 between both: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(upstream.hits(), 3);
}

#[test]
fn shared_limits_need_a_redis_url() {
    let err = souk_gateway::GatewayConfig::parse(
        "[[routes]]\nname = \"r\"\nprefix = \"/\"\nupstream = \"a\"\n[routes.rate_limit]\nclient_per_minute = 1\nshared = true\n[upstreams.a]\nendpoints = [\"127.0.0.1:1\"]",
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("routes[0].rate_limit.shared"),
        "{err}"
    );
}
