//! The shop as an attacker meets it, end to end (issue 17): what another user of the machine can
//! read, what the gateway's admin and the supervisor's control APIs let a caller without the
//! run's token do, which internal route the internet reaches, whose `X-Forwarded-For` counts, and
//! whether a session can be ended — each attack performed against a real `souk up`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Shop, souk};

const PASSWORD: &str = "a long enough shopper passphrase";

/// Every file and folder under `dir` whose mode lets anyone but the owner in.
fn readable_by_others(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // gone meanwhile (a lock or journal file)
        };
        if meta.permissions().mode() & 0o077 != 0 {
            found.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                pending.push(entry.path());
            }
        }
    }
    found
}

async fn post(shop: &Shop, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut request = shop
        .client
        .post(format!("http://{}{path}", shop.gateway))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn login(shop: &Shop, email: &str, password: &str) -> (String, String) {
    let (status, body) = post(
        shop,
        "/api/v1/auth/login",
        &json!({ "email": email, "password": password }),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_as_an_attacker_meets_it() {
    let shop = Shop::up(&[]).await;
    let data = shop.data_dir.path();

    // Another local user reads nothing: the data dir is 0700, every file in it 0600 — the
    // databases (and their -wal/-shm), logs, the generated gateway.toml, souk.json, the admin
    // token and the key that seals identity's signing keys.
    for file in [
        "identity.db",
        "identity.db-wal",
        "payments.db",
        "admin-token",
        "identity.key",
        "payments-vault.key",
        "souk.json",
        "gateway.toml",
        "logs/identity.1.log",
    ] {
        assert!(data.join(file).exists(), "{file} exists");
    }
    let open = readable_by_others(data);
    assert!(open.is_empty(), "readable by other users: {open:?}");
    // souk.json says where the shop is, never the token.
    let state = std::fs::read_to_string(data.join("souk.json")).unwrap();
    assert!(!state.contains(&shop.token), "{state}");
    // Even a copy of identity.db holds no usable signing key: every one is sealed.
    let url = format!("sqlite://{}?mode=ro", data.join("identity.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT pkcs8 FROM signing_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("sealed:v1:")),
        "{keys:?}"
    );
    pool.close().await;

    // The gateway's admin API: repointing identity without the token, with a wrong one, or from
    // a web page (DNS rebinding: a foreign Host) changes nothing.
    let attacker = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let repoint = |token: Option<&str>, host: Option<&str>| {
        let mut request = shop
            .client
            .put(format!(
                "http://{}/upstreams/identity/endpoints",
                shop.admin
            ))
            .json(&json!({ "endpoints": [attacker] }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.send()
    };
    assert_eq!(repoint(None, None).await.unwrap().status(), 401);
    assert_eq!(
        repoint(Some("a guessed token"), None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        repoint(Some(&shop.token), Some("rebind.evil.example"))
            .await
            .unwrap()
            .status(),
        421
    );
    let identity = shop.upstream("identity").await;
    assert_ne!(
        identity["endpoints"][0]["addr"],
        attacker.to_string(),
        "identity was not repointed"
    );
    assert_eq!(
        shop.client
            .get(format!("http://{}/config", shop.admin))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // The supervisor's control API wants the token too.
    let control = shop.control.unwrap();
    let hold = shop
        .client
        .put(format!("http://{control}/services/identity/hold"))
        .json(&json!({ "held": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(hold.status(), 401);
    assert_eq!(
        shop.client
            .get(format!("http://{control}/processes"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // The map is on the read-only listener, for a browser without a token; `souk status` reads
    // the token from the data dir.
    assert_eq!(
        shop.client
            .get(format!("http://{}/map", shop.metrics))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let status = souk()
        .args(["status", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("identity"));

    // The internal service-token endpoint is not on the internet: no secret can be guessed there.
    let guess =
        json!({ "client_id": "orders", "client_secret": "a guess", "audience": "payments" });
    let (status, body) = post(&shop, "/api/v1/auth/service-token", &guess, None).await;
    assert_eq!(status, 404, "{body}");
    assert_ne!(
        body["type"], "urn:souk:problem:unauthorized",
        "identity never saw it: {body}"
    );

    // Ending sessions through the public API: logout kills the copied refresh token, a password
    // change every other login.
    let (status, body) = post(
        &shop,
        "/api/v1/auth/register",
        &json!({ "email": "ada@example.com", "password": PASSWORD, "name": "Ada" }),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, copied) = login(&shop, "ada@example.com", PASSWORD).await;
    assert_eq!(
        post(
            &shop,
            "/api/v1/auth/logout",
            &json!({ "refresh_token": copied }),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        post(
            &shop,
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": copied }),
            None
        )
        .await
        .0,
        401
    );
    let (access, laptop) = login(&shop, "ada@example.com", PASSWORD).await;
    let (_, phone) = login(&shop, "ada@example.com", PASSWORD).await;
    let change = json!({ "current_password": PASSWORD, "new_password": "another long passphrase" });
    assert_eq!(
        post(&shop, "/api/v1/auth/password", &change, None).await.0,
        401,
        "signed-in users only"
    );
    assert_eq!(
        post(&shop, "/api/v1/auth/password", &change, Some(&access))
            .await
            .0,
        204
    );
    for old in [&laptop, &phone] {
        assert_eq!(
            post(
                &shop,
                "/api/v1/auth/refresh",
                &json!({ "refresh_token": old }),
                None
            )
            .await
            .0,
            401
        );
    }
    let (access, _) = login(&shop, "ada@example.com", "another long passphrase").await;

    // A card registered through the shop rests sealed in the simulated vault: a copy of
    // payments.db holds no card number.
    let card = json!({ "card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123" });
    let (status, body) = post(&shop, "/api/v1/payment-methods", &card, Some(&access)).await;
    assert_eq!(status, 201, "{body}");
    let url = format!("sqlite://{}?mode=ro", data.join("payments.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let cards: Vec<String> = sqlx::query_scalar("SELECT card_number FROM processor_vault")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        !cards.is_empty()
            && cards
                .iter()
                .all(|c| c.starts_with("sealed:v1:") && !c.contains("4242")),
        "{cards:?}"
    );
    pool.close().await;

    // A client that is not the storefront cannot escape the per-address sign-in limit by writing
    // a new X-Forwarded-For each time: after the burst (10) its address is refused.
    // (Each attempt names another account, so identity's per-account throttle plays no part:
    // a 429 here is the gateway's, with its RateLimit headers.)
    let mut statuses = Vec::new();
    for i in 0..14 {
        let response = shop
            .client
            .post(format!("http://{}/api/v1/auth/login", shop.gateway))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({ "email": format!("nobody-{i}@example.com"), "password": "wrong guess here" }))
            .send()
            .await
            .unwrap();
        let limited = response.headers().contains_key("ratelimit-limit");
        statuses.push((response.status().as_u16(), limited));
    }
    assert!(
        statuses.contains(&(429, true)),
        "the spoofed addresses were believed: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_registered_with_the_admin_address_is_not_promoted_on_the_next_start() {
    // The attack: the shop runs; someone registers the address the operator will name as the
    // administrator; the operator restarts the shop with SOUK_ADMIN_EMAIL set to it.
    let mut shop = Shop::up(&[]).await;
    let (status, body) = post(
        &shop,
        "/api/v1/auth/register",
        &json!({ "email": "boss@example.com", "password": PASSWORD, "name": "Mallory" }),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (stopped, _) = shop.stop();
    assert!(stopped.success());

    let data = shop.data_dir.path().to_path_buf();
    let mut restart = souk()
        .args([
            "up",
            "--quiet",
            "--port",
            &crate::helpers::free_port().to_string(),
            "--data-dir",
        ])
        .arg(&data)
        .env("SOUK_ADMIN_EMAIL", "boss@example.com")
        .env("SOUK_ADMIN_PASSWORD", "the operator's own admin passphrase")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let exit = loop {
        if let Some(exit) = restart.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "souk up neither started nor refused"
        );
        assert!(
            !data.join("souk.json").exists(),
            "the shop came up with the attacker's account as administrator"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!exit.success(), "the start is refused");
    let log = std::fs::read_to_string(data.join("logs/identity.1.log")).unwrap();
    assert!(
        log.contains("refusing to make it an administrator"),
        "{log}"
    );

    // The account is still a plain user, with the attacker's password only.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        data.join("identity.db").display()
    ))
    .await
    .unwrap();
    let role: String =
        sqlx::query_scalar("SELECT role FROM users WHERE email = 'boss@example.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(role, "user");
    pool.close().await;
}
