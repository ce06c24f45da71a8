//! Header hygiene both ways: what a client may not pass to a service, what the gateway adds, and
//! what a service's connection-level headers must not pass back.

use serde_json::Value;

use crate::helpers::{Reply, Stub, TestGateway, toml_list};

const VALID_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn gateway_for(stub: &Stub) -> TestGateway {
    TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "headers"
        prefix = "/"
        upstream = "echo"
        [upstreams.echo]
        endpoints = {}
        "#,
        toml_list(&[stub.addr])
    ))
}

fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 4
        && parts[0] == "00"
        && [32, 16, 2] == [parts[1].len(), parts[2].len(), parts[3].len()]
        && parts[1..].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_connection_headers_are_stripped_and_forwarding_headers_set() {
    let stub = Stub::start("echo").await;
    let gateway = gateway_for(&stub);

    let response = gateway
        .client
        .get(gateway.url("/whoami"))
        .header("host", "shop.example")
        .header("x-souk-user-id", "admin")
        .header("X-Souk-Role", "admin")
        .header("connection", "x-hop-secret")
        .header("x-hop-secret", "do not forward")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-forwarded-for", "203.0.113.66")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=203.0.113.66")
        .header("x-request-id", "client-request-42")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-request-id"],
        "client-request-42",
        "the client's request id comes back"
    );
    let echo: Value = response.json().await.unwrap();
    let headers = echo["headers"].as_object().unwrap();
    for gone in [
        "x-souk-user-id",
        "x-souk-role",
        "x-hop-secret",
        "keep-alive",
        "te",
        "forwarded",
    ] {
        assert!(
            !headers.contains_key(gone),
            "{gone} reached the upstream: {echo}"
        );
    }
    assert_ne!(echo["headers"]["connection"], "x-hop-secret", "{echo}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-host"], "shop.example");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(
        headers["host"],
        stub.addr.to_string(),
        "Host names the endpoint"
    );
    assert_eq!(headers["x-request-id"], "client-request-42");
    assert_eq!(
        headers["accept"], "application/json",
        "ordinary headers pass"
    );
    let made = headers["traceparent"].as_str().unwrap();
    assert!(
        is_traceparent(made),
        "a traceparent is made when absent: {made}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_traceparents_are_kept_when_valid_and_replaced_otherwise() {
    let stub = Stub::start("echo").await;
    let gateway = gateway_for(&stub);

    let kept: Value = gateway
        .client
        .get(gateway.url("/trace"))
        .header("traceparent", VALID_TRACEPARENT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept["headers"]["traceparent"], VALID_TRACEPARENT);

    let response = gateway
        .client
        .get(gateway.url("/trace"))
        .header("traceparent", "00-zz-not-a-trace")
        .header("x-request-id", "an id with spaces")
        .send()
        .await
        .unwrap();
    let returned_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let replaced: Value = response.json().await.unwrap();
    let trace = replaced["headers"]["traceparent"].as_str().unwrap();
    assert!(is_traceparent(trace), "{trace}");
    assert_ne!(returned_id, "an id with spaces");
    assert_eq!(returned_id.len(), 36, "a fresh UUID: {returned_id}");
    assert_eq!(replaced["headers"]["x-request-id"], returned_id.as_str());

    // Without one, the gateway makes one, sends it upstream and returns the same.
    let response = gateway.get("/trace").await;
    let returned_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-request-id"], returned_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_from_the_upstream_do_not_reach_the_client() {
    let stub = Stub::start("echo").await;
    stub.always(
        Reply::ok()
            .header("keep-alive", "timeout=5, max=100")
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "internal")
            .header("proxy-authenticate", "Basic")
            .header("x-request-id", "made-up-by-the-upstream")
            .header("x-normal", "yes"),
    );
    let gateway = gateway_for(&stub);

    let response = gateway
        .client
        .get(gateway.url("/hop"))
        .header("x-request-id", "client-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    for gone in ["keep-alive", "x-upstream-hop", "proxy-authenticate"] {
        assert!(
            !headers.contains_key(gone),
            "{gone} reached the client: {headers:?}"
        );
    }
    assert!(
        headers
            .get_all("connection")
            .iter()
            .all(|v| !v.to_str().unwrap().contains("x-upstream-hop")),
        "{headers:?}"
    );
    assert_eq!(headers["x-normal"], "yes");
    assert_eq!(headers["x-request-id"], "client-7", "the gateway's id wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_limited_and_forwarded_as_the_clients_it_speaks_for() {
    let stub = Stub::start("echo").await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nthreads = 2\n\
         access_log = false\ntrusted_proxies = [\"127.0.0.1/32\"]\n{}",
        r#"
        [[routes]]
        name = "login"
        prefix = "/"
        upstream = "echo"
        [routes.rate_limit]
        client_per_minute = 60
        client_burst = 2
        [upstreams.echo]
        endpoints = ENDPOINTS
        "#
        .replace("ENDPOINTS", &toml_list(&[stub.addr]))
    );
    let gateway = TestGateway::start_with(&toml);
    let as_shopper = |shopper: &'static str| {
        gateway
            .client
            .get(gateway.url("/login"))
            .header("x-forwarded-for", shopper)
            .send()
    };

    let response = as_shopper("203.0.113.7").await.unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        echo["headers"]["x-forwarded-for"], "203.0.113.7, 127.0.0.1",
        "the chain names the shopper, then the proxy: {echo}"
    );
    assert_eq!(as_shopper("203.0.113.7").await.unwrap().status(), 200);
    assert_eq!(
        as_shopper("203.0.113.7").await.unwrap().status(),
        429,
        "one shopper's bucket is spent"
    );
    assert_eq!(
        as_shopper("198.51.100.2").await.unwrap().status(),
        200,
        "another shopper behind the same proxy has a bucket of its own"
    );
}

/// A client whose connections come from `ip` (a loopback address of its own, like another host).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(Some(ip.parse().unwrap()))
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_storefronts_own_addresses_are_believed_as_they_change() {
    // The storefront's one instance listens on 127.0.0.1; the gateway learns that address from
    // its endpoints (trusted_upstreams), not from a network like 127.0.0.0/8 or 172.16.0.0/12.
    let storefront = Stub::start("storefront").await;
    let target = Stub::start("echo").await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nthreads = 2\n\
         access_log = false\ntrusted_upstreams = [\"storefront\"]\n{}",
        r#"
        [[routes]]
        name = "login"
        prefix = "/login"
        upstream = "echo"
        [routes.rate_limit]
        client_per_minute = 60
        client_burst = 2
        [[routes]]
        name = "storefront"
        prefix = "/"
        upstream = "storefront"
        [upstreams.echo]
        endpoints = ECHO
        [upstreams.storefront]
        endpoints = STOREFRONT
        "#
        .replace("ECHO", &toml_list(&[target.addr]))
        .replace("STOREFRONT", &toml_list(&[storefront.addr]))
    );
    let gateway = TestGateway::start_with(&toml);
    let send = |client: &reqwest::Client, xff: &str| {
        client
            .get(gateway.url("/login"))
            .header("x-forwarded-for", xff)
            .send()
    };

    // The attack: a client elsewhere (127.0.0.2) writes a new X-Forwarded-For each time.
    let attacker = client_from("127.0.0.2");
    let mut statuses = Vec::new();
    for i in 0..4 {
        let response = send(&attacker, &format!("198.51.100.{i}")).await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            let echo: Value = response.json().await.unwrap();
            assert_eq!(
                echo["headers"]["x-forwarded-for"], "127.0.0.2",
                "its own address, not what it wrote"
            );
        }
    }
    assert_eq!(
        statuses,
        [200, 200, 429, 429],
        "one bucket, whatever it claims"
    );

    // The storefront's address is believed: each shopper has a bucket, IPv6 ones per /64.
    let from_storefront = client_from("127.0.0.1");
    assert_eq!(
        send(&from_storefront, "203.0.113.7")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send(&from_storefront, "2001:db8:1:2::1")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send(&from_storefront, "2001:db8:1:2::ffff")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send(&from_storefront, "2001:db8:1:2:abcd::9")
            .await
            .unwrap()
            .status(),
        429,
        "one /64, one bucket"
    );
    assert_eq!(
        send(&from_storefront, "2001:db8:1:3::1")
            .await
            .unwrap()
            .status(),
        200
    );

    // The storefront moves (souk up scaled it, DNS changed): its old address is believed no more.
    let moved = gateway
        .admin
        .put(gateway.admin_url("/upstreams/storefront/endpoints"))
        .json(&serde_json::json!({ "endpoints": ["127.0.0.3:9"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let response = send(&from_storefront, "203.0.113.99").await.unwrap();
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
}
