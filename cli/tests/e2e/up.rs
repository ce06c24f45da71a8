//! `souk up`: the shop comes up, survives a killed process, scales, and stops cleanly.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::helpers::{Shop, alive, eventually, signal, souk};

/// What both topologies must do alike: the same public API through the gateway.
async fn answers_the_public_api(shop: &Shop) {
    let response = shop.get("/api/v1/products?limit=2").await;
    assert_eq!(response.status(), 200);
    let page: serde_json::Value = response.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(shop.get("/api/v1/categories").await.status(), 200);
    let document: serde_json::Value = shop.get("/api/openapi.json").await.json().await.unwrap();
    for path in [
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/categories",
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/admin/products/{id}",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} missing from the merged document"
        );
    }
    assert!(
        document["paths"]["/v1/products"].is_null(),
        "only public paths"
    );
    assert!(
        document["paths"]["/api/v1/admin/products"]["get"].is_null(),
        "only methods the route lets through"
    );
    assert_eq!(shop.get("/nowhere").await.status(), 404);
    let bad = shop.get("/api/v1/products/not-a-uuid").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    assert!(
        std::fs::metadata(shop.data_dir.path().join("catalog.db")).is_ok(),
        "data under the data dir"
    );
    signs_up_and_in(shop).await;
}

/// An account through the gateway: register, log in, see oneself; the gateway asks anonymous
/// callers of a user route for a token.
async fn signs_up_and_in(shop: &Shop) {
    let url = |path: &str| format!("http://{}{path}", shop.gateway);
    let account = serde_json::json!({ "email": "ada@example.com", "password": "analytical engine notes", "name": "Ada" });
    let registered = shop
        .client
        .post(url("/api/v1/auth/register"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let login =
        serde_json::json!({ "email": "ada@example.com", "password": "analytical engine notes" });
    let tokens: serde_json::Value = shop
        .client
        .post(url("/api/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let anonymous = shop.client.get(url("/api/v1/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the gateway asks for a token");
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let me = shop
        .client
        .get(url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
    let jwks: serde_json::Value = shop
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monolith_answers_the_same_api_in_one_process_and_stops() {
    let mut shop = Shop::start("monolith", &[]).await;
    answers_the_public_api(&shop).await;
    let status = souk()
        .args(["status", "--data-dir"])
        .arg(shop.data_dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("in process"));
    let (status, took) = shop.stop();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_answers_through_the_gateway_and_stops_leaving_no_process() {
    let mut shop = Shop::up(&[]).await;
    answers_the_public_api(&shop).await;

    let pids: Vec<u32> = shop
        .processes()
        .await
        .iter()
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(pids.len(), 9, "eight services and the gateway");
    assert!(pids.iter().all(|&pid| alive(pid)));
    assert!(
        std::fs::metadata(shop.data_dir.path().join("catalog.db")).is_ok(),
        "data under the data dir"
    );

    let (status, took) = shop.stop();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived souk up");
    }
    assert!(
        !shop.data_dir.path().join("souk.json").exists(),
        "state file removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_restarted_while_the_gateway_keeps_serving() {
    let shop = Shop::up(&["--instances", "catalog=2"]).await;
    let catalogs: Vec<_> = shop
        .processes()
        .await
        .into_iter()
        .filter(|p| p["service"] == "catalog")
        .collect();
    assert_eq!(catalogs.len(), 2);
    let victim = catalogs[0]["pid"].as_u64().unwrap() as u32;
    signal(victim, Signal::SIGKILL);

    // Every request still succeeds: the gateway retries the dead instance's refused
    // connections on the other one, and active checks take it out.
    for _ in 0..40 {
        assert_eq!(shop.get("/api/v1/products?limit=1").await.status(), 200);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    eventually(
        Duration::from_secs(15),
        "the killed instance is restarted",
        || async {
            let processes = shop.processes().await;
            processes.iter().any(|p| {
                p["restarts"] == 1
                    && p["pid"]
                        .as_u64()
                        .is_some_and(|pid| pid != 0 && pid as u32 != victim)
            })
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "the restarted instance is healthy again",
        || async {
            shop.upstream("catalog").await["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["healthy"] == true)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_spreads_requests_over_the_instances_without_failures() {
    let shop = Shop::up(&[]).await;
    let load = {
        let (client, gateway) = (shop.client.clone(), shop.gateway);
        tokio::spawn(async move {
            let mut failures = 0;
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(8) {
                let ok = client
                    .get(format!("http://{gateway}/api/v1/categories"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                failures += usize::from(!ok);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        })
    };
    let scale = |count: &str| {
        let output = souk()
            .args(["scale", &format!("catalog={count}"), "--data-dir"])
            .arg(shop.data_dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    scale("3");
    let endpoints = shop.upstream("catalog").await["endpoints"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(endpoints, 3);
    for _ in 0..60 {
        assert_eq!(shop.get("/api/v1/products?limit=1").await.status(), 200);
    }
    let requests: Vec<u64> = shop.upstream("catalog").await["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["requests"].as_u64().unwrap())
        .collect();
    assert!(
        requests.iter().all(|&n| n >= 5),
        "every instance gets a share: {requests:?}"
    );
    scale("1");
    assert_eq!(
        shop.upstream("catalog").await["endpoints"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        shop.processes()
            .await
            .iter()
            .filter(|p| p["service"] == "catalog")
            .count(),
        1
    );
    assert_eq!(load.await.unwrap(), 0, "no request failed while scaling");

    let status = souk()
        .args(["status", "--data-dir"])
        .arg(shop.data_dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success()
            && text.contains("catalog")
            && text.contains("up")
            && text.contains("closed"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_runs_on_postgres_and_redis_with_a_database_per_service() {
    let (Ok(server), Ok(redis)) = (
        std::env::var("SOUK_TEST_POSTGRES_URL"),
        std::env::var("SOUK_TEST_REDIS_URL"),
    ) else {
        eprintln!(
            "skipped: SOUK_TEST_POSTGRES_URL and SOUK_TEST_REDIS_URL are not both set, so souk up --backend postgres was not tried"
        );
        return;
    };
    let prefix = format!("souk_e2e_{}_", std::process::id());
    let mut shop = Shop::start_with_env(
        "up",
        &["--backend", "postgres"],
        &[
            ("SOUK_POSTGRES_URL", server.as_str()),
            ("SOUK_POSTGRES_DATABASE_PREFIX", prefix.as_str()),
            ("SOUK_REDIS_URL", redis.as_str()),
            ("SOUK_ADMIN_EMAIL", "root@example.com"),
            ("SOUK_ADMIN_PASSWORD", "a very long admin passphrase"),
            crate::ready::NO_RECONCILIATION,
        ],
    )
    .await;
    crate::ready::sells_at_once(&shop).await;
    crate::ready::a_new_product_sells_at_once(&shop, "KIT-0901").await;
    answers_the_public_api_without_sqlite(&shop).await;
    crate::shopping::shops_and_manages_stock(&shop).await;
    crate::shopping::checks_out(&shop).await;
    // A cart left behind, to find in Redis.
    let token =
        crate::shopping::sign_in(&shop, "left@example.com", "a long enough passphrase").await;
    let page: serde_json::Value = shop
        .get("/api/v1/products?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/api/v1/cart/items/{}",
        page["items"][0]["id"].as_str().unwrap()
    );
    let body = Some(serde_json::json!({ "quantity": 1 }));
    let (status, _) = crate::shopping::send(&shop, reqwest::Method::PUT, &path, &token, body).await;
    assert_eq!(status, 200);
    for service in [
        "catalog",
        "inventory",
        "cart",
        "orders",
        "payments",
        "history",
    ] {
        assert!(
            !shop.data_dir.path().join(format!("{service}.db")).exists(),
            "no SQLite file for {service} on the servers backend"
        );
    }
    let (status, _) = shop.stop();
    assert!(status.success());
    for service in [
        "identity",
        "catalog",
        "inventory",
        "cart",
        "payments",
        "orders",
        "history",
    ] {
        let dropped = std::process::Command::new("psql")
            .arg(&server)
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {prefix}{service} WITH (FORCE)"),
            ])
            .status();
        assert!(
            dropped.is_ok_and(|s| s.success()),
            "the test database {prefix}{service} could not be dropped"
        );
    }
    let keys = std::process::Command::new("redis-cli")
        .args([
            "-u",
            &redis,
            "--scan",
            "--pattern",
            &format!("{prefix}cart:*"),
        ])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&keys.stdout).to_string();
    assert!(
        !keys.trim().is_empty(),
        "the cart lived in Redis under {prefix}cart:"
    );
    for key in keys.lines() {
        std::process::Command::new("redis-cli")
            .args(["-u", &redis, "del", key])
            .output()
            .unwrap();
    }
}

async fn answers_the_public_api_without_sqlite(shop: &Shop) {
    let page: serde_json::Value = shop
        .get("/api/v1/products?limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(shop.get("/api/v1/categories").await.status(), 200);
}

/// Administrators manage products through the gateway; the gateway and the catalog both check.
async fn administrators_manage_products(topology: &str) {
    let admin = [
        ("SOUK_ADMIN_EMAIL", "root@example.com"),
        ("SOUK_ADMIN_PASSWORD", "a very long admin passphrase"),
    ];
    let mut shop = Shop::start_with_env(topology, &[], &admin).await;
    let url = |path: &str| format!("http://{}{path}", shop.gateway);
    let login = |email: &str, password: &str| {
        let body = serde_json::json!({ "email": email, "password": password });
        let request = shop
            .client
            .post(url("/api/v1/auth/login"))
            .json(&body)
            .send();
        async move {
            request
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let admin_token = login("root@example.com", "a very long admin passphrase").await;
    let account = serde_json::json!({ "email": "bo@example.com", "password": "bo's own long passphrase", "name": "Bo" });
    assert_eq!(
        shop.client
            .post(url("/api/v1/auth/register"))
            .json(&account)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let user_token = login("bo@example.com", "bo's own long passphrase").await;
    let product = serde_json::json!({ "sku": "KIT-0999", "name": "Copper Kettle", "description": "Hand-hammered.", "category": "kitchen", "price": { "amount": 5900, "currency": "USD" } });
    let create = |token: Option<String>| {
        let mut request = shop
            .client
            .post(url("/api/v1/admin/products"))
            .json(&product);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(create(None).await, 401);
    assert_eq!(create(Some(user_token)).await, 403);
    assert_eq!(create(Some(admin_token)).await, 201);
    let found: serde_json::Value = shop
        .get("/api/v1/products?q=copper%20kettle")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"][0]["sku"], "KIT-0999");
    let (status, _) = shop.stop();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_manage_products_in_both_topologies() {
    administrators_manage_products("up").await;
    administrators_manage_products("monolith").await;
}
