//! Route policies: tokens verified against identity's JWKS, the caller passed on, and every
//! kind of bad token refused with 401 (or 403 for a user on an admin route) before it reaches
//! an upstream.

use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{Stub, TestGateway, assert_problem, toml_list};

/// A signing key as identity would have one.
struct Key {
    kid: String,
    x: String,
    encoding: EncodingKey,
}

impl Key {
    fn new(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        let pkcs8 = pair.to_pkcs8().unwrap();
        Self {
            kid: kid.to_owned(),
            x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        }
    }

    fn jwk(&self) -> Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "alg": "EdDSA", "use": "sig" })
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(role: &str) -> Value {
    json!({ "iss": "souk-identity", "aud": "souk", "sub": "user-7", "role": role, "iat": now(), "nbf": now(), "exp": now() + 600, "jti": "j" })
}

/// A fake identity serving a JWKS whose keys the test can change.
async fn jwks_server(keys: Arc<Mutex<Vec<Value>>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new()
        .route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let keys = Arc::clone(&keys);
                async move { axum::Json(json!({ "keys": keys.lock().unwrap().clone() })) }
            }),
        )
        .route("/readyz", axum::routing::get(|| async { "ok" }));
    let (_trigger, shutdown) = souk_chassis::Shutdown::manual(std::time::Duration::from_secs(1));
    tokio::spawn(async move {
        let _keep = _trigger;
        souk_chassis::serve(listener, router, shutdown).await
    });
    addr
}

struct Setup {
    gateway: TestGateway,
    upstream: Stub,
    keys: Arc<Mutex<Vec<Value>>>,
    key: Key,
}

async fn setup() -> Setup {
    let key = Key::new("k1");
    let keys = Arc::new(Mutex::new(vec![key.jwk()]));
    let identity = jwks_server(Arc::clone(&keys)).await;
    setup_with(key, keys, identity).await
}

/// A gateway whose JWKS upstream is `identity`.
async fn setup_with(
    key: Key,
    keys: Arc<Mutex<Vec<Value>>>,
    identity: std::net::SocketAddr,
) -> Setup {
    let upstream = Stub::start("shop").await;
    let gateway = TestGateway::start(&format!(
        r#"
        [auth]
        jwks_upstream = "identity"
        issuer = "souk-identity"
        audience = "souk"

        [[routes]]
        name = "public"
        prefix = "/public"
        upstream = "shop"

        [[routes]]
        name = "me"
        prefix = "/me"
        upstream = "shop"
        policy = "user"

        [[routes]]
        name = "admin"
        prefix = "/admin"
        upstream = "shop"
        policy = "admin"

        [upstreams.shop]
        endpoints = {}
        [upstreams.shop.health]
        path = ""

        [upstreams.identity]
        endpoints = {}
        "#,
        toml_list(&[upstream.addr]),
        toml_list(&[identity]),
    ));
    Setup {
        gateway,
        upstream,
        keys,
        key,
    }
}

async fn call(setup: &Setup, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = setup
        .gateway
        .client
        .get(setup.gateway.url(path))
        .header("x-souk-user-id", "spoofed");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_routes_need_a_valid_token_and_pass_the_caller_on() {
    let setup = setup().await;
    let anonymous = call(&setup, "/me", None).await;
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_problem(anonymous, 401).await;
    assert_eq!(setup.upstream.hits(), 0);

    let token = setup.key.sign(&claims("user"));
    let response = call(&setup, "/me", Some(&token)).await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        echo["headers"]["x-souk-user-id"], "user-7",
        "the verified caller, not the spoofed one"
    );
    assert_eq!(echo["headers"]["x-souk-role"], "user");
    assert!(
        echo["headers"]["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer "),
        "services verify it again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_a_503_not_a_401_while_identity_s_keys_cannot_be_fetched() {
    // Identity's address, with nothing listening there.
    let identity = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let setup = setup_with(Key::new("k1"), Arc::new(Mutex::new(Vec::new())), identity).await;
    let token = setup.key.sign(&claims("user"));
    let response = call(&setup, "/me", Some(&token)).await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(response.headers().get("www-authenticate").is_none());
    assert_problem(response, 503).await;
    assert_eq!(setup.upstream.hits(), 0, "nothing passed unverified");
    // A token that does not even parse is still a 401.
    assert_problem(call(&setup, "/me", Some("not-a-token")).await, 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_refuse_users_with_403() {
    let setup = setup().await;
    assert_problem(
        call(
            &setup,
            "/admin/stock",
            Some(&setup.key.sign(&claims("user"))),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(
        call(
            &setup,
            "/admin/stock",
            Some(&setup.key.sign(&claims("admin")))
        )
        .await
        .status(),
        200
    );
    assert_eq!(setup.upstream.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_token_is_a_401_that_reaches_no_upstream() {
    let setup = setup().await;
    let key = &setup.key;
    let with = |field: &str, value: Value| {
        let mut c = claims("user");
        c[field] = value;
        key.sign(&c)
    };
    let header_b64 = |header: Value| URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims("admin").to_string());
    let alg_none = format!(
        "{}.{payload}.",
        header_b64(json!({ "alg": "none", "kid": "k1" }))
    );
    let hmac = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(
            &header,
            &claims("admin"),
            &EncodingKey::from_secret(key.x.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let cases = [
        ("alg none", alg_none),
        ("HMAC with the public key", hmac),
        ("wrong issuer", with("iss", json!("someone-else"))),
        ("wrong audience", with("aud", json!("catalog"))),
        ("expired", with("exp", json!(now() - 3600))),
        ("not yet valid", with("nbf", json!(now() + 3600))),
        ("unknown key", Key::new("k9").sign(&claims("user"))),
        ("garbage", "not.a.token".to_owned()),
        ("tampered", {
            let token = key.sign(&claims("user"));
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(claims("admin").to_string());
            parts[1] = &forged;
            parts.join(".")
        }),
    ];
    for (what, token) in cases {
        let response = call(&setup, "/me", Some(&token)).await;
        assert_eq!(response.status(), 401, "{what}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "{what}"
        );
    }
    assert_eq!(setup.upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let setup = setup().await;
    assert_eq!(
        call(&setup, "/me", Some(&setup.key.sign(&claims("user"))))
            .await
            .status(),
        200
    );
    let rotated = Key::new("k2");
    setup.keys.lock().unwrap().push(rotated.jwk());
    // The periodic refresh is minutes away: the unknown key id triggers a fetch (at most every 5 s).
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
    assert_eq!(
        call(&setup, "/me", Some(&rotated.sign(&claims("user"))))
            .await
            .status(),
        200
    );
    assert_eq!(
        call(&setup, "/me", Some(&setup.key.sign(&claims("user"))))
            .await
            .status(),
        200,
        "old keys keep working"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_ignore_bad_tokens_and_pass_good_ones_on() {
    let setup = setup().await;
    let response = call(&setup, "/public", Some("garbage")).await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert!(
        echo["headers"].get("x-souk-user-id").is_none(),
        "no caller, and the spoofed header is gone"
    );
    let echo: Value = call(&setup, "/public", Some(&setup.key.sign(&claims("user"))))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(echo["headers"]["x-souk-user-id"], "user-7");
}

#[test]
fn a_user_route_without_auth_is_refused_in_config() {
    let err = souk_gateway::GatewayConfig::parse(
        "[[routes]]\nname = \"me\"\nprefix = \"/me\"\nupstream = \"a\"\npolicy = \"user\"\n[upstreams.a]\nendpoints = [\"127.0.0.1:1\"]",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("routes[0].policy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_per_address_and_per_user() {
    let key = Key::new("k1");
    let identity = jwks_server(Arc::new(Mutex::new(vec![key.jwk()]))).await;
    let upstream = Stub::start("shop").await;
    let gateway = TestGateway::start(&format!(
        r#"
        [auth]
        jwks_upstream = "identity"
        issuer = "souk-identity"
        audience = "souk"

        [[routes]]
        name = "login"
        prefix = "/login"
        upstream = "shop"
        [routes.rate_limit]
        client_per_minute = 60
        client_burst = 3

        [[routes]]
        name = "orders"
        prefix = "/orders"
        upstream = "shop"
        policy = "user"
        [routes.rate_limit]
        user_per_minute = 60
        user_burst = 2

        [upstreams.shop]
        endpoints = {}
        [upstreams.shop.health]
        path = ""
        [upstreams.identity]
        endpoints = {}
        "#,
        toml_list(&[upstream.addr]),
        toml_list(&[identity]),
    ));
    let statuses: Vec<u16> = futures::future::join_all((0..5).map(|_| gateway.get("/login")))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        3,
        "{statuses:?}"
    );
    let refused = gateway.get("/login").await;
    for name in [
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ] {
        assert!(refused.headers().contains_key(name), "{name}");
    }
    assert_eq!(refused.headers()["ratelimit-limit"], "3");
    assert_problem(refused, 429).await;
    assert_eq!(
        upstream.hits(),
        3,
        "refused requests never reach the upstream"
    );

    let token_of = |sub: &str| {
        let mut c = claims("user");
        c["sub"] = json!(sub);
        key.sign(&c)
    };
    let (alice, bob) = (token_of("alice"), token_of("bob"));
    let send = |token: &str| {
        gateway
            .client
            .get(gateway.url("/orders"))
            .bearer_auth(token)
            .send()
    };
    let alice_statuses = [
        send(&alice).await.unwrap().status(),
        send(&alice).await.unwrap().status(),
        send(&alice).await.unwrap().status(),
    ];
    assert_eq!(alice_statuses.map(|s| s.as_u16()), [200, 200, 429]);
    assert_eq!(
        send(&bob).await.unwrap().status(),
        200,
        "each user has a bucket of their own"
    );
}
