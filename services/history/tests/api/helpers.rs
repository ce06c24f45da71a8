//! Spawns history on a random port with its own database, beside stand-ins for the services it
//! hears from: orders and payments as real chassis outboxes served as their feeds (so the wire
//! format is the real one; tests publish into them), and identity's service-token endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use reqwest::Method;
use serde_json::{Value, json};
use souk_chassis::auth::AuthVerifier;
use souk_chassis::client::{ClientConfig, ServiceTokenConfig};
use souk_chassis::db::Migrations;
use souk_chassis::events::{self, Event, Outbox};
use souk_chassis::server::ShutdownTrigger;
pub use souk_chassis::test_util::read_json;
use souk_chassis::test_util::{Backend, TestDatabase, TestIssuer, TestServer, init_test_logging};
use souk_chassis::{Database, Json, Secret, Shutdown};
use souk_history::{Config, ConsumerConfig, History, Producers};
use uuid::Uuid;

/// The secret history's fake identity expects.
pub const SECRET: &str = "history-test-secret";

/// How long a test waits for the projection to catch up.
pub const PATIENCE: Duration = Duration::from_secs(20);

const OUTBOX: Migrations = Migrations {
    sqlite: &[
        events::OUTBOX_MIGRATION_SQLITE,
        events::OUTBOX_META_MIGRATION_SQLITE,
    ],
    postgres: &[
        events::OUTBOX_MIGRATION_POSTGRES,
        events::OUTBOX_META_MIGRATION_POSTGRES,
    ],
};

/// A producer history consumes: a real outbox in its own SQLite database, served as its feed
/// (service tokens for the producer's own audience only).
pub struct Producer {
    pub name: String,
    pub outbox: Outbox,
    pub db: Database,
    pub server: TestServer,
    _db: TestDatabase,
}

impl Producer {
    /// Producer `name` (`orders`), trusting `issuer`'s tokens.
    pub async fn start(name: &str, issuer: &TestIssuer) -> Self {
        let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let db = Database::connect(&database.config).await.unwrap();
        db.migrate(&OUTBOX).await.unwrap();
        let outbox = Outbox::new(db.clone(), name);
        let verifier = AuthVerifier::new(issuer.auth_config(name));
        let server = TestServer::spawn(outbox.feed_router_with_auth(verifier)).await;
        Self {
            name: name.to_owned(),
            outbox,
            db,
            server,
            _db: database,
        }
    }

    /// Appends `event` to the outbox, committed on its own, and wakes the feed's readers.
    pub async fn publish(&self, event: &Event) {
        // As the real producer would: its events name it as their source (a consumer refuses
        // any other), whatever name this run gave it.
        let mut event = event.clone();
        event.source = format!("souk/{}", self.name);
        publish(&self.db, &self.outbox, &event).await;
    }

    /// Where its feed answers.
    pub fn config(&self) -> ClientConfig {
        ClientConfig::with_url(self.server.url(""))
    }
}

/// Appends `event` to the outbox on `db`, committed on its own, and wakes `outbox`'s readers.
pub async fn publish(db: &Database, outbox: &Outbox, event: &Event) {
    match db {
        Database::Sqlite(pool) => {
            let mut tx = pool.begin().await.unwrap();
            events::append_sqlite(&mut tx, event).await.unwrap();
            tx.commit().await.unwrap();
        }
        Database::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            events::append_postgres(&mut tx, event).await.unwrap();
            tx.commit().await.unwrap();
        }
    }
    outbox.notify();
}

/// Identity's `POST /v1/auth/service-token`, for history's client and secret only.
pub fn fake_identity(issuer: Arc<TestIssuer>) -> Router {
    Router::new().route(
        "/v1/auth/service-token",
        post(move |Json(body): Json<Value>| {
            let issuer = Arc::clone(&issuer);
            async move {
                if body["client_id"] != "history" || body["client_secret"] != SECRET {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"status": 401})));
                }
                let audience = body["audience"].as_str().unwrap_or_default();
                let token = issuer.service_token("history", audience);
                let answer =
                    json!({"access_token": token, "token_type": "Bearer", "expires_in": 600});
                (StatusCode::OK, Json(answer))
            }
        }),
    )
}

/// A running history, its database, the producers it reads and who can call it.
pub struct TestApp {
    pub server: TestServer,
    pub history: History,
    pub config: Config,
    pub issuer: Arc<TestIssuer>,
    pub orders: Producer,
    pub payments: Producer,
    trigger: ShutdownTrigger,
    _identity: TestServer,
    /// Dropped with the app (a PostgreSQL test database is dropped then).
    _db: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

/// History with quick retries, or `None` when `backend` is not configured here.
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// History with its test config changed by `tweak`.
pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    init_test_logging();
    let db = TestDatabase::create(backend).await?;
    let issuer = Arc::new(TestIssuer::start().await);
    let orders = Producer::start("orders", &issuer).await;
    let payments = Producer::start("payments", &issuer).await;
    let identity = TestServer::spawn(fake_identity(Arc::clone(&issuer))).await;
    let mut config = Config {
        database: db.config.clone(),
        auth: issuer.auth_config("history"),
        orders: orders.config(),
        payments: payments.config(),
        service_token: ServiceTokenConfig {
            client_id: "history".into(),
            client_secret: Secret::new(SECRET),
            identity: ClientConfig::with_url(identity.url("")),
        },
        consumers: ConsumerConfig {
            retry_base_ms: 20,
            retry_max_ms: 500,
            long_poll_ms: 2_000,
            ..ConsumerConfig::default()
        },
        ..Config::default()
    };
    tweak(&mut config);
    let (trigger, history) = start(&config).await;
    Some(TestApp {
        server: TestServer::spawn(history.router.clone()).await,
        history,
        config,
        issuer,
        orders,
        payments,
        trigger,
        _identity: identity,
        _db: db,
    })
}

/// History on `config`, hearing from the producers over HTTP, until the trigger fires.
async fn start(config: &Config) -> (ShutdownTrigger, History) {
    let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(2));
    let history = souk_history::build_with(config, Producers::http(config), &shutdown)
        .await
        .expect("history starts");
    (trigger, history)
}

impl TestApp {
    /// Stops this instance's consumers (after the event in hand) and starts another instance on
    /// the same database, as a restart would.
    pub async fn restart(&mut self) {
        self.trigger.trigger();
        tokio::time::timeout(PATIENCE, self.history.stopped())
            .await
            .expect("the consumers stop");
        let (trigger, history) = start(&self.config).await;
        self.server = TestServer::spawn(history.router.clone()).await;
        self.history = history;
        self.trigger = trigger;
    }

    /// A user's access token.
    pub fn user(&self, id: &str) -> String {
        self.issuer.user_token(id, "user")
    }

    /// An administrator's access token.
    pub fn admin(&self) -> String {
        self.issuer.user_token("admin-1", "admin")
    }

    /// The database behind history.
    pub fn database(&self) -> &Database {
        self.history.store.database()
    }

    /// Sends a request, returning the status and JSON body (problems included).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.server.client.request(method, self.server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await.expect("request sent")).await
    }

    /// `GET path` as `user`, expecting a 200.
    pub async fn get_ok(&self, path: &str, user: &str) -> Value {
        let (status, body) = self.send(Method::GET, path, Some(&self.user(user))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    /// Every purchase `user` sees, following the cursors.
    pub async fn history_of(&self, user: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut path = "/v1/history?limit=100".to_owned();
        loop {
            let page = self.get_ok(&path, user).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/history?limit=100&cursor={cursor}"),
                None => return items,
            }
        }
    }

    /// `user`'s purchase of `order`, once it shows (it has its order event).
    pub async fn purchase(&self, user: &str, order: Uuid) -> Value {
        self.get_ok(&format!("/v1/history/{order}"), user).await
    }

    /// Whether the projection handled event `id` (either consumer).
    pub async fn handled(&self, id: &str) -> bool {
        let sql = "SELECT COUNT(*) FROM event_inbox WHERE event_id = $1";
        let n: i64 = match self.database() {
            Database::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
            Database::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        }
        .unwrap();
        n > 0
    }

    /// Waits until every event in `events` is handled.
    pub async fn wait_handled(&self, events: &[&Event]) {
        for event in events {
            eventually(&format!("event {} is handled", event.type_), || {
                self.handled(&event.id)
            })
            .await;
        }
    }

    /// Publishes `event` through the producer its source names, and waits until it is handled.
    pub async fn deliver(&self, event: &Event) {
        self.producer_of(event).publish(event).await;
        self.wait_handled(&[event]).await;
    }

    /// The producer that publishes `event`.
    pub fn producer_of(&self, event: &Event) -> &Producer {
        match event.source.as_str() {
            "souk/orders" => &self.orders,
            "souk/payments" => &self.payments,
            other => panic!("no producer for {other}"),
        }
    }

    /// How many rows `table` has.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self.database() {
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap()
    }

    /// Runs `sql` (no parameters) on history's database.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.database() {
            Database::Sqlite(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
            Database::Postgres(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
        }
    }

    /// The dead letters of `consumer`, as an administrator lists them.
    pub async fn dead_letters(&self, consumer: &str) -> Vec<Value> {
        let path = format!("/v1/admin/dead-letters?consumer={consumer}");
        let (status, page) = self.send(Method::GET, &path, Some(&self.admin())).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().unwrap().clone()
    }
}

/// Waits until `check` holds, failing the test with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
