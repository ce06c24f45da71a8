//! Test harness (feature `test-util`): a service on port 0 with its own temporary database.
//!
//! SQLite tests always run, each in a fresh temporary folder. PostgreSQL tests run when
//! `SOUK_TEST_POSTGRES_URL` is set, each in a fresh database that is dropped afterwards; without the
//! variable they print that they were skipped, and with it set but the server down they fail.
//! NATS tests follow the same rule with `SOUK_TEST_NATS_URL` ([`test_nats`]).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use axum::Router;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;

use crate::db::{DatabaseConfig, trusted_sql};
use crate::server::{Shutdown, ShutdownTrigger, serve};

/// The variable naming the PostgreSQL server for backend tests.
pub const POSTGRES_URL_VAR: &str = "SOUK_TEST_POSTGRES_URL";

/// The variable naming the NATS server (with JetStream) for backend tests.
pub const NATS_URL_VAR: &str = "SOUK_TEST_NATS_URL";

/// Which database engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A fresh database on the server named by `SOUK_TEST_POSTGRES_URL`.
    Postgres,
}

/// A database that exists for one test only.
#[derive(Debug)]
pub struct TestDatabase {
    /// Connection settings for the service under test.
    pub config: DatabaseConfig,
    dir: Option<tempfile::TempDir>,
    postgres: Option<(PgConnectOptions, String)>,
}

impl TestDatabase {
    /// A fresh database of `backend`, or `None` (with a note on stderr) when its server is not configured.
    ///
    /// # Panics
    /// When `SOUK_TEST_POSTGRES_URL` is set but the server cannot be used: a backend test that was
    /// asked to run must not pass silently.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                #[allow(clippy::expect_used)]
                let dir = tempfile::tempdir().expect("cannot create a temporary folder");
                let url = format!("sqlite://{}/test.db", dir.path().display());
                Some(Self {
                    config: DatabaseConfig::with_url(url),
                    dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let Ok(server) = std::env::var(POSTGRES_URL_VAR) else {
                    eprintln!(
                        "skipped: {POSTGRES_URL_VAR} is not set, so the PostgreSQL variant of this test did not run"
                    );
                    return None;
                };
                Some(Self::create_postgres(&server).await)
            }
        }
    }

    #[allow(clippy::expect_used)]
    async fn create_postgres(server: &str) -> Self {
        let admin = PgConnectOptions::from_str(server)
            .expect("SOUK_TEST_POSTGRES_URL is not a PostgreSQL URL");
        let name = format!("souk_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = admin
            .connect()
            .await
            .expect("SOUK_TEST_POSTGRES_URL is set but PostgreSQL does not answer");
        sqlx::query(trusted_sql(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("cannot create a test database");
        let mut url = url::Url::parse(server).expect("SOUK_TEST_POSTGRES_URL is not a URL");
        url.set_path(&name);
        Self {
            config: DatabaseConfig::with_url(url.to_string()),
            dir: None,
            postgres: Some((admin, name)),
        }
    }

    /// The temporary folder of a SQLite database (for tests that put more files beside it).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread of our own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = admin.connect().await.ok()?;
                sqlx::query(trusted_sql(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: a test database could not be dropped");
        }
    }
}

/// Settings for the NATS server named by `SOUK_TEST_NATS_URL`, or `None` (with a note on
/// stderr) when it is not set. Tests share the server: give streams and consumers unique names
/// and delete them afterwards.
///
/// # Panics
/// When the variable is set but the server does not answer or has no JetStream.
pub async fn test_nats() -> Option<crate::events::NatsConfig> {
    let Ok(url) = std::env::var(NATS_URL_VAR) else {
        eprintln!(
            "skipped: {NATS_URL_VAR} is not set, so the NATS variant of this test did not run"
        );
        return None;
    };
    let client = tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url.as_str()))
        .await
        .map_err(|_| "no answer within 5 s".to_owned())
        .and_then(|connected| connected.map_err(|e| e.to_string()));
    let client = match client {
        Ok(client) => client,
        Err(err) => panic!("{NATS_URL_VAR} is set but NATS does not answer: {err}"),
    };
    // A raw request: the client's typed account info does not parse older servers' answers.
    let info = client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .map_err(|e| e.to_string())
        .and_then(|reply| {
            serde_json::from_slice::<serde_json::Value>(&reply.payload).map_err(|e| e.to_string())
        });
    match info {
        Ok(info) if info.get("error").is_none() => {}
        Ok(info) => panic!(
            "{NATS_URL_VAR} is set but JetStream refuses: {}",
            info["error"]
        ),
        Err(err) => panic!("{NATS_URL_VAR} is set but that NATS server has no JetStream: {err}"),
    }
    Some(crate::events::NatsConfig::with_url(url))
}

/// A router served on a random loopback port until dropped.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A client with a short timeout, so a hung server fails the test instead of blocking it.
    pub client: reqwest::Client,
    trigger: ShutdownTrigger,
}

impl TestServer {
    /// Serves `router` on `127.0.0.1:0`.
    #[allow(clippy::expect_used)]
    pub async fn spawn(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind a loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(1));
        tokio::spawn(serve(listener, router, shutdown));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client");
        Self {
            addr,
            client,
            trigger,
        }
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

/// Reads an answer of a souk service: its status and JSON body (`Null` when empty), checking
/// what every answer must be — an error is problem+json whose `status` member is the status —
/// and that it is no 5xx: a server error is a bug unless the test provokes one, and then it says
/// so with [`read_json_allowing_5xx`].
pub async fn read_json(response: reqwest::Response) -> (http::StatusCode, serde_json::Value) {
    let (status, body) = read_json_allowing_5xx(response).await;
    assert!(
        !status.is_server_error(),
        "status {status} with body {body}"
    );
    (status, body)
}

/// [`read_json`] for a test that provokes a server error (a neighbour down, a store contended):
/// every check but "no 5xx".
#[allow(clippy::expect_used)]
pub async fn read_json_allowing_5xx(
    response: reqwest::Response,
) -> (http::StatusCode, serde_json::Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a readable body");
    (status, check_answer(status, &content_type, &text))
}

/// The checks of [`read_json_allowing_5xx`] on an answer the test has read itself (to keep its
/// exact text): an error is problem+json whose `status` member is `status`, and a body is JSON.
/// Returns the body, `Null` when empty.
pub fn check_answer(status: http::StatusCode, content_type: &str, text: &str) -> serde_json::Value {
    if !status.is_success() {
        assert_eq!(
            content_type,
            crate::problem::CONTENT_TYPE,
            "status {status} with body {text}"
        );
    }
    if text.is_empty() {
        return serde_json::Value::Null;
    }
    let body: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    if !status.is_success() {
        assert_eq!(body["status"], status.as_u16(), "{body}");
    }
    body
}

/// Sends logs to the test output when `TEST_LOG` is set; silent otherwise. Safe to call often.
pub fn init_test_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("debug")
            .try_init();
    }
}

/// Declares one test per backend for each `async fn name(app) { ... }`: `name::sqlite` always runs,
/// `name::postgres` runs when `SOUK_TEST_POSTGRES_URL` is set. `$spawn` is an
/// `async fn(Backend) -> Option<App>` that returns `None` for a backend that is not configured.
#[macro_export]
macro_rules! backend_tests {
    ($spawn:path; $(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test]
                async fn sqlite() {
                    let Some($app) = $spawn($crate::test_util::Backend::Sqlite).await else { return };
                    $body
                }

                #[tokio::test]
                async fn postgres() {
                    let Some($app) = $spawn($crate::test_util::Backend::Postgres).await else { return };
                    $body
                }
            }
        )*
    };
}

/// Signs access tokens the way identity does and serves their key set, so a service's tests can
/// act as any user, admin or calling service without running identity.
#[derive(Debug)]
pub struct TestIssuer {
    key: jsonwebtoken::EncodingKey,
    server: TestServer,
}

impl TestIssuer {
    /// A fresh Ed25519 key, its JWKS served on a random port.
    #[allow(clippy::expect_used)]
    pub async fn start() -> Self {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pair = Ed25519KeyPair::generate().expect("an Ed25519 key");
        let pkcs8 = pair.to_pkcs8().expect("a PKCS#8 document");
        let x = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            pair.public_key().as_ref(),
        );
        let jwks = serde_json::json!({ "keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "test-key", "alg": "EdDSA", "use": "sig"
        }] });
        let router = Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
        Self {
            key: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
            server: TestServer::spawn(router).await,
        }
    }

    /// Verification settings that trust this issuer; `service_audience` as given.
    pub fn auth_config(&self, service_audience: &str) -> crate::auth::AuthConfig {
        crate::auth::AuthConfig {
            jwks_url: self.server.url("/.well-known/jwks.json"),
            service_audience: service_audience.to_owned(),
            ..crate::auth::AuthConfig::default()
        }
    }

    /// An access token of user `id` with `role` (`user` or `admin`).
    pub fn user_token(&self, id: &str, role: &str) -> String {
        self.token(id, role, "souk")
    }

    /// A service token of `service` for calling `audience`'s internal endpoints.
    pub fn service_token(&self, service: &str, audience: &str) -> String {
        self.token(&format!("service:{service}"), "service", audience)
    }

    /// A token of `service` that may only read `audience`'s event feed (`scope: "events:read"`),
    /// as identity gives services listed in its `feeds`.
    pub fn feed_token(&self, service: &str, audience: &str) -> String {
        sign(
            &self.key,
            &format!("service:{service}"),
            "service",
            audience,
            Some(crate::auth::EVENTS_READ),
        )
    }

    /// A token with any subject, role and audience (for negative tests).
    pub fn token(&self, sub: &str, role: &str, audience: &str) -> String {
        sign(&self.key, sub, role, audience, None)
    }

    /// Identity's service-token endpoint as a router, handing out this issuer's tokens for
    /// `service` (any audience asked for): give it to a consumer with
    /// `ServiceClient::in_process("identity", router, timeout)`.
    pub fn identity_router(&self, service: &str) -> Router {
        #[derive(serde::Deserialize)]
        struct Asked {
            audience: String,
            #[serde(default)]
            scope: Option<String>,
        }
        let issuer = self.key.clone();
        let service = service.to_owned();
        Router::new().route(
            "/v1/auth/service-token",
            axum::routing::post(move |crate::Json(asked): crate::Json<Asked>| {
                let token = sign(
                    &issuer,
                    &format!("service:{service}"),
                    "service",
                    &asked.audience,
                    asked.scope.as_deref(),
                );
                async move {
                    crate::Json(serde_json::json!({
                        "access_token": token, "token_type": "Bearer", "expires_in": 300
                    }))
                }
            }),
        )
    }
}

/// A token signed with `key`, valid for ten minutes.
#[allow(clippy::expect_used)]
fn sign(
    key: &jsonwebtoken::EncodingKey,
    sub: &str,
    role: &str,
    audience: &str,
    scope: Option<&str>,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut claims = serde_json::json!({
        "iss": "souk-identity", "aud": audience, "sub": sub, "role": role,
        "iat": now, "nbf": now, "exp": now + 600, "jti": uuid::Uuid::now_v7().to_string()
    });
    if let Some(scope) = scope {
        claims["scope"] = scope.into();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("test-key".into());
    jsonwebtoken::encode(&header, &claims, key).expect("a signed token")
}

/// A producer's event feed for consumer tests: a real outbox on a temporary SQLite database,
/// served as `GET /v1/events` on a random port, so the wire format is the real one.
#[derive(Debug)]
pub struct TestFeed {
    /// Where the feed is served (give it to the consumer as the producer's URL).
    pub server: TestServer,
    /// The outbox behind it.
    pub outbox: crate::events::Outbox,
    db: crate::Database,
    _database: TestDatabase,
}

impl TestFeed {
    /// An empty feed of `service`'s events.
    #[allow(clippy::expect_used)]
    pub async fn start(service: &str) -> Self {
        let database = TestDatabase::create(Backend::Sqlite)
            .await
            .expect("SQLite always works");
        let db = crate::Database::connect(&database.config)
            .await
            .expect("a temporary SQLite database");
        db.migrate(&crate::db::Migrations {
            sqlite: &[
                crate::events::OUTBOX_MIGRATION_SQLITE,
                crate::events::OUTBOX_META_MIGRATION_SQLITE,
            ],
            postgres: &[
                crate::events::OUTBOX_MIGRATION_POSTGRES,
                crate::events::OUTBOX_META_MIGRATION_POSTGRES,
            ],
        })
        .await
        .expect("the outbox table");
        let outbox = crate::events::Outbox::new(db.clone(), service);
        let server = TestServer::spawn(outbox.feed_router()).await;
        Self {
            server,
            outbox,
            db,
            _database: database,
        }
    }

    /// Appends `event` (committed at once) and wakes the readers.
    #[allow(clippy::expect_used)]
    pub async fn emit(&self, event: &crate::events::Event) {
        let crate::Database::Sqlite(pool) = &self.db else {
            unreachable!("a TestFeed is always on SQLite")
        };
        // As the real producer would: its events name it as their source (consumers refuse any
        // other), whatever name the test gave the feed.
        let mut event = event.clone();
        event.source = format!("souk/{}", self.outbox.service());
        let mut tx = pool.begin().await.expect("a transaction");
        crate::events::append_sqlite(&mut tx, &event)
            .await
            .expect("the event is appended");
        tx.commit().await.expect("the event is committed");
        self.outbox.notify();
    }

    /// A client config pointing at the feed.
    pub fn client_config(&self) -> crate::client::ClientConfig {
        crate::client::ClientConfig::with_url(self.server.url(""))
    }
}

/// A producer's feed serving a fixed delivery schedule, for consumer tests of at-least-once
/// delivery: the events of different orders interleaved at random (each order's own events in
/// their order, the guarantee a producer gives) and about a third of them delivered again, once
/// or twice, any time after the first. Served in the real feed's wire format
/// (`GET /v1/events?after=&limit=&wait_ms=` → `{"events": [{"seq", "event"}], "next"}`), delivery
/// `i` at `seq = i + 1`, in pages of uneven sizes so page boundaries fall anywhere.
#[derive(Debug, Clone)]
pub struct ReplayFeed {
    /// Every delivery, in order (duplicates included).
    pub deliveries: std::sync::Arc<Vec<crate::events::Event>>,
    /// How many distinct events they carry.
    pub distinct: usize,
}

#[derive(serde::Deserialize)]
struct ReplayQuery {
    after: Option<usize>,
    limit: Option<usize>,
    wait_ms: Option<u64>,
}

impl ReplayFeed {
    /// The schedule of `per_order` (each order's events in its producer's order), drawn from `rng`.
    pub fn schedule(per_order: Vec<Vec<crate::events::Event>>, rng: &mut SeededRng) -> Self {
        let mut queues: Vec<std::collections::VecDeque<crate::events::Event>> = per_order
            .into_iter()
            .filter(|events| !events.is_empty())
            .map(std::collections::VecDeque::from)
            .collect();
        let mut deliveries = Vec::new();
        while !queues.is_empty() {
            let pick = rng.below(queues.len());
            deliveries.extend(queues[pick].pop_front());
            if queues[pick].is_empty() {
                queues.swap_remove(pick);
            }
        }
        let distinct = deliveries.len();
        // From the back, so that inserting after `i` never moves an event not yet visited.
        for i in (0..distinct).rev() {
            if rng.below(3) == 0 {
                for _ in 0..1 + rng.below(2) {
                    let copy = deliveries[i].clone();
                    let at = i + 1 + rng.below(deliveries.len() - i);
                    deliveries.insert(at, copy);
                }
            }
        }
        Self {
            deliveries: std::sync::Arc::new(deliveries),
            distinct,
        }
    }

    /// The feed's router (serve it, or call it in process).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/events", axum::routing::get(replay_page))
            .with_state(std::sync::Arc::clone(&self.deliveries))
    }
}

async fn replay_page(
    axum::extract::State(deliveries): axum::extract::State<
        std::sync::Arc<Vec<crate::events::Event>>,
    >,
    crate::Query(query): crate::Query<ReplayQuery>,
) -> crate::Json<serde_json::Value> {
    let after = query.after.unwrap_or(0);
    if after >= deliveries.len() {
        let wait = Duration::from_millis(query.wait_ms.unwrap_or(0).min(100));
        tokio::time::sleep(wait).await;
        return crate::Json(serde_json::json!({"events": [], "next": after}));
    }
    let size = query.limit.unwrap_or(100).min(1 + after * 7919 % 41);
    let end = (after + size).min(deliveries.len());
    let events: Vec<serde_json::Value> = (after..end)
        .map(|i| serde_json::json!({"seq": i + 1, "event": deliveries[i]}))
        .collect();
    crate::Json(serde_json::json!({"events": events, "next": end}))
}

/// SplitMix64: a small seeded generator, so every run of a test replays the same schedule.
#[derive(Debug, Clone)]
pub struct SeededRng(pub u64);

impl SeededRng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        // The remainder is below `n`, so it fits a usize.
        (self.next_u64() % n as u64) as usize
    }

    /// Any UUID (of no particular version).
    pub fn uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::from_u64_pair(self.next_u64(), self.next_u64())
    }
}

/// `consumer`'s stored feed position (0 before it has one).
#[allow(clippy::expect_used)]
pub async fn consumer_position(db: &crate::Database, consumer: &str) -> i64 {
    let sql = "SELECT position FROM event_offsets WHERE consumer = $1";
    let position: Option<String> = match db {
        crate::Database::Sqlite(pool) => {
            sqlx::query_scalar(sql)
                .bind(consumer)
                .fetch_optional(pool)
                .await
        }
        crate::Database::Postgres(pool) => {
            sqlx::query_scalar(sql)
                .bind(consumer)
                .fetch_optional(pool)
                .await
        }
    }
    .expect("the offsets table is readable");
    position.map_or(0, |p| p.parse().expect("a numeric position"))
}

/// How many events `consumer` recorded as handled in its inbox.
#[allow(clippy::expect_used)]
pub async fn inbox_count(db: &crate::Database, consumer: &str) -> usize {
    let sql = "SELECT COUNT(*) FROM event_inbox WHERE consumer = $1";
    let count: i64 = match db {
        crate::Database::Sqlite(pool) => {
            sqlx::query_scalar(sql).bind(consumer).fetch_one(pool).await
        }
        crate::Database::Postgres(pool) => {
            sqlx::query_scalar(sql).bind(consumer).fetch_one(pool).await
        }
    }
    .expect("the inbox table is readable");
    usize::try_from(count).expect("a count is not negative")
}
