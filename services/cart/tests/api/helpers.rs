//! Spawns the cart on a random port with its own store and a fake catalog the test controls,
//! and reads its answers. `cart_tests!` runs one body against SQLite and against Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use souk_cart::store::Store;
use souk_cart::{Config, StoreConfig};
use souk_chassis::Query;
pub use souk_chassis::test_util::read_json;
use souk_chassis::test_util::{TestDatabase, TestIssuer, TestServer, init_test_logging};
use uuid::Uuid;

/// The variable naming the Redis server for the Redis variants.
pub const REDIS_URL_VAR: &str = "SOUK_TEST_REDIS_URL";

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// Keys under a prefix of their own on the server named by `SOUK_TEST_REDIS_URL`.
    Redis,
}

/// Declares one test per store for each `async fn name(app) { ... }`: `name::sqlite` always runs,
/// `name::redis` runs when `SOUK_TEST_REDIS_URL` is set (and fails if that server is down).
/// `$spawn` is an `async fn(Backend) -> Option<TestApp>`.
macro_rules! cart_tests {
    ($spawn:path; $(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let Some($app) = $spawn(crate::helpers::Backend::Sqlite).await else { return };
                    $body
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    let Some($app) = $spawn(crate::helpers::Backend::Redis).await else { return };
                    $body
                }
            }
        )*
    };
}

/// A running cart, its fake catalog, and who can sign in.
pub struct TestApp {
    pub server: TestServer,
    pub catalog: FakeCatalog,
    pub issuer: TestIssuer,
    pub store: Store,
    /// The cart itself, to start its consumers.
    pub cart: souk_cart::Cart,
    pub backend: Backend,
    /// A user's id and token; most tests act as this user.
    pub user_id: String,
    pub token: String,
    _catalog_server: TestServer,
    _store: TestStore,
}

/// A cart with the default config, or `None` when `backend` is not configured here.
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// A cart whose catalog answers are never cached, so every read asks the catalog.
pub async fn spawn_uncached(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |config| config.price_cache_ms = 0).await
}

/// A cart with `tweak` applied to its config.
pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    init_test_logging();
    let test_store = TestStore::create(backend).await?;
    let issuer = TestIssuer::start().await;
    let catalog = FakeCatalog::default();
    let catalog_server = TestServer::spawn(catalog.router()).await;
    let mut config = Config {
        store: test_store.config.clone(),
        auth: issuer.auth_config("cart"),
        ..Config::default()
    };
    config.catalog.url = catalog_server.url("");
    tweak(&mut config);
    let cart = souk_cart::build(&config).await.expect("the cart starts");
    let user_id = Uuid::now_v7().to_string();
    Some(TestApp {
        server: TestServer::spawn(cart.router.clone()).await,
        token: issuer.user_token(&user_id, "user"),
        user_id,
        catalog,
        _catalog_server: catalog_server,
        issuer,
        store: cart.store.clone(),
        cart,
        backend,
        _store: test_store,
    })
}

impl TestApp {
    /// A token of a new user.
    pub fn new_user(&self) -> String {
        self.issuer.user_token(&Uuid::now_v7().to_string(), "user")
    }

    /// The Redis key prefix of this test's carts (empty on SQLite).
    pub fn key_prefix(&self) -> &str {
        self._store.redis.as_ref().map_or("", |(_, prefix)| prefix)
    }

    /// Sends `method path` with `token` and a JSON `body`, returning status and JSON body
    /// (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.server.client.request(method, self.server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read_json(request.send().await.expect("request sent")).await
    }

    /// The cart of `token`'s user, checking the answer is 200.
    pub async fn cart_of(&self, token: &str) -> Value {
        let (status, cart) = self.call(Method::GET, "/v1/cart", Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{cart}");
        cart
    }

    /// The default user's cart.
    pub async fn cart(&self) -> Value {
        self.cart_of(&self.token).await
    }

    /// Sets the default user's line for `product` to `quantity`.
    pub async fn set(&self, product: Uuid, quantity: i64) -> (StatusCode, Value) {
        self.set_as(&self.token, product, json!({ "quantity": quantity }))
            .await
    }

    /// PUTs a raw `body` with `content_type` on the default user's line for `product`.
    pub async fn put_raw(
        &self,
        product: Uuid,
        body: &str,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .server
            .client
            .put(self.server.url(&format!("/v1/cart/items/{product}")))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent");
        read_json(response).await
    }

    /// PUTs `body` on `token`'s line for `product`.
    pub async fn set_as(&self, token: &str, product: Uuid, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/v1/cart/items/{product}"),
            Some(token),
            Some(body),
        )
        .await
    }
}

/// The product ids of a cart's lines, in order.
pub fn ids(cart: &Value) -> Vec<Uuid> {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|line| line["product_id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// The store under one test, removed afterwards.
struct TestStore {
    config: StoreConfig,
    _sqlite: Option<TestDatabase>,
    redis: Option<(String, String)>,
}

impl TestStore {
    async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let db = TestDatabase::create(souk_chassis::test_util::Backend::Sqlite).await?;
                Some(Self {
                    config: StoreConfig::with_url(db.config.url.expose()),
                    _sqlite: Some(db),
                    redis: None,
                })
            }
            Backend::Redis => {
                let Ok(url) = std::env::var(REDIS_URL_VAR) else {
                    eprintln!(
                        "skipped: {REDIS_URL_VAR} is not set, so the Redis variant of this test did not run"
                    );
                    return None;
                };
                // A prefix of its own: tests running together never see each other's carts.
                let prefix = format!("souk:test:{}:cart:", Uuid::now_v7().simple());
                Some(Self {
                    config: StoreConfig {
                        key_prefix: prefix.clone(),
                        ..StoreConfig::with_url(&url)
                    },
                    _sqlite: None,
                    redis: Some((url, prefix)),
                })
            }
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some((url, prefix)) = self.redis.take() else {
            return;
        };
        let cleaned = (|| -> redis::RedisResult<()> {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
            }
            Ok(())
        })();
        if let Err(err) = cleaned {
            eprintln!("warning: test keys under {prefix} could not be removed: {err}");
        }
    }
}

/// A catalog the test controls: its products, whether it answers, and how often it was asked.
#[derive(Clone, Default)]
pub struct FakeCatalog {
    inner: Arc<FakeInner>,
}

#[derive(Default)]
struct FakeInner {
    products: Mutex<HashMap<Uuid, Value>>,
    down: AtomicBool,
    calls: AtomicUsize,
}

impl FakeCatalog {
    /// Adds a product priced `amount` US cents; returns its id.
    pub fn add(&self, amount: i64) -> Uuid {
        self.add_priced(amount, "USD")
    }

    /// Adds a product priced `amount` minor units of `currency`; returns its id.
    pub fn add_priced(&self, amount: i64, currency: &str) -> Uuid {
        let id = Uuid::now_v7();
        let product = json!({
            "id": id, "sku": format!("TST-{}", &id.simple().to_string()[20..]),
            "name": format!("Product {id}"), "description": "A thing for tests.",
            "category": "kitchen", "price": { "amount": amount, "currency": currency },
            "image_url": "/assets/products/x.svg",
        });
        self.inner.products.lock().unwrap().insert(id, product);
        id
    }

    /// Deletes a product, as an administrator would.
    pub fn remove(&self, id: Uuid) {
        self.inner.products.lock().unwrap().remove(&id);
    }

    /// Makes the catalog answer 503 to everything (`true`) or answer again (`false`).
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// How many requests the catalog has received.
    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// The catalog's routes: `GET /v1/products?ids=…`, as the real one answers it.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/products", get(products_by_ids))
            .with_state(self.clone())
    }
}

async fn products_by_ids(
    State(catalog): State<FakeCatalog>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    catalog.inner.calls.fetch_add(1, Ordering::SeqCst);
    if catalog.inner.down.load(Ordering::SeqCst) {
        return souk_chassis::Problem::unavailable("down for the test").into_response();
    }
    let ids = params.get("ids").map(String::as_str).unwrap_or_default();
    let asked: Vec<Uuid> = ids.split(',').map(|id| id.parse().unwrap()).collect();
    assert!(asked.len() <= 100, "the catalog takes at most 100 ids");
    let products = catalog.inner.products.lock().unwrap();
    let items: Vec<&Value> = asked.iter().filter_map(|id| products.get(id)).collect();
    souk_chassis::Json(json!({ "items": items, "next_cursor": null })).into_response()
}
