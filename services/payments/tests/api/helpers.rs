//! Spawns payments on a random port with its own database and a stand-in for identity's keys,
//! and reads its answers.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use souk_chassis::Database;
use souk_chassis::test_util::{Backend, TestDatabase, TestIssuer, TestServer, init_test_logging};
pub use souk_chassis::test_util::{read_json, read_json_allowing_5xx};
use souk_payments::domain::Timestamp;
use souk_payments::{Config, Payments};
use uuid::Uuid;

/// The usual success card.
pub const VISA: &str = "4242424242424242";

/// A running payments, the database behind it, and who can call it.
pub struct TestApp {
    pub server: TestServer,
    pub payments: Payments,
    pub issuer: TestIssuer,
    pub config: Config,
    /// Dropped with the app (a PostgreSQL test database is dropped then).
    _db: TestDatabase,
}

/// Payments with the default config, or `None` when `backend` is not configured here.
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// Payments whose processor takes 300 ms per call, so concurrent requests overlap.
pub async fn spawn_slow(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |config| config.processor.latency_ms = 300).await
}

/// Payments with its config changed by `tweak`.
/// The secret the test services seal their vault with.
pub const VAULT_KEY: &str = "the test processor's vault key, 32+";

pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    init_test_logging();
    let db = TestDatabase::create(backend).await?;
    let issuer = TestIssuer::start().await;
    let mut config = Config {
        database: db.config.clone(),
        auth: issuer.auth_config("payments"),
        ..Config::default()
    };
    config.processor.vault_key = souk_chassis::Secret::new(VAULT_KEY);
    config.processor.vault_key_file = String::new();
    tweak(&mut config);
    let payments = souk_payments::build(&config)
        .await
        .expect("payments starts");
    Some(TestApp {
        server: TestServer::spawn(payments.router.clone()).await,
        payments,
        issuer,
        config,
        _db: db,
    })
}

impl TestApp {
    /// Another instance on the same database, with its config changed by `tweak`.
    pub async fn another(&self, tweak: impl FnOnce(&mut Config)) -> (TestServer, Payments) {
        let mut config = self.config.clone();
        tweak(&mut config);
        let payments = souk_payments::build(&config)
            .await
            .expect("payments starts");
        (TestServer::spawn(payments.router.clone()).await, payments)
    }

    /// A user's access token.
    pub fn user(&self, id: &str) -> String {
        self.issuer.user_token(id, "user")
    }

    /// Orders' service token for payments.
    pub fn service(&self) -> String {
        self.issuer.service_token("orders", "payments")
    }

    /// Sends a request, returning the status, headers and JSON body (problems included).
    pub async fn send_on(
        &self,
        server: &TestServer,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let response = request(server, method, path, token, body).await;
        let headers = response.headers().clone();
        let (status, body) = read_json(response).await;
        (status, headers, body)
    }

    /// Sends a request to this instance.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.send_on(&self.server, method, path, token, body).await;
        (status, body)
    }

    /// Registers `number` for `user` (expiring in December, five years on), expecting a 201.
    pub async fn register(&self, user: &str, number: &str) -> Value {
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/payment-methods",
                Some(&self.user(user)),
                Some(&card(number)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Registers `number` for `user` and returns the method's id.
    pub async fn method_id(&self, user: &str, number: &str) -> String {
        self.register(user, number).await["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    /// Charges an order as orders would.
    pub async fn charge(&self, body: &Value) -> (StatusCode, HeaderMap, Value) {
        self.send_on(
            &self.server,
            Method::POST,
            "/v1/payments",
            Some(&self.service()),
            Some(body),
        )
        .await
    }

    /// [`TestApp::charge`] in a test that makes the processor fail: a 5xx is the answer it
    /// expects.
    pub async fn charge_allowing_5xx(&self, body: &Value) -> (StatusCode, HeaderMap, Value) {
        let token = self.service();
        let path = "/v1/payments";
        let response = request(&self.server, Method::POST, path, Some(&token), Some(body)).await;
        let headers = response.headers().clone();
        let (status, body) = read_json_allowing_5xx(response).await;
        (status, headers, body)
    }

    /// Refunds an order as orders would.
    pub async fn refund(&self, order_id: Uuid) -> (StatusCode, Value) {
        self.send(
            Method::POST,
            &format!("/v1/payments/{order_id}/refund"),
            Some(&self.service()),
            None,
        )
        .await
    }

    /// An order's payment as orders would read it.
    pub async fn payment(&self, order_id: Uuid) -> (StatusCode, Value) {
        self.send(
            Method::GET,
            &format!("/v1/payments/{order_id}"),
            Some(&self.service()),
            None,
        )
        .await
    }

    /// Every event in the outbox feed, in order, read as a consumer would (history's service
    /// token for payments).
    pub async fn events(&self) -> Vec<Value> {
        let token = self.issuer.service_token("history", "payments");
        let (status, page) = self
            .send(
                Method::GET,
                "/v1/events?after=0&limit=500",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["events"]
            .as_array()
            .expect("a page of events")
            .iter()
            .map(|item| item["event"].clone())
            .collect()
    }

    /// The events about `order`, in order.
    pub async fn events_of(&self, order: Uuid) -> Vec<Value> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e["subject"] == order.to_string())
            .collect()
    }

    /// Renames a table (and back), so that writing to it fails: for proving that a failed
    /// transaction leaves nothing behind.
    pub async fn rename_table(&self, from: &str, to: &str) {
        let sql = sqlx::AssertSqlSafe(format!("ALTER TABLE {from} RENAME TO {to}"));
        match self.database() {
            Database::Sqlite(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
            Database::Postgres(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
        }
    }

    /// Makes order `order`'s pending charge look `ms` older than it is: what a process paused
    /// that long (or a clock jump) looks like to everyone else.
    pub async fn age_pending(&self, order: Uuid, ms: i64) {
        let sql = "UPDATE payments SET attempt_at = attempt_at - $1 WHERE order_id = $2 AND status = 'pending'";
        let aged = match self.database() {
            Database::Sqlite(pool) => sqlx::query(sql)
                .bind(ms)
                .bind(order.to_string())
                .execute(pool)
                .await
                .unwrap()
                .rows_affected(),
            Database::Postgres(pool) => sqlx::query(sql)
                .bind(ms)
                .bind(order.to_string())
                .execute(pool)
                .await
                .unwrap()
                .rows_affected(),
        };
        assert_eq!(aged, 1, "order {order} has no pending charge");
    }

    /// The database behind the service.
    pub fn database(&self) -> &Database {
        self.payments.store.database()
    }

    /// How many rows of `table` have any column whose text contains `needle`.
    pub async fn rows_containing(&self, table: &str, needle: &str) -> i64 {
        let pattern = format!("%{needle}%");
        match self.database() {
            Database::Sqlite(pool) => {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(table)
                        .fetch_all(pool)
                        .await
                        .unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(matching_rows(table, &columns)))
                    .bind(pattern)
                    .fetch_one(pool)
                    .await
                    .unwrap()
            }
            Database::Postgres(pool) => {
                let columns: Vec<String> = sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1",
                )
                .bind(table)
                .fetch_all(pool)
                .await
                .unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(matching_rows(table, &columns)))
                    .bind(pattern)
                    .fetch_one(pool)
                    .await
                    .unwrap()
            }
        }
    }

    /// Every table of the schema but the migrations' own.
    pub async fn tables(&self) -> Vec<String> {
        let tables: Vec<String> = match self.database() {
            Database::Sqlite(pool) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
            Database::Postgres(pool) => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
        };
        tables
            .into_iter()
            .filter(|t| t != "_sqlx_migrations")
            .collect()
    }
}

fn matching_rows(table: &str, columns: &[String]) -> String {
    assert!(!columns.is_empty(), "table {table} has no columns");
    let any = columns
        .iter()
        .map(|c| format!("CAST({c} AS TEXT) LIKE $1"))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!("SELECT COUNT(*) FROM {table} WHERE {any}")
}

/// A registration body for `number`, valid in every other field.
pub fn card(number: &str) -> Value {
    json!({ "card_number": number, "exp_month": 12, "exp_year": this_year() + 5, "cvc": "123" })
}

/// A charge body.
pub fn charge_body(order_id: Uuid, user: &str, method: &str, amount: i64) -> Value {
    json!({
        "order_id": order_id,
        "user_id": user,
        "payment_method_id": method,
        "amount": { "amount": amount, "currency": "USD" },
    })
}

/// The current UTC year.
pub fn this_year() -> i64 {
    Timestamp::now().year_month().0
}

/// A fresh Luhn-valid 16-digit Visa-like number, different in every test.
pub fn random_card() -> String {
    let body: String = std::iter::once('4')
        .chain((0..14).map(|_| char::from(b'0' + fastrand::u8(0..10))))
        .collect();
    let check = (0..10)
        .find(|d| luhn(&format!("{body}{d}")))
        .expect("a check digit");
    format!("{body}{check}")
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Sends a request to `server` with an optional bearer token and JSON body.
async fn request(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = server.client.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}
