//! Spawns inventory on a random port with its own database and a fake catalog, and reads its
//! answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::IntoResponse;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use souk_chassis::client::ClientConfig;
use souk_chassis::test_util::{Backend, TestDatabase, TestIssuer, TestServer, init_test_logging};
pub use souk_chassis::test_util::{read_json, read_json_allowing_5xx};
use souk_chassis::{Json, Query};
use souk_inventory::domain::{Stock, Timestamp};
use souk_inventory::{Config, Inventory};
use uuid::Uuid;

/// The bundled demo quantities, by SKU.
pub fn demo_quantities() -> BTreeMap<String, i64> {
    serde_json::from_str(include_str!("../../data/demo-stock.json")).unwrap()
}

/// A stand-in for the catalog: `GET /v1/products?limit=&cursor=` and `GET /v1/products/{id}` over
/// a list tests can change, and switch off (503). The listing can be made to lag behind the
/// products (`set_listing`), as a listing paged while the catalog changes does.
/// Product ids and SKUs, in listing order.
type Products = Vec<(Uuid, String)>;

#[derive(Clone)]
pub struct FakeCatalog {
    products: Arc<Mutex<Products>>,
    listing: Arc<Mutex<Option<Products>>>,
    up: Arc<AtomicBool>,
    pub calls: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(serde::Deserialize)]
struct PageParams {
    limit: usize,
    cursor: Option<String>,
}

impl FakeCatalog {
    /// The first `count` demo SKUs, each with a fresh id.
    pub fn with_demo_products(count: usize) -> Self {
        let products = demo_quantities()
            .into_keys()
            .take(count)
            .map(|sku| (Uuid::now_v7(), sku))
            .collect();
        Self {
            products: Arc::new(Mutex::new(products)),
            listing: Arc::default(),
            up: Arc::new(AtomicBool::new(true)),
            calls: Arc::default(),
        }
    }

    pub fn products(&self) -> Vec<(Uuid, String)> {
        self.products.lock().unwrap().clone()
    }

    pub fn add(&self, sku: &str) -> Uuid {
        let id = Uuid::now_v7();
        self.products.lock().unwrap().push((id, sku.to_owned()));
        id
    }

    /// Deletes product `id`.
    pub fn remove(&self, id: Uuid) {
        self.products.lock().unwrap().retain(|(p, _)| *p != id);
    }

    /// Gives product `id` a new SKU.
    pub fn rename(&self, id: Uuid, sku: &str) {
        for (p, s) in self.products.lock().unwrap().iter_mut() {
            if *p == id {
                *s = sku.to_owned();
            }
        }
    }

    /// Puts product `id` back with `sku` (as if a deletion had been a mistake).
    pub fn put_back(&self, id: Uuid, sku: &str) {
        self.products.lock().unwrap().push((id, sku.to_owned()));
    }

    /// What the list shows from now on instead of the products (`None`: the products).
    pub fn set_listing(&self, listing: Option<Vec<(Uuid, String)>>) {
        *self.listing.lock().unwrap() = listing;
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/v1/products", axum::routing::get(page))
            .route("/v1/products/{id}", axum::routing::get(one))
            .with_state(self.clone())
    }
}

async fn one(
    State(catalog): State<FakeCatalog>,
    souk_chassis::Path(id): souk_chassis::Path<Uuid>,
) -> axum::response::Response {
    catalog.calls.fetch_add(1, Ordering::SeqCst);
    if !catalog.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match catalog.products().into_iter().find(|(p, _)| *p == id) {
        Some((id, sku)) => {
            Json(json!({ "id": id, "sku": sku, "name": format!("Product {sku}") })).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "type": "about:blank", "title": "Not Found", "status": 404 })),
        )
            .into_response(),
    }
}

async fn page(
    State(catalog): State<FakeCatalog>,
    Query(params): Query<PageParams>,
) -> axum::response::Response {
    catalog.calls.fetch_add(1, Ordering::SeqCst);
    if !catalog.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let listing = catalog.listing.lock().unwrap().clone();
    let products = listing.unwrap_or_else(|| catalog.products());
    let start: usize = params
        .cursor
        .map(|c| c.trim_start_matches("at-").parse().unwrap())
        .unwrap_or(0);
    let end = (start + params.limit).min(products.len());
    let items: Vec<Value> = products[start..end]
        .iter()
        .map(|(id, sku)| json!({ "id": id, "sku": sku, "name": format!("Product {sku}"), "price": { "amount": 100, "currency": "USD" } }))
        .collect();
    let next = (end < products.len()).then(|| format!("at-{end}"));
    Json(json!({ "items": items, "next_cursor": next })).into_response()
}

/// A running inventory, its database, its token issuer and its fake catalog.
pub struct TestApp {
    pub server: TestServer,
    pub db: TestDatabase,
    pub issuer: TestIssuer,
    pub inventory: Inventory,
    pub catalog: FakeCatalog,
    /// Serves the fake catalog for as long as the app lives.
    _catalog_server: TestServer,
    pub backend: Backend,
}

/// Inventory with 150 demo products synced (two catalog pages), background loops off.
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    let app = spawn_with(backend, |_| {}).await?;
    let report = app.inventory.sync_catalog().await.unwrap();
    assert_eq!(report.added, 150);
    Some(app)
}

/// Inventory before any sync, background loops off.
pub async fn spawn_unsynced(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// Inventory whose holds last 1 s and whose expiry loop runs every 50 ms.
pub async fn spawn_expiring(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |config| {
        config.reservation_ttl_secs = 1;
        config.expiry_interval_ms = 50;
    })
    .await
}

/// Inventory with `configure` applied to the test defaults (loops off, fake catalog over HTTP).
pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
    init_test_logging();
    let db = TestDatabase::create(backend).await?;
    let issuer = TestIssuer::start().await;
    let catalog = FakeCatalog::with_demo_products(150);
    let catalog_server = TestServer::spawn(catalog.router()).await;
    let mut config = Config {
        database: db.config.clone(),
        auth: issuer.auth_config("inventory"),
        catalog: ClientConfig::with_url(catalog_server.url("")),
        catalog_sync_secs: 0,
        expiry_interval_ms: 0,
        ..Config::default()
    };
    configure(&mut config);
    let inventory = souk_inventory::build(&config)
        .await
        .expect("inventory starts");
    Some(TestApp {
        server: TestServer::spawn(inventory.router.clone()).await,
        db,
        issuer,
        inventory,
        catalog,
        _catalog_server: catalog_server,
        backend,
    })
}

/// A line of a reservation request.
pub fn line(product_id: Uuid, quantity: i64) -> Value {
    json!({ "product_id": product_id, "quantity": quantity })
}

impl TestApp {
    /// GET `path` without a token.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None, None).await
    }

    /// `/readyz`: 503 is its answer until inventory is ready, not a bug.
    pub async fn readiness(&self) -> (StatusCode, Value) {
        let url = self.server.url("/readyz");
        let response = self.server.client.get(url).send().await;
        read_json_allowing_5xx(response.expect("request sent")).await
    }

    /// Any request, with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.send_with(method, path, token, &[], body).await;
        (status, body)
    }

    /// Any request, with headers too; the answer's headers as well.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.server.client.request(method, self.server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let headers = response.headers().clone();
        let (status, body) = read_json(response).await;
        (status, headers, body)
    }

    /// An administrator reads `sku`'s stock: status, body and `ETag`.
    pub async fn admin_stock(&self, sku: &str) -> (StatusCode, Value, String) {
        let path = format!("/v1/admin/stock/{sku}");
        let (status, headers, body) = self
            .send_with(Method::GET, &path, Some(&self.admin()), &[], None)
            .await;
        let etag = headers
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, body, etag)
    }

    /// An administrator sets `sku`'s units on sale from the version `etag` names.
    pub async fn set_stock_if(
        &self,
        sku: &str,
        quantity: i64,
        etag: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let path = format!("/v1/admin/stock/{sku}");
        let body = json!({ "quantity": quantity });
        self.send_with(
            Method::PUT,
            &path,
            Some(&self.admin()),
            &[("if-match", etag)],
            Some(&body),
        )
        .await
    }

    /// An administrator records `delta` units received (or written off) for `sku`.
    pub async fn adjust(&self, sku: &str, delta: i64, key: Option<&str>) -> (StatusCode, Value) {
        let path = format!("/v1/admin/stock/{sku}/adjustments");
        let body = json!({ "delta": delta, "reason": "a test delivery" });
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        let (status, _, body) = self
            .send_with(
                Method::POST,
                &path,
                Some(&self.admin()),
                &headers,
                Some(&body),
            )
            .await;
        (status, body)
    }

    pub fn admin(&self) -> String {
        self.issuer.user_token("admin-1", "admin")
    }

    pub fn user(&self) -> String {
        self.issuer.user_token("user-1", "user")
    }

    /// What orders presents.
    pub fn service(&self) -> String {
        self.issuer.service_token("orders", "inventory")
    }

    pub async fn reserve(&self, order_id: Uuid, lines: Vec<Value>) -> (StatusCode, Value) {
        let body = json!({ "order_id": order_id, "lines": lines });
        self.send(
            Method::POST,
            "/v1/reservations",
            Some(&self.service()),
            Some(&body),
        )
        .await
    }

    pub async fn release(&self, order_id: Uuid) -> (StatusCode, Value) {
        let path = format!("/v1/reservations/{order_id}/release");
        self.send(Method::POST, &path, Some(&self.service()), None)
            .await
    }

    pub async fn commit(&self, order_id: Uuid) -> (StatusCode, Value) {
        let path = format!("/v1/reservations/{order_id}/commit");
        self.send(Method::POST, &path, Some(&self.service()), None)
            .await
    }

    /// An administrator reads `sku`'s stock and sets its units on sale from that version.
    pub async fn set_stock(&self, sku: &str, quantity: i64) -> (StatusCode, Value) {
        let (status, body, etag) = self.admin_stock(sku).await;
        if status != StatusCode::OK {
            return (status, body);
        }
        let (status, _, body) = self.set_stock_if(sku, quantity, &etag).await;
        (status, body)
    }

    /// The `n`th product the fake catalog lists.
    pub fn product(&self, n: usize) -> (Uuid, String) {
        self.catalog.products()[n].clone()
    }

    /// A product known only to this test, with `available` units.
    pub async fn new_product(&self, available: i64) -> Uuid {
        self.new_product_with_sku(available).await.0
    }

    /// [`TestApp::new_product`], and its SKU.
    pub async fn new_product_with_sku(&self, available: i64) -> (Uuid, String) {
        let id = Uuid::now_v7();
        let sku = format!("T-{}", id.simple());
        assert!(
            self.inventory
                .store
                .add_product(id, &sku, available, Timestamp::now())
                .await
                .unwrap()
        );
        (id, sku)
    }

    pub async fn stock(&self, product_id: Uuid) -> Stock {
        self.inventory
            .store
            .stock(product_id)
            .await
            .unwrap()
            .expect("a stock row")
    }

    /// Every stock row keeps received = available + reserved + sold, none negative.
    pub async fn assert_consistent(&self) {
        for stock in self.inventory.store.all_stock().await.unwrap() {
            assert!(stock.is_consistent(), "{stock:?}");
        }
    }
}
