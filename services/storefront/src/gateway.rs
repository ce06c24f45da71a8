//! The gateway's public API (`/api/v1/…`) as the storefront reads it: a client like any other.
//!
//! Every call names the shopper's address in `X-Forwarded-For` (so the gateway's per-client
//! limits see shoppers, not the storefront) and carries the shopper's access token when there is
//! one. The types below hold only the fields the pages show (a tolerant reader).

use std::net::IpAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use souk_chassis::client::ClientConfig;
use tracing::Instrument;

/// A handle on the gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    base: String,
    client: reqwest::Client,
}

/// Who a call is made for: the shopper's address and token.
#[derive(Debug, Clone, Default)]
pub struct Who {
    /// The shopper's address, sent as `X-Forwarded-For`.
    pub client_ip: Option<IpAddr>,
    /// Their access token, if signed in.
    pub token: Option<String>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// 401: no token, or one that is no longer good.
    #[error("not signed in")]
    Unauthorized,
    /// 404.
    #[error("not found")]
    NotFound,
    /// 429, with the seconds to wait when the gateway said.
    #[error("too many requests")]
    TooMany(Option<u64>),
    /// Another 4xx, with its problem document.
    #[error("refused with {status}")]
    Rejected {
        /// The status.
        status: StatusCode,
        /// The problem document (empty when there was none).
        problem: ProblemBody,
    },
    /// The gateway or the service behind it could not answer (5xx, timeout, refused).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// An RFC 9457 problem, as far as pages show it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProblemBody {
    /// Its one-line summary.
    pub title: Option<String>,
    /// What went wrong.
    pub detail: Option<String>,
    /// Field errors.
    pub errors: Vec<FieldProblem>,
}

/// One invalid field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FieldProblem {
    /// The field as the API named it (`shipping_address.city`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An amount in minor units and its currency.
#[derive(Debug, Clone, Deserialize)]
pub struct Money {
    /// Minor units (cents).
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl Money {
    /// As shoppers read it: `$1,234.50`, `€9.99`, `12.00 CHF`.
    pub fn display(&self) -> String {
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        let units = (abs / 100).to_string();
        let mut grouped = String::new();
        for (i, digit) in units.chars().enumerate() {
            if i > 0 && (units.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        let number = format!("{grouped}.{:02}", abs % 100);
        match self.currency.as_str() {
            "USD" => format!("{sign}${number}"),
            "EUR" => format!("{sign}€{number}"),
            "GBP" => format!("{sign}£{number}"),
            other => format!("{sign}{number} {other}"),
        }
    }
}

/// A category.
#[derive(Debug, Clone, Deserialize)]
pub struct Category {
    /// Its slug, the list's filter.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// One sentence.
    #[serde(default)]
    pub description: String,
    /// How many products it holds.
    #[serde(default)]
    pub product_count: i64,
}

#[derive(Debug, Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// A product.
#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    /// Its id.
    pub id: String,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// Its category's slug.
    #[serde(default)]
    pub category: String,
    /// Its price.
    pub price: Money,
    /// Its picture, a path on this site.
    #[serde(default)]
    pub image_url: String,
}

impl Product {
    /// The picture to show: the catalog's when it is a path on this site (nothing is ever
    /// fetched from another host), else the storefront's own for the SKU.
    pub fn image(&self) -> String {
        if self.image_url.starts_with('/') && !self.image_url.starts_with("//") {
            self.image_url.clone()
        } else {
            format!("/assets/products/{}.svg", self.sku.to_ascii_lowercase())
        }
    }
}

/// A page of products.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductPage {
    /// The products.
    pub items: Vec<Product>,
    /// The cursor of the next page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The product page's data, aggregated by the gateway.
#[derive(Debug, Clone, Deserialize)]
pub struct Details {
    /// The product.
    pub product: Product,
    /// What one can buy now; `None` when inventory did not answer in time.
    #[serde(default)]
    pub availability: Option<Availability>,
    /// The parts that are missing.
    #[serde(default)]
    pub degraded: Vec<String>,
}

/// What one can buy now.
#[derive(Debug, Clone, Deserialize)]
pub struct Availability {
    /// At least one unit.
    pub in_stock: bool,
    /// Units one can buy now.
    #[serde(default)]
    pub quantity: i64,
}

/// Tokens from sign-in or refresh.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
}

/// A priced cart.
#[derive(Debug, Clone, Deserialize)]
pub struct Cart {
    /// Its lines.
    pub items: Vec<CartLine>,
    /// Its total, when every line could be priced.
    #[serde(default)]
    pub total: Option<Money>,
    /// Missing parts (`prices`).
    #[serde(default)]
    pub degraded: Vec<String>,
}

/// One line of a cart.
#[derive(Debug, Clone, Deserialize)]
pub struct CartLine {
    /// The product.
    pub product_id: String,
    /// Its name, when the catalog said.
    #[serde(default)]
    pub name: Option<String>,
    /// How many.
    pub quantity: u32,
    /// Price of one.
    #[serde(default)]
    pub unit_price: Option<Money>,
    /// Price of all.
    #[serde(default)]
    pub line_total: Option<Money>,
}

/// A card as payments stored it.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentMethod {
    /// Its id.
    pub id: String,
}

/// The card form's fields as the API wants them.
#[derive(Debug, Clone, Serialize)]
pub struct NewCard {
    /// Digits only.
    pub card_number: String,
    /// 1–12.
    pub exp_month: u32,
    /// Four digits.
    pub exp_year: u32,
    /// Three or four digits.
    pub cvc: String,
}

/// A shipping address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Address {
    /// Recipient.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// More.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166 two-letter country code.
    pub country: String,
}

/// An order accepted for checkout.
#[derive(Debug, Clone, Deserialize)]
pub struct Accepted {
    /// Its id.
    pub id: String,
}

/// An order.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// Its id.
    pub id: String,
    /// `pending`, `confirmed` or `cancelled`.
    pub status: String,
    /// Why it was cancelled.
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// What was ordered.
    #[serde(default)]
    pub lines: Vec<OrderLine>,
    /// What it costs.
    pub total: Money,
    /// When it was placed.
    #[serde(default)]
    pub created_at: String,
    /// Where it goes.
    #[serde(default)]
    pub shipping_address: Option<Address>,
}

/// One line of an order or a purchase.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderLine {
    /// The product's name then.
    #[serde(default)]
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one.
    pub unit_price: Money,
    /// Price of all.
    pub line_total: Money,
}

/// A page of purchase history.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryPage {
    /// The purchases, newest first.
    pub items: Vec<Purchase>,
    /// The cursor of the next page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// A purchase from history.
#[derive(Debug, Clone, Deserialize)]
pub struct Purchase {
    /// The order.
    pub order_id: String,
    /// `pending`, `confirmed` or `cancelled`.
    pub status: String,
    /// Why it was cancelled.
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// What was bought.
    #[serde(default)]
    pub lines: Vec<OrderLine>,
    /// What it cost.
    pub total: Money,
    /// The card, once charged.
    #[serde(default)]
    pub payment: Option<Card>,
    /// When it was placed.
    #[serde(default)]
    pub placed_at: String,
}

/// A card's brand and last digits.
#[derive(Debug, Clone, Deserialize)]
pub struct Card {
    /// `visa`, …
    pub brand: String,
    /// Last four digits.
    pub last4: String,
}

/// A query string for the product list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProductQuery {
    /// Search words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// A category slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Page size.
    pub limit: u32,
    /// The page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl Gateway {
    /// A client of the gateway at `config.url` (no `/api`), each call within `config`'s deadline,
    /// its connections from `source_ip` when given.
    pub fn new(config: &ClientConfig, source_ip: Option<std::net::IpAddr>) -> Self {
        let client = reqwest::Client::builder()
            .local_address(source_ip)
            .timeout(config.timeout())
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            base: config.url.trim_end_matches('/').to_owned(),
            client,
        }
    }

    /// The categories.
    pub async fn categories(&self, who: &Who) -> Result<Vec<Category>, GatewayError> {
        let page: Items<Category> = self.get("/api/v1/categories?limit=100", who).await?;
        Ok(page.items)
    }

    /// A page of products.
    pub async fn products(
        &self,
        query: &ProductQuery,
        who: &Who,
    ) -> Result<ProductPage, GatewayError> {
        let query = serde_urlencoded::to_string(query).unwrap_or_default();
        self.get(&format!("/api/v1/products?{query}"), who).await
    }

    /// The product page's data.
    pub async fn details(&self, id: &str, who: &Who) -> Result<Details, GatewayError> {
        self.get(&format!("/api/v1/products/{id}/details"), who)
            .await
    }

    /// Makes an account.
    pub async fn register(
        &self,
        name: &str,
        email: &str,
        password: &str,
        who: &Who,
    ) -> Result<(), GatewayError> {
        let body = serde_json::json!({"name": name, "email": email, "password": password});
        let _: serde_json::Value = self
            .send(Method::POST, "/api/v1/auth/register", who, Some(body), None)
            .await?;
        Ok(())
    }

    /// Signs in.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        who: &Who,
    ) -> Result<Tokens, GatewayError> {
        let body = serde_json::json!({"email": email, "password": password});
        self.send(Method::POST, "/api/v1/auth/login", who, Some(body), None)
            .await
    }

    /// Trades a refresh token for a new pair.
    pub async fn refresh(&self, refresh_token: &str, who: &Who) -> Result<Tokens, GatewayError> {
        let body = serde_json::json!({"refresh_token": refresh_token});
        self.send(Method::POST, "/api/v1/auth/refresh", who, Some(body), None)
            .await
    }

    /// Ends the login `refresh_token` belongs to: identity revokes its whole family, so a copy
    /// of the cookie buys nothing afterwards.
    pub async fn logout(&self, refresh_token: &str, who: &Who) -> Result<(), GatewayError> {
        let body = serde_json::json!({"refresh_token": refresh_token});
        let _: serde_json::Value = self
            .send(Method::POST, "/api/v1/auth/logout", who, Some(body), None)
            .await?;
        Ok(())
    }

    /// The shopper's cart.
    pub async fn cart(&self, who: &Who) -> Result<Cart, GatewayError> {
        self.get("/api/v1/cart", who).await
    }

    /// Sets a cart line (0 removes it).
    pub async fn set_line(
        &self,
        product_id: &str,
        quantity: u32,
        who: &Who,
    ) -> Result<(), GatewayError> {
        let body = serde_json::json!({"quantity": quantity});
        let path = format!("/api/v1/cart/items/{product_id}");
        let _: serde_json::Value = self.send(Method::PUT, &path, who, Some(body), None).await?;
        Ok(())
    }

    /// Removes a cart line.
    pub async fn remove_line(&self, product_id: &str, who: &Who) -> Result<(), GatewayError> {
        let path = format!("/api/v1/cart/items/{product_id}");
        let _: serde_json::Value = self.send(Method::DELETE, &path, who, None, None).await?;
        Ok(())
    }

    /// Registers a card.
    pub async fn add_card(&self, card: &NewCard, who: &Who) -> Result<PaymentMethod, GatewayError> {
        let body = serde_json::to_value(card).unwrap_or_default();
        self.send(
            Method::POST,
            "/api/v1/payment-methods",
            who,
            Some(body),
            None,
        )
        .await
    }

    /// Checks out the cart; a repeat with the same key is the same order.
    pub async fn place_order(
        &self,
        payment_method_id: &str,
        address: &Address,
        key: &str,
        who: &Who,
    ) -> Result<Accepted, GatewayError> {
        let body = serde_json::json!({
            "payment_method_id": payment_method_id,
            "shipping_address": address,
        });
        self.send(Method::POST, "/api/v1/orders", who, Some(body), Some(key))
            .await
    }

    /// One of the shopper's orders.
    pub async fn order(&self, id: &str, who: &Who) -> Result<Order, GatewayError> {
        self.get(&format!("/api/v1/orders/{id}"), who).await
    }

    /// A page of the shopper's purchase history.
    pub async fn history(
        &self,
        cursor: Option<&str>,
        who: &Who,
    ) -> Result<HistoryPage, GatewayError> {
        let query = serde_urlencoded::to_string([("limit", Some("10")), ("cursor", cursor)])
            .unwrap_or_default();
        self.get(&format!("/api/v1/history?{query}"), who).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, who: &Who) -> Result<T, GatewayError> {
        self.send(Method::GET, path, who, None, None).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        who: &Who,
        body: Option<serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<T, GatewayError> {
        let span = call_span(&method, path);
        let mut trace = http::HeaderMap::new();
        souk_chassis::telemetry::inject_trace(&span, &mut trace);
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .headers(trace);
        if let Some(ip) = who.client_ip {
            request = request.header("x-forwarded-for", ip.to_string());
        }
        if let Some(token) = &who.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().instrument(span.clone()).await.map_err(|e| {
            span.record("otel.status_code", "ERROR");
            GatewayError::Unavailable(souk_chassis::problem::ErrorChain(&e).to_string())
        })?;
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = response.bytes().await.map_err(|e| {
            GatewayError::Unavailable(souk_chassis::problem::ErrorChain(&e).to_string())
        })?;
        if status.is_server_error() {
            return Err(GatewayError::Unavailable(format!(
                "the gateway answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(match status {
                StatusCode::UNAUTHORIZED => GatewayError::Unauthorized,
                StatusCode::NOT_FOUND => GatewayError::NotFound,
                StatusCode::TOO_MANY_REQUESTS => GatewayError::TooMany(retry_after),
                _ => GatewayError::Rejected {
                    status,
                    problem: serde_json::from_slice(&bytes).unwrap_or_default(),
                },
            });
        }
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| {
            GatewayError::Unavailable(format!("an answer the storefront cannot read: {e}"))
        })
    }
}

/// A client span for one call to the gateway, a child of the page's request span (none outside
/// one), so a page and the API calls it made are one trace.
fn call_span(method: &Method, path: &str) -> tracing::Span {
    if tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    tracing::info_span!(
        "call",
        otel.name = %format_args!("{method} gateway"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        "peer.service" = "gateway",
        "url.path" = path,
        "http.response.status_code" = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_like_a_price_tag() {
        let money = |amount, currency: &str| Money {
            amount,
            currency: currency.into(),
        };
        assert_eq!(money(3499, "USD").display(), "$34.99");
        assert_eq!(money(123_456_700, "USD").display(), "$1,234,567.00");
        assert_eq!(money(5, "EUR").display(), "€0.05");
        assert_eq!(money(-250, "GBP").display(), "-£2.50");
        assert_eq!(money(1000, "CHF").display(), "10.00 CHF");
    }

    #[test]
    fn pictures_never_come_from_another_host() {
        let mut product: Product = serde_json::from_value(serde_json::json!({
            "id": "1", "sku": "KIT-0001", "name": "Pan",
            "price": {"amount": 1, "currency": "USD"},
            "image_url": "https://cdn.example/pan.jpg"
        }))
        .unwrap();
        assert_eq!(product.image(), "/assets/products/kit-0001.svg");
        product.image_url = "//cdn.example/pan.jpg".into();
        assert_eq!(product.image(), "/assets/products/kit-0001.svg");
        product.image_url = "/assets/products/kit-0001.svg".into();
        assert_eq!(product.image(), "/assets/products/kit-0001.svg");
    }
}
