//! The admin API as an attacker meets it: no token, a wrong token, a foreign `Host` (DNS
//! rebinding), and what the read-only listener lets a browser do — nothing that changes anything.

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Stub, TestGateway, admin_client, client, server_section, toml_list,
};

fn config(identity: &Stub, extra_server: &str) -> String {
    format!(
        "{}{extra_server}\n{}",
        server_section(false).trim_end(),
        r#"
        [[routes]]
        name = "login"
        prefix = "/api/v1/auth/login"
        upstream = "identity"
        rewrite = "/v1/auth/login"
        [upstreams.identity]
        endpoints = ENDPOINTS
        "#
        .replace("ENDPOINTS", &toml_list(&[identity.addr]))
    )
}

/// What an attacker would send: repoint identity at their own listener, replace the whole
/// configuration, re-read it, break a route, or read the configuration.
fn attacks(attacker: std::net::SocketAddr) -> Vec<(reqwest::Method, &'static str, Option<String>)> {
    use reqwest::Method;
    vec![
        (
            Method::PUT,
            "/upstreams/identity/endpoints",
            Some(json!({ "endpoints": [attacker] }).to_string()),
        ),
        (
            Method::PUT,
            "/config",
            Some(format!(
                "[upstreams.identity]\nendpoints = [\"{attacker}\"]\n"
            )),
        ),
        (Method::POST, "/reload", None),
        (
            Method::PUT,
            "/faults/upstreams/identity",
            Some(json!({ "abort_status": 503, "abort_percent": 100 }).to_string()),
        ),
        (Method::DELETE, "/faults/upstreams/identity", None),
        (Method::GET, "/config", None),
        (Method::GET, "/upstreams", None),
        (Method::GET, "/faults", None),
        (Method::GET, "/map", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_calls_without_the_token_and_changes_nothing() {
    let identity = Stub::start("identity").await;
    let attacker = Stub::start("attacker").await;
    let gateway = TestGateway::start_with(&config(&identity, ""));
    for (method, path, body) in attacks(attacker.addr) {
        for (who, token) in [
            ("no token", None),
            ("a wrong token", Some("guess")),
            ("the token's prefix", Some("the test gateway")),
        ] {
            let mut request = client().request(method.clone(), gateway.admin_url(path));
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            if let Some(body) = &body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.clone());
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{who}: {method} {path}");
            assert!(
                response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer")
            );
        }
    }
    // Identity is where it was: sign-ins still reach it, none reached the attacker.
    for _ in 0..5 {
        assert_eq!(
            gateway
                .client
                .post(gateway.url("/api/v1/auth/login"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        attacker.hits(),
        0,
        "no request reached the attacker's listener"
    );
    assert_eq!(identity.hits(), 5);
    // Health stays open, for probes.
    assert_eq!(
        client()
            .get(gateway.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // With the token the same call works.
    let view = gateway.upstream("identity").await;
    assert_eq!(view["endpoints"][0]["addr"], identity.addr.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_even_with_the_token() {
    // DNS rebinding: a web page at evil.example resolves its own name to 127.0.0.1 and calls
    // the admin port; the browser sends Host: evil.example (and no token: but even with one).
    let identity = Stub::start("identity").await;
    let attacker = Stub::start("attacker").await;
    let gateway = TestGateway::start_with(&config(&identity, ""));
    for (method, path, body) in attacks(attacker.addr) {
        let mut request = gateway
            .admin
            .request(method.clone(), gateway.admin_url(path))
            .header("host", "evil.example:9901");
        if let Some(body) = &body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 421, "{method} {path}");
    }
    for listener in [
        gateway.admin_url("/upstreams"),
        gateway.metrics_url("/upstreams"),
    ] {
        let response = gateway
            .admin
            .get(&listener)
            .header("host", "rebound.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 421, "{listener}");
    }
    assert_eq!(attacker.hits(), 0);
    // Its own address, localhost and names listed in admin_hosts are fine.
    let port = gateway.admin_addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let response = gateway
            .admin
            .get(gateway.admin_url("/upstreams"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
    let named = TestGateway::start_with(&config(
        &identity,
        "\nadmin_hosts = [\"gateway-admin.internal\"]",
    ));
    let response = named
        .admin
        .get(named.admin_url("/upstreams"))
        .header("host", "gateway-admin.internal:9901")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_admin_api_is_closed() {
    let identity = Stub::start("identity").await;
    let config = souk_gateway::GatewayConfig::parse(&config(&identity, "")).unwrap();
    let (trigger, shutdown) = souk_chassis::Shutdown::manual(std::time::Duration::from_secs(1));
    let running = souk_gateway::start(config, None, shutdown).unwrap();
    let url = format!("http://{}/upstreams", running.admin_addr);
    for token in [None, Some(ADMIN_TOKEN), Some("")] {
        let mut request = client().get(&url);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{token:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "urn:souk:problem:admin-closed");
    }
    trigger.trigger();
    std::thread::spawn(move || running.join());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_a_file_and_the_configuration_never_prints_secrets() {
    let identity = Stub::start("identity").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "a token read from a mounted secret\n").unwrap();
    let text = config(
        &identity,
        &format!(
            "\nadmin_token_file = \"{}\"\nredis_url = \"redis://:redis-s3cret@redis.example:6379/0\"",
            file.display()
        ),
    );
    let config = souk_gateway::GatewayConfig::parse(&text).unwrap();
    let (trigger, shutdown) = souk_chassis::Shutdown::manual(std::time::Duration::from_secs(1));
    let running = souk_gateway::start(config, None, shutdown).unwrap();
    let url = format!("http://{}/config", running.admin_addr);
    assert_eq!(
        admin_client().get(&url).send().await.unwrap().status(),
        401,
        "the test token is not this one"
    );
    let printed = client()
        .get(&url)
        .bearer_auth("a token read from a mounted secret")
        .send()
        .await
        .unwrap();
    assert_eq!(printed.status(), 200);
    let printed = printed.text().await.unwrap();
    assert!(!printed.contains("redis-s3cret"), "{printed}");
    assert!(
        printed.contains("redis://:***@redis.example:6379/0"),
        "{printed}"
    );
    assert!(!printed.contains("a token read from"), "{printed}");
    trigger.trigger();
    std::thread::spawn(move || running.join());

    // A missing or empty file stops the start, naming the key.
    std::fs::write(&file, "\n").unwrap();
    let config = souk_gateway::GatewayConfig::parse(&text).unwrap();
    let (_trigger, shutdown) = souk_chassis::Shutdown::manual(std::time::Duration::from_secs(1));
    let refused = souk_gateway::start(config, None, shutdown).unwrap_err();
    assert!(
        refused.to_string().contains("admin_token_file"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_listener_serves_the_map_to_a_browser_and_changes_nothing() {
    let identity = Stub::start("identity").await;
    let attacker = Stub::start("attacker").await;
    let gateway = TestGateway::start_with(&config(&identity, ""));
    // What the map page does: load itself, then poll /upstreams — with no token.
    let page = client()
        .get(gateway.metrics_url("/map"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/upstreams"));
    let upstreams: Value = client()
        .get(gateway.metrics_url("/upstreams"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upstreams[0]["name"], "identity");
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(
            client()
                .get(gateway.metrics_url(path))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
    // Nothing there changes anything, token or not.
    for (method, path, body) in attacks(attacker.addr) {
        if method == reqwest::Method::GET && (path == "/upstreams" || path == "/map") {
            continue;
        }
        let mut request = gateway
            .admin
            .request(method.clone(), gateway.metrics_url(path));
        if let Some(body) = &body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let status = request.send().await.unwrap().status().as_u16();
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
    }
    assert_eq!(
        gateway.upstream("identity").await["endpoints"][0]["addr"],
        identity.addr.to_string()
    );
}
