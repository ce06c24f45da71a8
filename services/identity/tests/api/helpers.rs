//! Spawns identity on a random port with its own database, and reads its answers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use souk_chassis::Secret;
use souk_chassis::test_util::{Backend, TestDatabase, TestServer, check_answer, init_test_logging};
use souk_identity::keys::KeySet;
use souk_identity::{AdminAccount, AppState, Config, Identity, SetupError};

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";
/// The administrator that [`spawn_with_admin`] names.
pub const ADMIN_EMAIL: &str = "root@souk.example";
/// The administrator's password.
pub const ADMIN_PASSWORD: &str = "the keys to the whole shop";

/// A running identity service, its state (store, keys) and the database behind it.
/// Fields drop in order: the server stops before its database goes away.
pub struct TestApp {
    pub server: TestServer,
    pub state: AppState,
    pub db: TestDatabase,
}

/// An answer: status, headers, the body as text and as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

/// Identity with default settings, or `None` when `backend` is not configured here.
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}, None).await
}

/// Identity that creates [`ADMIN_EMAIL`] as its first administrator.
pub async fn spawn_with_admin(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}, Some(admin(ADMIN_EMAIL, ADMIN_PASSWORD))).await
}

/// Identity with `tweak` applied to its config and an optional administrator.
pub async fn spawn_with(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
    admin: Option<AdminAccount>,
) -> Option<TestApp> {
    init_test_logging();
    let db = TestDatabase::create(backend).await?;
    let mut config = config_for(&db);
    tweak(&mut config);
    let identity = souk_identity::build(config, admin)
        .await
        .expect("identity starts");
    Some(TestApp {
        server: TestServer::spawn(identity.router).await,
        state: identity.state,
        db,
    })
}

/// The config of a service over `db`.
pub fn config_for(db: &TestDatabase) -> Config {
    Config {
        database: db.config.clone(),
        key_secret: Secret::new(KEY_SECRET),
        key_file: String::new(),
        ..Config::default()
    }
}

/// The secret the test services seal their signing keys with.
pub const KEY_SECRET: &str = "the test shop's key-sealing secret";

/// A sealer like the test services' own.
pub fn sealer() -> souk_chassis::seal::Sealer {
    souk_chassis::seal::Sealer::new(&Secret::new(KEY_SECRET), "souk identity signing keys")
        .expect("a valid secret")
}

/// An administrator account for `build`.
pub fn admin(email: &str, password: &str) -> AdminAccount {
    AdminAccount {
        email: email.to_owned(),
        password: Secret::new(password),
    }
}

impl TestApp {
    /// Builds another identity over this app's database (a restart, or a second instance).
    pub async fn build_again(&self, admin: Option<AdminAccount>) -> Result<Identity, SetupError> {
        souk_identity::build(config_for(&self.db), admin).await
    }

    /// POSTs `body` as JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        let response = self
            .server
            .client
            .post(self.server.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    /// POSTs raw bytes to `path` with `content_type`.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let response = self
            .server
            .client
            .post(self.server.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    /// GETs `path`, with an `Authorization` header when given.
    pub async fn get(&self, path: &str, authorization: Option<&str>) -> Reply {
        let mut request = self.server.client.get(self.server.url(path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        read(request.send().await.expect("request sent")).await
    }

    /// `POST /v1/auth/register`.
    pub async fn register(&self, email: &str, password: &str, name: &str) -> Reply {
        self.post(
            "/v1/auth/register",
            &json!({"email": email, "password": password, "name": name}),
        )
        .await
    }

    /// Registers an account that must be created; returns it.
    pub async fn registered(&self, email: &str) -> Value {
        let reply = self.register(email, PASSWORD, "Ada Lovelace").await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body
    }

    /// `POST /v1/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Logs in successfully; returns (access token, refresh token).
    pub async fn tokens(&self, email: &str, password: &str) -> (String, String) {
        let reply = self.login(email, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        pair(&reply)
    }

    /// `POST /v1/auth/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post("/v1/auth/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// `GET /v1/me` with a bearer token.
    pub async fn me(&self, access_token: &str) -> Reply {
        self.get("/v1/me", Some(&format!("Bearer {access_token}")))
            .await
    }

    /// The published key set.
    pub async fn jwks(&self) -> Value {
        let reply = self.get("/.well-known/jwks.json", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }

    /// The key ids the JWKS publishes.
    pub async fn published_kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }
}

/// Reads a response, checking that it is never a 5xx and that every error is problem+json
/// with a matching `status`.
pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body read");
    assert!(
        !status.is_server_error(),
        "status {status} with body {text}"
    );
    let content_type = headers
        .get("content-type")
        .map_or("", |v| v.to_str().unwrap());
    let body = check_answer(status, content_type, &text);
    Reply {
        status,
        headers,
        text,
        body,
    }
}

/// The (access, refresh) tokens of a token-pair answer, checking its shape.
pub fn pair(reply: &Reply) -> (String, String) {
    assert_eq!(reply.body["token_type"], "Bearer", "{}", reply.text);
    assert_eq!(reply.body["expires_in"], 900, "{}", reply.text);
    let access = reply.body["access_token"].as_str().expect("access_token");
    let refresh = reply.body["refresh_token"].as_str().expect("refresh_token");
    (access.to_owned(), refresh.to_owned())
}

/// Asserts a 401 problem with an RFC 6750 `WWW-Authenticate: Bearer` challenge.
pub fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.text
    );
    let challenge = reply
        .headers
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
        .to_str()
        .unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"souk\""),
        "{what}: {challenge}"
    );
    assert_eq!(
        reply.body["type"], "urn:souk:problem:unauthorized",
        "{what}"
    );
}

/// The decoded (header, claims) of a JWT, without verifying it.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    (decode(parts[0]), decode(parts[1]))
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    souk_identity::now()
}

/// Claims as identity signs them, for `sub`, valid for 15 minutes from now.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({
        "iss": "souk-identity", "aud": "souk", "sub": sub, "role": "user",
        "exp": now + 900, "iat": now, "nbf": now, "jti": "a-test-token",
    })
}

/// `claims` signed (EdDSA) by the signer of `keys`, under its key id.
pub fn sign(keys: &KeySet, claims: &Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(keys.signer.0.clone());
    sign_with(&header, claims, &keys.signer.1)
}

/// `claims` encoded under `header` with `key`.
pub fn sign_with(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("encodes")
}
