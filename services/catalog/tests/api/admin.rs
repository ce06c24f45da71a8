//! Managing products: administrators only, checked by the catalog itself (defence in depth),
//! with tokens signed by a stand-in for identity whose JWKS the catalog fetches.

use std::net::SocketAddr;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use souk_chassis::auth::AuthConfig;

use crate::helpers::{read_json, spawn};

/// A stand-in for identity: one Ed25519 key, its JWKS served on a loopback port.
pub struct Issuer {
    addr: SocketAddr,
    key: EncodingKey,
    _server: souk_chassis::test_util::TestServer,
}

impl Issuer {
    pub async fn start() -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        let pkcs8 = pair.to_pkcs8().unwrap();
        let x = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            pair.public_key().as_ref(),
        );
        let jwks = json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "test-key", "alg": "EdDSA", "use": "sig" }] });
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
        let server = souk_chassis::test_util::TestServer::spawn(router).await;
        Self {
            addr: server.addr,
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            _server: server,
        }
    }

    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            jwks_url: format!("http://{}/.well-known/jwks.json", self.addr),
            service_audience: "catalog".into(),
            ..AuthConfig::default()
        }
    }

    pub fn token(&self, sub: &str, role: &str, audience: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = json!({ "iss": "souk-identity", "aud": audience, "sub": sub, "role": role, "iat": now, "nbf": now, "exp": now + 600, "jti": "t" });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("test-key".into());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

pub fn product() -> Value {
    json!({ "sku": "KIT-0999", "name": "Copper Kettle", "description": "Hand-hammered, 1.5 l.", "category": "kitchen", "price": { "amount": 5900, "currency": "USD" } })
}

pub async fn send(
    app: &crate::helpers::TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = app.server.client.request(method, app.server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    if response.status() == StatusCode::NO_CONTENT {
        return (StatusCode::NO_CONTENT, Value::Null);
    }
    read_json(response).await
}

souk_chassis::backend_tests! { spawn;

    async fn only_administrators_manage_products(app) {
        let admin = app.issuer.token("admin-1", "admin", "souk");
        let user = app.issuer.token("user-1", "user", "souk");
        let other_audience = app.issuer.token("admin-1", "admin", "inventory");
        use reqwest::Method;
        // The authorisation matrix for every admin route: anonymous, a user, an admin token
        // for another audience, a garbage token — none may write.
        let (_, page) = app.get("/v1/products?limit=1").await;
        let existing = page["items"][0]["id"].as_str().unwrap().to_owned();
        let routes = [
            (Method::POST, "/v1/admin/products".to_owned(), Some(product())),
            (Method::PUT, format!("/v1/admin/products/{existing}"), Some(product())),
            (Method::DELETE, format!("/v1/admin/products/{existing}"), None),
        ];
        for (method, path, body) in &routes {
            for (who, token, expected) in [
                ("anonymous", None, StatusCode::UNAUTHORIZED),
                ("a user", Some(user.as_str()), StatusCode::FORBIDDEN),
                ("another audience", Some(other_audience.as_str()), StatusCode::UNAUTHORIZED),
                ("garbage", Some("x.y.z"), StatusCode::UNAUTHORIZED),
            ] {
                let (status, _) = send(&app, method.clone(), path, token, body.as_ref()).await;
                assert_eq!(status, expected, "{who} {method} {path}");
            }
        }
        let (_, still) = app.get(&format!("/v1/products/{existing}")).await;
        assert_eq!(still["id"], existing.as_str(), "nothing was changed");

        let (status, created) = send(&app, Method::POST, "/v1/admin/products", Some(&admin), Some(&product())).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(created["price"]["amount"], 5900);
        let id = created["id"].as_str().unwrap().to_owned();
        let (_, fetched) = app.get(&format!("/v1/products/{id}")).await;
        assert_eq!(fetched, created);
        let (_, found) = app.get("/v1/products?q=copper%20kettle").await;
        assert_eq!(found["items"][0]["id"], id.as_str(), "new products are searchable");

        let mut changed = product();
        changed["price"]["amount"] = json!(6900);
        changed["name"] = json!("Copper Kettle, 2 l");
        let (status, updated) = send(&app, Method::PUT, &format!("/v1/admin/products/{id}"), Some(&admin), Some(&changed)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(updated["price"]["amount"], 6900);
        let (_, found) = app.get("/v1/products?q=2%20l%20kettle").await;
        assert_eq!(found["items"][0]["name"], "Copper Kettle, 2 l", "the search index follows updates");

        let (status, _) = send(&app, Method::DELETE, &format!("/v1/admin/products/{id}"), Some(&admin), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.get(&format!("/v1/products/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = send(&app, Method::DELETE, &format!("/v1/admin/products/{id}"), Some(&admin), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn product_writes_are_validated(app) {
        use reqwest::Method;
        let admin = app.issuer.token("admin-1", "admin", "souk");
        let (status, _) = send(&app, Method::POST, "/v1/admin/products", Some(&admin), Some(&product())).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, problem) = send(&app, Method::POST, "/v1/admin/products", Some(&admin), Some(&product())).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        let cases = [
            ("sku", json!("lower-case")),
            ("category", json!("no-such-category")),
            ("name", json!("")),
            // One text rule: nothing that breaks a line where orders and history copy the name.
            ("name", json!("Mug\nBlue")),
            ("name", json!("Mug\tBlue")),
            ("name", json!("Mug\u{0}")),
            ("name", json!("Mug\u{2028}Blue")),
            ("name", json!("\u{202E}eulB guM")),
            ("description", json!("Line one\r\nline two")),
            ("price", json!({ "amount": -1, "currency": "USD" })),
            ("price", json!({ "amount": 100, "currency": "dollars" })),
        ];
        for (field, value) in cases {
            let mut body = product();
            body["sku"] = json!("KIT-0998");
            body[field] = value.clone();
            let (status, problem) = send(&app, Method::POST, "/v1/admin/products", Some(&admin), Some(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={value}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        let mut extra = product();
        extra["stock"] = json!(5);
        let (status, _) = send(&app, Method::POST, "/v1/admin/products", Some(&admin), Some(&extra)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "stock is inventory's: unknown fields are refused");
        let (status, _) = send(&app, Method::PUT, &format!("/v1/admin/products/{}", uuid::Uuid::now_v7()), Some(&admin), Some(&product())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
