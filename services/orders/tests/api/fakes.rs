//! Small stand-ins for orders' neighbours — cart, catalog, inventory, payments and identity's
//! service-token endpoint — served together on one local port. Each test sets their data and
//! failures, and reads what was called. Inventory and payments keep real books: stock arithmetic
//! with holds and tombstones, one payment per order with captures counted, refunds, tombstones.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use souk_chassis::test_util::TestIssuer;
use souk_chassis::{Json, Path, Query};
use uuid::Uuid;

/// The secret orders' fake identity expects.
pub const SECRET: &str = "orders-test-secret";

/// How a payment method's card behaves at the fake processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// Approved.
    Good,
    /// Declined (`card_declined`).
    Declined,
}

/// A product in the fake catalog.
#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub amount: i64,
    pub currency: String,
}

/// A line in a fake cart.
#[derive(Debug, Clone)]
pub struct CartLine {
    pub product_id: Uuid,
    pub quantity: i64,
    pub status: String,
}

/// A reservation in the fake inventory.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub state: String,
    pub lines: Vec<(Uuid, i64)>,
    /// When a hold lapses, if holds lapse ([`World::hold`]).
    pub expires_at: Option<Instant>,
}

/// A payment in the fake payments.
#[derive(Debug, Clone)]
pub struct Payment {
    pub status: String,
    pub amount: i64,
    pub currency: String,
}

/// Everything the fakes know, and what was asked of them.
#[derive(Debug, Default)]
pub struct World {
    pub users: HashMap<String, String>,
    pub service_tokens: HashMap<String, String>,
    pub carts: HashMap<String, Vec<CartLine>>,
    pub products: HashMap<Uuid, Product>,
    pub available: HashMap<Uuid, i64>,
    pub reservations: HashMap<Uuid, Reservation>,
    pub methods: HashMap<Uuid, (String, Card)>,
    pub payments: HashMap<Uuid, Payment>,
    pub captures: HashMap<Uuid, u32>,
    pub refunds: HashMap<Uuid, u32>,
    /// `"<endpoint> <order or user>"` for every call, in order.
    pub calls: Vec<String>,
    /// Endpoints answering 503 (`cart`, `catalog`, `methods`, `reserve`, `release`, `charge`,
    /// `refund`, `identity`).
    pub down: HashSet<&'static str>,
    /// Endpoints that never answer in time.
    pub hang: HashSet<&'static str>,
    /// The next this many charges fail with `processor-unavailable`.
    pub processor_failures: u32,
    /// Charges capture, then never answer.
    pub hang_after_capture: bool,
    /// How long a hold lasts (forever when `None`): a lapsed hold gives its units back at the
    /// fake's next call, as inventory's expiry loop would.
    pub hold: Option<Duration>,
    /// Charges wait this long before the processor is asked.
    pub charge_delay: Option<Duration>,
}

impl World {
    /// Expires every hold past its `expires_at`, giving its units back.
    pub fn expire_lapsed(&mut self) {
        let now = Instant::now();
        let World {
            reservations,
            available,
            ..
        } = self;
        for reservation in reservations.values_mut() {
            if reservation.state == "held" && reservation.expires_at.is_some_and(|at| at <= now) {
                reservation.state = "expired".into();
                for (id, quantity) in &reservation.lines {
                    *available.get_mut(id).unwrap() += quantity;
                }
            }
        }
    }
}

/// The fakes, shared with the test. Cheap to clone.
#[derive(Clone)]
pub struct Fakes {
    world: Arc<Mutex<World>>,
    issuer: Arc<TestIssuer>,
}

impl Fakes {
    /// Fakes whose identity signs with `issuer`.
    pub fn new(issuer: Arc<TestIssuer>) -> Self {
        Self {
            world: Arc::default(),
            issuer,
        }
    }

    /// The fakes' state, to set up or inspect.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// A product priced `amount` in `currency`, with `stock` units available.
    pub fn product(&self, name: &str, amount: i64, currency: &str, stock: i64) -> Uuid {
        let id = Uuid::now_v7();
        let mut world = self.world();
        world.products.insert(
            id,
            Product {
                sku: format!("SKU-{}", &id.simple().to_string()[24..]),
                name: name.into(),
                amount,
                currency: currency.into(),
            },
        );
        world.available.insert(id, stock);
        id
    }

    /// A payment method of `user` with `card`.
    pub fn method(&self, user: &str, card: Card) -> Uuid {
        let id = Uuid::now_v7();
        self.world().methods.insert(id, (user.to_owned(), card));
        id
    }

    /// Puts `quantity` of `product` (status `ok`) in `user`'s cart.
    pub fn add_to_cart(&self, user: &str, product: Uuid, quantity: i64) {
        self.add_line(user, product, quantity, "ok");
    }

    /// Puts a line with a given cart `status` in `user`'s cart.
    pub fn add_line(&self, user: &str, product: Uuid, quantity: i64, status: &str) {
        self.world()
            .carts
            .entry(user.to_owned())
            .or_default()
            .push(CartLine {
                product_id: product,
                quantity,
                status: status.into(),
            });
    }

    /// How many calls of `endpoint` (`reserve`, `charge`, …) were made about `subject`.
    pub fn calls(&self, endpoint: &str, subject: &str) -> usize {
        let wanted = format!("{endpoint} {subject}");
        self.world().calls.iter().filter(|c| **c == wanted).count()
    }

    /// How many calls of `endpoint` were made at all.
    pub fn calls_of(&self, endpoint: &str) -> usize {
        let prefix = format!("{endpoint} ");
        self.world()
            .calls
            .iter()
            .filter(|c| c.starts_with(&prefix))
            .count()
    }

    /// Captures made for `order`.
    pub fn captures(&self, order: Uuid) -> u32 {
        self.world().captures.get(&order).copied().unwrap_or(0)
    }

    /// Refunds made for `order`.
    pub fn refunds(&self, order: Uuid) -> u32 {
        self.world().refunds.get(&order).copied().unwrap_or(0)
    }

    /// Units of `product` one can buy now.
    pub fn available(&self, product: Uuid) -> i64 {
        self.world().available[&product]
    }

    /// The state of `order`'s reservation, if inventory heard of it.
    pub fn reservation(&self, order: Uuid) -> Option<String> {
        self.world()
            .reservations
            .get(&order)
            .map(|r| r.state.clone())
    }

    /// The status of `order`'s payment, if payments heard of it.
    pub fn payment(&self, order: Uuid) -> Option<String> {
        self.world().payments.get(&order).map(|p| p.status.clone())
    }

    /// A user's token, known to the cart and payments as `user`.
    pub fn user_token(&self, user: &str) -> String {
        let token = self.issuer.user_token(user, "user");
        self.world().users.insert(token.clone(), user.to_owned());
        token
    }

    /// All of them on one router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/cart", get(cart_get))
            .route("/v1/products", get(products_list))
            .route("/v1/reservations", post(reserve))
            .route("/v1/reservations/{order}/release", post(release))
            .route("/v1/reservations/{order}/commit", post(commit))
            .route("/v1/payment-methods/{id}", get(method_get))
            .route("/v1/payments", post(charge))
            .route("/v1/payments/{order}/refund", post(refund))
            .route("/v1/auth/service-token", post(service_token))
            .with_state(self.clone())
    }

    /// Records a call, then fails it if the test says so.
    async fn enter(&self, endpoint: &'static str, subject: String) -> Result<(), Response> {
        let (down, hang) = {
            let mut world = self.world();
            world.calls.push(format!("{endpoint} {subject}"));
            (world.down.contains(endpoint), world.hang.contains(endpoint))
        };
        if hang {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if down {
            return Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                json!({}),
            ));
        }
        Ok(())
    }

    fn user_of(&self, headers: &HeaderMap) -> Result<String, Response> {
        let token = bearer(headers);
        self.world()
            .users
            .get(&token)
            .cloned()
            .ok_or_else(|| problem(StatusCode::UNAUTHORIZED, "unauthorized", json!({})))
    }

    fn service_for(&self, headers: &HeaderMap, audience: &str) -> Result<(), Response> {
        let token = bearer(headers);
        match self.world().service_tokens.get(&token) {
            Some(aud) if aud == audience => Ok(()),
            _ => Err(problem(StatusCode::UNAUTHORIZED, "unauthorized", json!({}))),
        }
    }
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

fn problem(status: StatusCode, slug: &str, extra: Value) -> Response {
    let mut body = json!({"type": format!("urn:souk:problem:{slug}"), "title": slug, "status": status.as_u16()});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (
        status,
        [("content-type", "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn money(amount: i64, currency: &str) -> Value {
    json!({"amount": amount, "currency": currency})
}

/// The cart, priced with deliberately wrong prices: orders must never use them.
async fn cart_get(State(fakes): State<Fakes>, headers: HeaderMap) -> Response {
    let user = match fakes.user_of(&headers) {
        Ok(user) => user,
        Err(response) => return response,
    };
    if let Err(response) = fakes.enter("cart", user.clone()).await {
        return response;
    }
    let world = fakes.world();
    let items: Vec<Value> = world
        .carts
        .get(&user)
        .into_iter()
        .flatten()
        .map(|line| {
            json!({
                "product_id": line.product_id, "name": "cart's name", "quantity": line.quantity,
                "unit_price": money(1, "USD"), "line_total": money(line.quantity, "USD"),
                "status": line.status,
            })
        })
        .collect();
    Json(json!({"items": items, "total": money(1, "USD"), "degraded": []})).into_response()
}

#[derive(Deserialize)]
struct Ids {
    ids: Option<String>,
}

async fn products_list(State(fakes): State<Fakes>, Query(query): Query<Ids>) -> Response {
    let ids = query.ids.unwrap_or_default();
    if let Err(response) = fakes.enter("catalog", ids.clone()).await {
        return response;
    }
    let world = fakes.world();
    let items: Vec<Value> = ids
        .split(',')
        .filter_map(|id| Uuid::parse_str(id).ok())
        .filter_map(|id| world.products.get(&id).map(|p| (id, p)))
        .map(|(id, p)| {
            json!({"id": id, "sku": p.sku, "name": p.name, "description": "", "category": "test",
                   "price": money(p.amount, &p.currency), "image_url": ""})
        })
        .collect();
    Json(json!({"items": items, "next_cursor": null})).into_response()
}

#[derive(Deserialize)]
struct ReserveBody {
    order_id: Uuid,
    lines: Vec<ReserveLine>,
}

#[derive(Deserialize)]
struct ReserveLine {
    product_id: Uuid,
    quantity: i64,
}

async fn reserve(
    State(fakes): State<Fakes>,
    headers: HeaderMap,
    Json(body): Json<ReserveBody>,
) -> Response {
    if let Err(response) = fakes.service_for(&headers, "inventory") {
        return response;
    }
    if let Err(response) = fakes.enter("reserve", body.order_id.to_string()).await {
        return response;
    }
    let lines: Vec<(Uuid, i64)> = body
        .lines
        .iter()
        .map(|l| (l.product_id, l.quantity))
        .collect();
    let mut world = fakes.world();
    world.expire_lapsed();
    if let Some(existing) = world.reservations.get(&body.order_id) {
        let answer = json!({"order_id": body.order_id, "state": existing.state});
        return if existing.lines == lines && matches!(existing.state.as_str(), "held" | "committed")
        {
            Json(answer).into_response()
        } else {
            problem(
                StatusCode::CONFLICT,
                "reservation-conflict",
                json!({"reservation": answer}),
            )
        };
    }
    let lacking: Vec<Uuid> = lines
        .iter()
        .filter(|(id, q)| world.available.get(id).is_none_or(|a| a < q))
        .map(|(id, _)| *id)
        .collect();
    if !lacking.is_empty() {
        return problem(
            StatusCode::CONFLICT,
            "out-of-stock",
            json!({"product_ids": lacking}),
        );
    }
    for (id, quantity) in &lines {
        *world.available.get_mut(id).unwrap() -= quantity;
    }
    let expires_at = world.hold.map(|hold| Instant::now() + hold);
    world.reservations.insert(
        body.order_id,
        Reservation {
            state: "held".into(),
            lines,
            expires_at,
        },
    );
    // As inventory says it: when the hold lapses (a long way off unless holds lapse here).
    let hold = world.hold.unwrap_or(Duration::from_secs(900));
    let lapses = souk_chassis::time::Timestamp::now().plus(hold);
    (
        StatusCode::CREATED,
        Json(json!({"order_id": body.order_id, "state": "held", "expires_at": lapses})),
    )
        .into_response()
}

async fn release(
    State(fakes): State<Fakes>,
    headers: HeaderMap,
    Path(order): Path<Uuid>,
) -> Response {
    if let Err(response) = fakes.service_for(&headers, "inventory") {
        return response;
    }
    if let Err(response) = fakes.enter("release", order.to_string()).await {
        return response;
    }
    let mut world = fakes.world();
    world.expire_lapsed();
    let World {
        reservations,
        available,
        ..
    } = &mut *world;
    let reservation = reservations.entry(order).or_insert_with(|| Reservation {
        state: "released".into(),
        lines: Vec::new(),
        expires_at: None,
    });
    match reservation.state.as_str() {
        "held" => {
            for (id, quantity) in &reservation.lines {
                *available.get_mut(id).unwrap() += quantity;
            }
            reservation.state = "released".into();
        }
        // Inventory's rule: a lapsed hold released is final, never committed afterwards.
        "expired" => reservation.state = "released".into(),
        "committed" => return problem(StatusCode::CONFLICT, "reservation-state", json!({})),
        _ => {}
    }
    Json(json!({"order_id": order, "state": reservation.state})).into_response()
}

/// Inventory's commit: a hold becomes a sale; a lapsed one is taken again if the units are still
/// there, else 409 `out-of-stock`; a released one is refused.
async fn commit(
    State(fakes): State<Fakes>,
    headers: HeaderMap,
    Path(order): Path<Uuid>,
) -> Response {
    if let Err(response) = fakes.service_for(&headers, "inventory") {
        return response;
    }
    if let Err(response) = fakes.enter("commit", order.to_string()).await {
        return response;
    }
    let mut world = fakes.world();
    world.expire_lapsed();
    let World {
        reservations,
        available,
        ..
    } = &mut *world;
    let Some(reservation) = reservations.get_mut(&order) else {
        return problem(StatusCode::NOT_FOUND, "not-found", json!({}));
    };
    match reservation.state.as_str() {
        "held" => reservation.state = "committed".into(),
        "expired" => {
            let lacking: Vec<Uuid> = reservation
                .lines
                .iter()
                .filter(|(id, q)| available.get(id).is_none_or(|a| a < q))
                .map(|(id, _)| *id)
                .collect();
            if !lacking.is_empty() {
                return problem(
                    StatusCode::CONFLICT,
                    "out-of-stock",
                    json!({"product_ids": lacking}),
                );
            }
            for (id, quantity) in &reservation.lines {
                *available.get_mut(id).unwrap() -= quantity;
            }
            reservation.state = "committed".into();
        }
        "committed" => {}
        _ => return problem(StatusCode::CONFLICT, "reservation-state", json!({})),
    }
    Json(json!({"order_id": order, "state": reservation.state})).into_response()
}

async fn method_get(
    State(fakes): State<Fakes>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Response {
    let user = match fakes.user_of(&headers) {
        Ok(user) => user,
        Err(response) => return response,
    };
    if let Err(response) = fakes.enter("methods", user.clone()).await {
        return response;
    }
    match fakes.world().methods.get(&id) {
        Some((owner, _)) if *owner == user => Json(
            json!({"id": id, "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2099}),
        )
        .into_response(),
        _ => problem(StatusCode::NOT_FOUND, "not-found", json!({})),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeBody {
    order_id: Uuid,
    user_id: String,
    payment_method_id: Uuid,
    amount: AmountBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountBody {
    amount: i64,
    currency: String,
}

async fn charge(
    State(fakes): State<Fakes>,
    headers: HeaderMap,
    Json(body): Json<ChargeBody>,
) -> Response {
    if let Err(response) = fakes.service_for(&headers, "payments") {
        return response;
    }
    let order = body.order_id;
    if let Err(response) = fakes.enter("charge", order.to_string()).await {
        return response;
    }
    let captured = json!({"id": order, "order_id": order, "status": "captured"});
    let delay = fakes.world().charge_delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let hang = {
        let mut world = fakes.world();
        if let Some(existing) = world.payments.get(&order) {
            return match existing.status.as_str() {
                "cancelled" => problem(StatusCode::CONFLICT, "order-cancelled", json!({})),
                "declined" => problem(
                    StatusCode::PAYMENT_REQUIRED,
                    "card-declined",
                    json!({"decline_code": "card_declined"}),
                ),
                _ => (StatusCode::CREATED, Json(captured)).into_response(),
            };
        }
        let card = match world.methods.get(&body.payment_method_id) {
            Some((owner, card)) if *owner == body.user_id => *card,
            _ => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "payment-method-not-owned",
                    json!({}),
                );
            }
        };
        if world.processor_failures > 0 {
            world.processor_failures -= 1;
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "processor-unavailable",
                json!({}),
            );
        }
        let status = if card == Card::Declined {
            "declined"
        } else {
            "captured"
        };
        world.payments.insert(
            order,
            Payment {
                status: status.into(),
                amount: body.amount.amount,
                currency: body.amount.currency.clone(),
            },
        );
        if card == Card::Declined {
            return problem(
                StatusCode::PAYMENT_REQUIRED,
                "card-declined",
                json!({"decline_code": "card_declined"}),
            );
        }
        *world.captures.entry(order).or_default() += 1;
        world.hang_after_capture
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    (StatusCode::CREATED, Json(captured)).into_response()
}

async fn refund(
    State(fakes): State<Fakes>,
    headers: HeaderMap,
    Path(order): Path<Uuid>,
) -> Response {
    if let Err(response) = fakes.service_for(&headers, "payments") {
        return response;
    }
    if let Err(response) = fakes.enter("refund", order.to_string()).await {
        return response;
    }
    let mut world = fakes.world();
    let World {
        payments, refunds, ..
    } = &mut *world;
    let payment = payments.entry(order).or_insert_with(|| Payment {
        status: "cancelled".into(),
        amount: 0,
        currency: String::new(),
    });
    let status = match payment.status.as_str() {
        "captured" => {
            payment.status = "refunded".into();
            *refunds.entry(order).or_default() += 1;
            "refunded"
        }
        "refunded" => "refunded",
        _ => "nothing_to_refund",
    };
    Json(json!({"order_id": order, "status": status})).into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    client_id: String,
    client_secret: String,
    audience: String,
}

async fn service_token(State(fakes): State<Fakes>, Json(body): Json<TokenRequest>) -> Response {
    if let Err(response) = fakes.enter("identity", body.audience.clone()).await {
        return response;
    }
    if body.client_id != "orders" || body.client_secret != SECRET {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized", json!({}));
    }
    let token = fakes.issuer.service_token("orders", &body.audience);
    fakes
        .world()
        .service_tokens
        .insert(token.clone(), body.audience);
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 300})).into_response()
}
