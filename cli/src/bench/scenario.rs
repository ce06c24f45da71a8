//! The scenarios: which shopper action each request is, in what proportions, and how each action
//! is sent and timed.
//!
//! The mixed scenario follows the funnel of a real shop: most requests look (lists, searches,
//! product pages), fewer change a cart, few check out — see the README for the proportions.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::histograms::{Outcome, Recorder, Sample};
use super::users::{Orders, Product, User};

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Scenario {
    /// Product lists and product pages.
    Browse,
    /// Product lists by category only (one endpoint, for its cost alone).
    List,
    /// Product pages only: the gateway's aggregate of catalog and inventory.
    Product,
    /// Searches.
    Search,
    /// Adding to the cart and viewing it.
    Cart,
    /// Adding to the cart only.
    AddToCart,
    /// Viewing the cart only.
    ViewCart,
    /// Checkouts only.
    Checkout,
    /// A shop's day: all of the above in a real shop's proportions.
    Mixed,
}

/// One shopper action, measured as one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Browse,
    Search,
    Product,
    AddToCart,
    ViewCart,
    Checkout,
}

impl Action {
    pub(crate) fn endpoint(self) -> &'static str {
        match self {
            Self::Browse => "browse",
            Self::Search => "search",
            Self::Product => "product",
            Self::AddToCart => "add_to_cart",
            Self::ViewCart => "view_cart",
            Self::Checkout => "checkout",
        }
    }
}

impl Scenario {
    /// The actions and their weights (percent).
    pub(crate) fn mix(self) -> &'static [(Action, u32)] {
        match self {
            Self::Browse => &[(Action::Browse, 50), (Action::Product, 50)],
            Self::List => &[(Action::Browse, 100)],
            Self::Product => &[(Action::Product, 100)],
            Self::AddToCart => &[(Action::AddToCart, 100)],
            Self::ViewCart => &[(Action::ViewCart, 100)],
            Self::Search => &[(Action::Search, 100)],
            Self::Cart => &[(Action::AddToCart, 70), (Action::ViewCart, 30)],
            Self::Checkout => &[(Action::Checkout, 100)],
            Self::Mixed => &[
                (Action::Browse, 30),
                (Action::Search, 20),
                (Action::Product, 30),
                (Action::AddToCart, 12),
                (Action::ViewCart, 5),
                (Action::Checkout, 3),
            ],
        }
    }

    /// The action of a request, from a number drawn uniformly in 0..100.
    pub(crate) fn pick(self, draw: u32) -> Action {
        let mut left = draw % 100;
        for &(action, weight) in self.mix() {
            if left < weight {
                return action;
            }
            left -= weight;
        }
        self.mix()[0].0
    }
}

/// Everything a request task needs.
#[derive(Debug)]
pub(crate) struct Shop {
    pub(crate) client: reqwest::Client,
    /// `http://host:port`.
    pub(crate) base: String,
    pub(crate) products: Vec<Product>,
    /// Words from product names, to search for.
    pub(crate) words: Vec<String>,
    pub(crate) users: Vec<User>,
    pub(crate) recorder: Recorder,
    pub(crate) orders: Orders,
    /// When the measured phase started (intended times are offsets from it).
    pub(crate) start: Instant,
    /// Follow every n-th accepted order to its end.
    pub(crate) follow_every: u64,
    /// The tasks following orders.
    pub(crate) followers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Shop {
    /// Performs request `i` of the run, due at `due`.
    pub(crate) async fn perform(self: Arc<Self>, i: u64, due: Instant, action: Action) {
        let Some(user) = self
            .users
            .get(usize::try_from(i).unwrap_or(0) % self.users.len().max(1))
        else {
            return;
        };
        let product = &self.products[(i as usize * 7 + 3) % self.products.len()];
        match action {
            Action::Browse => {
                let path = format!("/api/v1/products?limit=20&category={}", product.category);
                self.timed(Action::Browse, due, Method::GET, &path, None, None, None)
                    .await;
            }
            Action::Search => {
                let word = &self.words[i as usize % self.words.len()];
                let path = format!("/api/v1/products?q={word}&limit=20");
                self.timed(Action::Search, due, Method::GET, &path, None, None, None)
                    .await;
            }
            Action::Product => {
                let path = format!("/api/v1/products/{}/details", product.id);
                self.timed(Action::Product, due, Method::GET, &path, None, None, None)
                    .await;
            }
            Action::AddToCart => {
                self.add_to_cart(due, user, product).await;
            }
            Action::ViewCart => {
                let token = Some(user.token.as_str());
                self.timed(
                    Action::ViewCart,
                    due,
                    Method::GET,
                    "/api/v1/cart",
                    token,
                    None,
                    None,
                )
                .await;
            }
            Action::Checkout => self.checkout(i, due, user, product).await,
        }
    }

    async fn add_to_cart(&self, due: Instant, user: &User, product: &Product) -> bool {
        let path = format!("/api/v1/cart/items/{}", product.id);
        let body = json!({ "quantity": 1 + fastrand::u32(0..3) });
        let token = Some(user.token.as_str());
        self.timed(
            Action::AddToCart,
            due,
            Method::PUT,
            &path,
            token,
            None,
            Some(&body),
        )
        .await
        .is_some()
    }

    /// Fills the cart (measured as an add to cart), then places the order; the order's clock
    /// starts when the cart is ready.
    async fn checkout(self: &Arc<Self>, i: u64, due: Instant, user: &User, product: &Product) {
        if !self.add_to_cart(due, user, product).await {
            return;
        }
        let key = format!("bench-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let body = json!({
            "payment_method_id": user.payment_method,
            "shipping_address": {
                "name": "Bench Shopper", "line1": "1 Load Street", "city": "Testville",
                "postal_code": "12345", "country": "US"
            }
        });
        let placed = Instant::now();
        let token = Some(user.token.as_str());
        let answer = self
            .timed(
                Action::Checkout,
                placed,
                Method::POST,
                "/api/v1/orders",
                token,
                Some(&key),
                Some(&body),
            )
            .await;
        let Some(id) = answer.as_ref().and_then(|a| a["id"].as_str()) else {
            return;
        };
        self.orders.accepted(id, user, placed - self.start);
        if i.is_multiple_of(self.follow_every.max(1)) {
            let (this, id, token) = (Arc::clone(self), id.to_owned(), user.token.clone());
            let task = tokio::spawn(async move { this.follow(&id, &token, placed).await });
            if let Ok(mut followers) = self.followers.lock() {
                followers.push(task);
            }
        }
    }

    /// Polls an accepted order until it is confirmed or cancelled (for at most a minute) and
    /// records the time from placing it to its end.
    async fn follow(&self, id: &str, token: &str, placed: Instant) {
        let url = format!("{}/api/v1/orders/{id}", self.base);
        let until = placed + Duration::from_secs(60);
        while Instant::now() < until {
            let answer = self.client.get(&url).bearer_auth(token).send().await;
            let status = match answer {
                Ok(response) if response.status().is_success() => response
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|o| o["status"].as_str().map(str::to_owned)),
                _ => None,
            };
            if let Some(status @ ("confirmed" | "cancelled")) = status.as_deref() {
                let outcome = if status == "confirmed" {
                    Outcome::Ok
                } else {
                    Outcome::Status(409)
                };
                self.recorder.record(Sample {
                    endpoint: "order_confirmed",
                    at: placed - self.start,
                    latency: placed.elapsed(),
                    outcome,
                });
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.recorder.record(Sample {
            endpoint: "order_confirmed",
            at: placed - self.start,
            latency: placed.elapsed(),
            outcome: Outcome::Timeout,
        });
    }

    /// Sends one request and records its sample (latency from `due`); the JSON answer of a
    /// success.
    #[allow(clippy::too_many_arguments)]
    async fn timed(
        &self,
        action: Action,
        due: Instant,
        method: Method,
        path: &str,
        token: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Option<Value> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let (outcome, answer) = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await;
                match body {
                    Ok(bytes) if status.is_success() => (
                        Outcome::Ok,
                        Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
                    ),
                    Ok(_) => (Outcome::Status(status.as_u16()), None),
                    Err(e) if e.is_timeout() => (Outcome::Timeout, None),
                    Err(_) => (Outcome::Other, None),
                }
            }
            Err(e) => (classify(&e), None),
        };
        self.recorder.record(Sample {
            endpoint: action.endpoint(),
            at: due.saturating_duration_since(self.start),
            latency: due.elapsed(),
            outcome,
        });
        answer
    }
}

fn classify(error: &reqwest::Error) -> Outcome {
    if error.is_timeout() {
        Outcome::Timeout
    } else if error.is_connect() {
        Outcome::Connect
    } else {
        Outcome::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mix_adds_up_to_a_hundred_and_picks_in_proportion() {
        for scenario in [
            Scenario::Browse,
            Scenario::Search,
            Scenario::Cart,
            Scenario::Checkout,
            Scenario::Mixed,
        ] {
            assert_eq!(
                scenario.mix().iter().map(|(_, w)| w).sum::<u32>(),
                100,
                "{scenario:?}"
            );
        }
        let checkouts = (0..100)
            .filter(|&d| Scenario::Mixed.pick(d) == Action::Checkout)
            .count();
        let browses = (0..100)
            .filter(|&d| Scenario::Mixed.pick(d) == Action::Browse)
            .count();
        assert_eq!((checkouts, browses), (3, 30));
    }
}
