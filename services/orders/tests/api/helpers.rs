//! Spawns orders on a random port with its own database, fake neighbours the test controls, and
//! a token issuer for users and services; reads its answers.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use souk_chassis::client::ClientConfig;
use souk_chassis::test_util::{Backend, TestDatabase, TestIssuer, TestServer, init_test_logging};
pub use souk_chassis::test_util::{read_json, read_json_allowing_5xx};
use souk_chassis::{Database, Secret};
use souk_orders::{Config, Orders};
use uuid::Uuid;

use crate::fakes::{Card, Fakes, SECRET};

/// One running instance of orders.
pub struct Instance {
    pub server: TestServer,
    pub orders: Orders,
}

/// Orders (one instance, or more on the same database), its fakes and who can call it.
pub struct TestApp {
    /// The instance tests talk to; `None` after [`TestApp::crash`].
    pub instance: Option<Instance>,
    pub fakes: Fakes,
    pub issuer: Arc<TestIssuer>,
    pub config: Config,
    _fakes_server: TestServer,
    /// Dropped with the app (a PostgreSQL test database is dropped then).
    _db: TestDatabase,
}

/// Orders with the test config, or `None` when `backend` is not configured here.
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// Orders whose reserving and charging give up after 2 s.
pub async fn spawn_short_deadline(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |config| config.saga.deadline_secs = 2).await
}

/// Orders with its test config changed by `tweak`.
pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    init_test_logging();
    let db = TestDatabase::create(backend).await?;
    let issuer = Arc::new(TestIssuer::start().await);
    let fakes = Fakes::new(Arc::clone(&issuer));
    let fakes_server = TestServer::spawn(fakes.router()).await;
    let neighbour = |timeout_ms| ClientConfig {
        url: fakes_server.url(""),
        timeout_ms,
    };
    let mut config = Config {
        database: db.config.clone(),
        auth: issuer.auth_config("orders"),
        cart: neighbour(2000),
        catalog: neighbour(2000),
        inventory: neighbour(2000),
        payments: neighbour(2000),
        ..Config::default()
    };
    config.service_token.client_secret = Secret::new(SECRET);
    config.service_token.identity = neighbour(1000);
    config.saga.deadline_secs = 20;
    config.saga.retry_base_ms = 10;
    config.saga.retry_max_ms = 100;
    config.saga.recovery_interval_ms = 100;
    config.saga.lease_ms = 4000;
    tweak(&mut config);
    let mut app = TestApp {
        instance: None,
        fakes,
        issuer,
        config,
        _fakes_server: fakes_server,
        _db: db,
    };
    app.instance = Some(app.start().await);
    Some(app)
}

impl TestApp {
    /// Starts another instance of orders on the same database and fakes.
    pub async fn start(&self) -> Instance {
        let orders = souk_orders::build(&self.config)
            .await
            .expect("orders starts");
        Instance {
            server: TestServer::spawn(orders.router.clone()).await,
            orders,
        }
    }

    /// Drops the running instance, as if its process died: its saga tasks stop between two
    /// awaits, whatever they were doing.
    pub async fn crash(&mut self) {
        let instance = self.instance.take().expect("an instance runs");
        drop(instance);
        // Let the server's task see its shutdown and drop the router it holds.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// The instance tests talk to.
    pub fn instance(&self) -> &Instance {
        self.instance.as_ref().expect("an instance runs")
    }

    /// The running instance's store's database.
    pub fn database(&self) -> &Database {
        self.instance().orders.store.database()
    }

    /// A new user, with a token the fakes know, a good card, and `quantity` of a $12.50 product
    /// (stock 100) in their cart. Returns (token, user id, payment method, product).
    pub fn shopper(&self, quantity: i64) -> Shopper {
        let user = Uuid::now_v7().to_string();
        let token = self.fakes.user_token(&user);
        let method = self.fakes.method(&user, Card::Good);
        let product = self.fakes.product("Enamel mug", 1250, "USD", 100);
        self.fakes.add_to_cart(&user, product, quantity);
        Shopper {
            token,
            user,
            method,
            product,
        }
    }

    /// Sends a request to `server`, returning status, headers and JSON body (`Null` if empty).
    pub async fn send_to(
        &self,
        server: &TestServer,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let response = request(server, method, path, token, headers, body).await;
        let headers = response.headers().clone();
        let (status, body) = read_json(response).await;
        (status, headers, body)
    }

    /// Sends a request to the running instance.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self
            .send_to(&self.instance().server, method, path, token, &[], body)
            .await;
        (status, body)
    }

    /// Checks out `shopper`'s cart (with `key` as `Idempotency-Key` if given).
    pub async fn place(
        &self,
        shopper: &Shopper,
        key: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.place_on(
            &self.instance().server,
            shopper,
            key,
            &checkout_body(shopper.method),
        )
        .await
    }

    /// Posts `body` to `/v1/orders` on `server` as `shopper`.
    pub async fn place_on(
        &self,
        server: &TestServer,
        shopper: &Shopper,
        key: Option<&str>,
        body: &Value,
    ) -> (StatusCode, HeaderMap, Value) {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.send_to(
            server,
            Method::POST,
            "/v1/orders",
            Some(&shopper.token),
            &headers,
            Some(body),
        )
        .await
    }

    /// [`TestApp::place`] in a test that takes a neighbour down: a 5xx is the answer it expects.
    pub async fn place_allowing_5xx(
        &self,
        shopper: &Shopper,
        key: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let server = &self.instance().server;
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        let body = checkout_body(shopper.method);
        let token = Some(shopper.token.as_str());
        let response = request(
            server,
            Method::POST,
            "/v1/orders",
            token,
            &headers,
            Some(&body),
        )
        .await;
        let headers = response.headers().clone();
        let (status, body) = read_json_allowing_5xx(response).await;
        (status, headers, body)
    }

    /// Places `shopper`'s order, expecting a 202; returns its id.
    pub async fn place_ok(&self, shopper: &Shopper) -> Uuid {
        let (status, _, body) = self.place(shopper, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// The order as its owner reads it.
    pub async fn order(&self, shopper: &Shopper, id: Uuid) -> Value {
        let (status, body) = self
            .send(
                Method::GET,
                &format!("/v1/orders/{id}"),
                Some(&shopper.token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until the order is no longer pending, and returns it.
    pub async fn settled(&self, shopper: &Shopper, id: Uuid) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let order = self.order(shopper, id).await;
            if order["status"] != "pending" {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} still pending: {order}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The events in the outbox feed, read as a service would.
    pub async fn events(&self) -> Vec<Value> {
        let token = self.issuer.service_token("history", "orders");
        let (status, body) = self
            .send(
                Method::GET,
                "/v1/events?after=0&limit=500",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["event"].clone())
            .collect()
    }

    /// The events about `order`, by type.
    pub async fn events_of(&self, order: Uuid) -> Vec<Value> {
        let subject = order.to_string();
        self.events()
            .await
            .into_iter()
            .filter(|e| e["subject"] == subject.as_str())
            .collect()
    }

    /// How many rows `table` has.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self.database() {
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

/// A user ready to check out.
pub struct Shopper {
    pub token: String,
    pub user: String,
    pub method: Uuid,
    pub product: Uuid,
}

/// A valid checkout body paying with `method`.
pub fn checkout_body(method: Uuid) -> Value {
    json!({
        "payment_method_id": method,
        "shipping_address": {
            "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London",
            "postal_code": "SW1Y 4JH", "country": "GB"
        }
    })
}

/// Sends a request to `server` with an optional bearer token, headers and JSON body.
async fn request(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = server.client.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}
