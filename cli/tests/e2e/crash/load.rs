//! The checkout load of the crash harness: shoppers who fill their carts and check out one order
//! at a time, as a careful client would — sending the same `Idempotency-Key` again while the shop
//! cannot answer — and who write down everything the shop told them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

/// How long one checkout is sent again under its key before the shopper gives up on it. The
/// named run crashes orders seven times within a minute, and the supervisor's restart backoff
/// grows to 10 s meanwhile: orders is away for about half a minute in all.
const PLACE_FOR: Duration = Duration::from_secs(75);
/// How long a shopper waits for its order to end before it stops shopping. The longest path an
/// order may lawfully take is the named run's: its charge is left pending by a crash in payments
/// (held for payments' charge lease, 30 s), the saga's 20 s deadline passes, and its refund is
/// left pending by a second crash (another 30 s lease), with orders itself crashed and restarted
/// between: over a minute from the shopper's answer (CI once saw 60.5 s), so a minute of patience
/// failed a run that broke nothing.
const SETTLE_FOR: Duration = Duration::from_secs(120);
/// How long a shopper waits for a confirmed order's products to leave its cart. The cart reads
/// orders' events from the first orders instance; when that one is killed again and again (the
/// supervisor waits up to 10 s before each restart), a cart can lag by half a minute.
const CART_FOR: Duration = Duration::from_secs(60);
/// How long setting up (cards, cart lines) may be refused for want of a service.
const SETUP_FOR: Duration = Duration::from_secs(30);

/// An answer from the shop: its status and JSON body (`Null` when not JSON), or why none came.
pub type Answer = Result<(u16, Value), String>;

/// A client of the shop's public API, through the gateway.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// The API at `base` (`http://127.0.0.1:PORT`).
    pub fn new(client: reqwest::Client, base: String) -> Self {
        Self { client, base }
    }

    /// One request.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let key: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.send_with(method, path, token, &key, body).await
    }

    /// One request, with extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// [`Api::send`] again, unchanged, while the shop cannot answer (no connection, 5xx, 429, a
    /// request with this key still running), for at most `within`. The answer, and how many
    /// times the request was sent again.
    pub async fn persist(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<&Value>,
        within: Duration,
    ) -> (Answer, u32) {
        let deadline = Instant::now() + within;
        let mut retries = 0;
        let mut pause = Duration::from_millis(100);
        loop {
            let answer = self.send(method.clone(), path, token, key, body).await;
            if !transient(&answer) || Instant::now() + pause > deadline {
                return (answer, retries);
            }
            retries += 1;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// Whether an answer says "not now" rather than yes or no.
pub fn transient(answer: &Answer) -> bool {
    match answer {
        Err(_) => true,
        Ok((status, body)) => {
            *status >= 500
                || *status == 429
                || (*status == 409 && problem(body) == "request-in-progress")
        }
    }
}

/// The slug of a problem+json body (`cart-empty`), or `""`.
pub fn problem(body: &Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .unwrap_or("")
}

/// A product the load buys, with the units put on sale for it.
pub use souk::books::Product;

/// Confirmed orders before any shopper pays with another card than the good one: more than the
/// charges a crash point may be armed at (`payments.after-charge-before-record@3` must crash a
/// capture, not a decline, for the refund after it to be reached).
const WARM_UP: u32 = 6;

/// The cards a shopper pays with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Card {
    /// `4242424242424242`: approved.
    Good,
    /// `4000000000000002`: declined.
    Declined,
    /// `4000000000000119`: the processor fails every time.
    Failing,
}

impl Card {
    pub const ALL: [Card; 3] = [Card::Good, Card::Declined, Card::Failing];

    pub fn number(self) -> &'static str {
        match self {
            Card::Good => "4242424242424242",
            Card::Declined => "4000000000000002",
            Card::Failing => "4000000000000119",
        }
    }

    /// The good card until [`WARM_UP`] orders of the run are confirmed (so the first charges of
    /// a run are captures, whichever shopper makes them and however many orders run out of
    /// stock before a charge), then mostly good cards, some declined, a few failing.
    fn pick(rng: &mut fastrand::Rng, confirmed: u32) -> Self {
        if confirmed < WARM_UP {
            return Card::Good;
        }
        match rng.u8(0..100) {
            0..85 => Card::Good,
            85..95 => Card::Declined,
            _ => Card::Failing,
        }
    }
}

/// A signed-in shopper with a payment method per card.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub name: String,
    pub user_id: String,
    pub token: String,
    pub cards: BTreeMap<Card, String>,
}

impl Shopper {
    /// Registers and signs in `email` at identity's own address (`identity`, not through the
    /// gateway, whose sign-in rate limit is not what this harness tests), then registers one card
    /// of each kind through the gateway.
    pub async fn sign_up(api: &Api, identity: &Api, name: &str) -> Shopper {
        let email = format!("{name}@crash.example.com");
        let password = format!("{name} has a long passphrase");
        let account = json!({ "email": email, "password": password, "name": name });
        let (answer, _) = identity
            .persist(
                Method::POST,
                "/v1/auth/register",
                None,
                None,
                Some(&account),
                SETUP_FOR,
            )
            .await;
        assert!(
            matches!(answer, Ok((201, _))),
            "register {name}: {answer:?}"
        );
        let login = json!({ "email": email, "password": password });
        let (answer, _) = identity
            .persist(
                Method::POST,
                "/v1/auth/login",
                None,
                None,
                Some(&login),
                SETUP_FOR,
            )
            .await;
        let token = match answer {
            Ok((200, tokens)) => tokens["access_token"].as_str().unwrap().to_owned(),
            other => panic!("login {name}: {other:?}"),
        };
        let (answer, _) = api
            .persist(
                Method::GET,
                "/api/v1/me",
                Some(&token),
                None,
                None,
                SETUP_FOR,
            )
            .await;
        let user_id = match answer {
            Ok((200, me)) => me["id"].as_str().unwrap().to_owned(),
            other => panic!("me {name}: {other:?}"),
        };
        let mut cards = BTreeMap::new();
        for card in Card::ALL {
            let body = json!({ "card_number": card.number(), "exp_month": 12, "exp_year": 2031, "cvc": "123" });
            let (answer, _) = api
                .persist(
                    Method::POST,
                    "/api/v1/payment-methods",
                    Some(&token),
                    None,
                    Some(&body),
                    SETUP_FOR,
                )
                .await;
            let id = match answer {
                Ok((201, method)) => method["id"].as_str().unwrap().to_owned(),
                other => panic!("card {card:?} for {name}: {other:?}"),
            };
            cards.insert(card, id);
        }
        Shopper {
            name: name.to_owned(),
            user_id,
            token,
            cards,
        }
    }
}

/// An order the shop accepted (202), as its shopper knows it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub shopper: usize,
    pub key: String,
    pub id: String,
    /// What was in the cart: product id → quantity.
    pub lines: BTreeMap<String, i64>,
    pub card: Card,
}

/// What the shoppers did and were told.
#[derive(Debug, Default)]
pub struct Tally {
    /// Checkouts sent (each under a fresh key).
    pub checkouts: u32,
    /// Orders accepted, in the order they were.
    pub placed: Vec<Placed>,
    /// Checkouts refused for good, by status and problem (`422 cart-empty`).
    pub refused: BTreeMap<String, u32>,
    /// Times a checkout was sent again under its key.
    pub resent: u32,
    /// Checkouts abandoned without an answer.
    pub abandoned: u32,
    /// Shoppers who stopped before the end, and why.
    pub retired: Vec<String>,
    /// Orders seen confirmed by their shoppers.
    pub confirmed: u32,
    /// Each shopper's last order, if its last act was to see it confirmed (its cart untouched
    /// since).
    pub last_confirmed: BTreeMap<usize, Placed>,
}

/// The shoppers at work until `stop`; each task ends after the order in hand.
pub fn spawn(
    api: &Api,
    shoppers: &[Shopper],
    products: &[Product],
    seed: u64,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Mutex<Tally>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    shoppers
        .iter()
        .enumerate()
        .map(|(index, shopper)| {
            let run = Run {
                api: api.clone(),
                shopper: shopper.clone(),
                index,
                products: products.to_vec(),
                stop: Arc::clone(stop),
                tally: Arc::clone(tally),
            };
            let rng = fastrand::Rng::with_seed(seed.wrapping_add(index as u64 + 1));
            tokio::spawn(run.shop(rng))
        })
        .collect()
}

struct Run {
    api: Api,
    shopper: Shopper,
    index: usize,
    products: Vec<Product>,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
}

impl Run {
    async fn shop(self, mut rng: fastrand::Rng) {
        let mut round = 0;
        while !self.stop.load(Ordering::Relaxed) {
            round += 1;
            if let Err(why) = self.once(&mut rng, round).await {
                let line = format!("{}: {why}", self.shopper.name);
                self.tally.lock().unwrap().retired.push(line);
                return;
            }
        }
    }

    /// One checkout: a fresh cart, the order, its end, the cart emptied. `Err` stops the shopper
    /// (its next cart could be mixed up with an order still running).
    async fn once(&self, rng: &mut fastrand::Rng, round: u32) -> Result<(), String> {
        // A new cart: what the last order left in it no longer tells anything.
        self.tally
            .lock()
            .unwrap()
            .last_confirmed
            .remove(&self.index);
        let lines = self.fill_cart(rng).await?;
        let confirmed = self.tally.lock().unwrap().confirmed;
        let card = Card::pick(rng, confirmed);
        let key = format!("{}-{round}", self.shopper.name);
        let Some(id) = self.place(&key, card).await? else {
            return Ok(());
        };
        let placed = Placed {
            shopper: self.index,
            key,
            id: id.clone(),
            lines,
            card,
        };
        self.tally.lock().unwrap().placed.push(placed.clone());
        let Some(status) = self.settled(&id).await? else {
            return Ok(()); // the load stopped first: the drain waits for it
        };
        if status == "confirmed" {
            self.tally.lock().unwrap().confirmed += 1;
            self.cart_emptied(&placed).await?;
            self.tally
                .lock()
                .unwrap()
                .last_confirmed
                .insert(self.index, placed);
        }
        Ok(())
    }

    /// Empties the cart and puts one or two products in it; what it put.
    async fn fill_cart(&self, rng: &mut fastrand::Rng) -> Result<BTreeMap<String, i64>, String> {
        let token = Some(self.shopper.token.as_str());
        let (answer, _) = self
            .api
            .persist(Method::DELETE, "/api/v1/cart", token, None, None, SETUP_FOR)
            .await;
        if !matches!(answer, Ok((204, _))) {
            return Err(format!("cannot empty the cart: {answer:?}"));
        }
        let mut lines = BTreeMap::new();
        let count = rng.usize(1..=2);
        while lines.len() < count {
            let product = &self.products[rng.usize(..self.products.len())];
            lines.insert(product.id.clone(), rng.i64(1..=3));
        }
        for (id, quantity) in &lines {
            let body = json!({ "quantity": quantity });
            let path = format!("/api/v1/cart/items/{id}");
            let (answer, _) = self
                .api
                .persist(Method::PUT, &path, token, None, Some(&body), SETUP_FOR)
                .await;
            if !matches!(answer, Ok((200, _))) {
                return Err(format!("cannot put {id} in the cart: {answer:?}"));
            }
        }
        Ok(lines)
    }

    /// Checks out under `key`, sending it again while the shop cannot answer. The order's id if
    /// accepted; `None` if refused for good.
    async fn place(&self, key: &str, card: Card) -> Result<Option<String>, String> {
        let body = json!({
            "payment_method_id": self.shopper.cards[&card],
            "shipping_address": { "name": self.shopper.name, "line1": "1 Crash Lane", "city": "London", "postal_code": "N1 9GU", "country": "GB" }
        });
        let (answer, resent) = self
            .api
            .persist(
                Method::POST,
                "/api/v1/orders",
                Some(&self.shopper.token),
                Some(key),
                Some(&body),
                PLACE_FOR,
            )
            .await;
        let final_answer = !transient(&answer);
        let mut tally = self.tally.lock().unwrap();
        tally.checkouts += 1;
        tally.resent += resent;
        match answer {
            Ok((202, order)) => Ok(Some(order["id"].as_str().unwrap_or_default().to_owned())),
            Ok((status, body)) if final_answer => {
                let why = format!("{status} {}", problem(&body));
                *tally.refused.entry(why).or_default() += 1;
                Ok(None)
            }
            other => {
                tally.abandoned += 1;
                Err(format!("gave up on checkout {key}: {other:?}"))
            }
        }
    }

    /// Polls order `id` until it ends: its status, or `None` when the load stopped first.
    async fn settled(&self, id: &str) -> Result<Option<String>, String> {
        let path = format!("/api/v1/orders/{id}");
        let deadline = Instant::now() + SETTLE_FOR;
        loop {
            let answer = self
                .api
                .send(Method::GET, &path, Some(&self.shopper.token), None, None)
                .await;
            if let Ok((200, order)) = &answer
                && order["status"] != "pending"
            {
                return Ok(order["status"].as_str().map(str::to_owned));
            }
            if self.stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "order {id} still pending after {SETTLE_FOR:?}: {answer:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until none of a confirmed order's products is left in the cart.
    async fn cart_emptied(&self, placed: &Placed) -> Result<(), String> {
        let deadline = Instant::now() + CART_FOR;
        loop {
            let answer = self
                .api
                .send(
                    Method::GET,
                    "/api/v1/cart",
                    Some(&self.shopper.token),
                    None,
                    None,
                )
                .await;
            if let Ok((200, cart)) = &answer
                && !holds_any(cart, placed.lines.keys())
            {
                return Ok(());
            }
            if self.stop.load(Ordering::Relaxed) {
                return Ok(()); // the final check looks at the cart after the drain
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "order {} confirmed but its products still in the cart after {CART_FOR:?}",
                    placed.id
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Whether `cart` has a line for any of `products`.
pub fn holds_any<'a>(cart: &Value, mut products: impl Iterator<Item = &'a String>) -> bool {
    let items = cart["items"].as_array().cloned().unwrap_or_default();
    products.any(|id| items.iter().any(|item| item["product_id"] == id.as_str()))
}
