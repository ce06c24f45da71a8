//! The storefront's routes: pages (GET), forms (POST, each CSRF-checked), and its own assets.

mod account;
mod assets;
mod cart;
mod checkout;
mod shop;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::csrf;
use crate::gateway::Gateway;
use crate::pages::PageError;
use crate::session::Shopper;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct App {
    /// The gateway's public API.
    pub gateway: Gateway,
    /// Signs CSRF tokens.
    pub csrf: csrf::Key,
    /// Settings read per request.
    pub settings: Arc<Settings>,
    /// The card registered for each checkout form (by its idempotency key), so a double submit
    /// sends the same order body and the gateway's idempotency makes it one order.
    pub cards: Arc<Mutex<CardsByKey>>,
}

/// Settings from the config that handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// When cookies are `Secure` and `__Host-`.
    pub secure_cookies: crate::config::SecureCookies,
    /// Products per list page.
    pub page_size: u32,
}

/// Payment method ids by checkout key, oldest dropped first beyond a bound.
#[derive(Debug, Default)]
pub struct CardsByKey {
    cells: HashMap<String, Arc<OnceCell<String>>>,
    order: std::collections::VecDeque<String>,
}

/// How many checkout keys are remembered (a double submit comes within seconds).
const CARDS_REMEMBERED: usize = 10_000;

impl CardsByKey {
    /// The cell for `key`, made when new.
    pub fn cell(&mut self, key: &str) -> Arc<OnceCell<String>> {
        if let Some(cell) = self.cells.get(key) {
            return Arc::clone(cell);
        }
        if self.order.len() >= CARDS_REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.cells.remove(&oldest);
        }
        let cell = Arc::new(OnceCell::new());
        self.cells.insert(key.to_owned(), Arc::clone(&cell));
        self.order.push_back(key.to_owned());
        cell
    }
}

/// Every page and form.
pub fn app(state: App) -> Router {
    Router::new()
        .route("/", get(shop::home))
        .route("/products", get(shop::products))
        .route("/products/{id}", get(shop::product))
        .route("/cart", get(cart::show))
        .route("/cart/add", post(cart::add))
        .route("/cart/items/{id}", post(cart::update))
        .route("/cart/items/{id}/remove", post(cart::remove))
        .route("/signin", get(account::signin_page).post(account::signin))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/signout", post(account::signout))
        .route("/checkout", get(checkout::page).post(checkout::place))
        .route("/orders", get(checkout::history))
        .route("/orders/{id}", get(checkout::order))
        .route("/static/shop.css", get(assets::stylesheet))
        .route("/static/favicon.svg", get(assets::favicon))
        .route("/assets/products/{file}", get(assets::product_image))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// What every answer says about how a browser may use it: no script at all (the shop has none),
/// styles, pictures and form targets from this site only, never in a frame (clickjacking), no
/// sniffing a type other than the one given, and no address of a page leaking to another site.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    use http::HeaderValue;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A form with only its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct EmptyForm {}

/// Reads a posted form after checking its CSRF token (field `csrf`).
pub fn form<T: DeserializeOwned>(shopper: &Shopper, body: &Bytes) -> Result<T, PageError> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| PageError::BadRequest("This form could not be read.".into()))?;
    let token = fields
        .iter()
        .find(|(name, _)| name == "csrf")
        .map_or("", |(_, value)| value.as_str());
    shopper.check_csrf(token)?;
    serde_urlencoded::from_bytes(body)
        .map_err(|_| PageError::BadRequest("This form could not be read.".into()))
}

/// Reads a query string into `T`; one that does not fit is a 400 page.
pub fn query<T: DeserializeOwned + Default>(raw: Option<&str>) -> Result<T, PageError> {
    match raw {
        None => Ok(T::default()),
        Some(raw) => serde_urlencoded::from_str(raw).map_err(|_| {
            PageError::BadRequest("This address has a query the shop cannot read.".into())
        }),
    }
}

/// A path id: a UUID, or the page does not exist (nothing else reaches the gateway's paths).
pub fn id(text: &str) -> Result<String, PageError> {
    uuid::Uuid::parse_str(text)
        .map(|id| id.to_string())
        .map_err(|_| PageError::NotFound)
}

/// Unknown paths: API clients that missed the gateway's `/api` routes get problem+json like
/// every other API answer; people get the 404 page.
async fn not_found(uri: http::Uri, shopper: Shopper) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/api" || path.starts_with("/.well-known/") {
        return souk_chassis::Problem::not_found("no resource at this path").into_response();
    }
    shopper.finish(Err(PageError::NotFound))
}
