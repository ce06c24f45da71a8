//! The shop's books after a crash run, read straight from the services' databases — the SQLite
//! files under the data dir (read-only), or the PostgreSQL databases `souk up --backend postgres`
//! made (only read) — and the invariants of DESIGN.md's checkout saga checked against them.
//!
//! Reading another service's tables is what no service may do; a test of the whole shop may, and
//! must: the simulated processor's ledger is the only witness of the money that really moved.
//! One reading for every check of the whole shop: the end-to-end crash harness
//! (`cli/tests/e2e/crash.rs`) and `souk chaos` (`bench/invariants.rs`).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// The invariants, each with its own list of violations.
pub const INVARIANTS: [&str; 7] = [
    "every accepted order ends confirmed or cancelled, once per key",
    "one capture per confirmed order, none kept for a cancelled one",
    "stock conserved, never negative, sold = confirmed lines, no hold left",
    "no order confirmed unless its stock was committed before",
    "every event emitted once and its effect applied once by each consumer",
    "orders hold what the cart held; carts emptied of confirmed orders",
    "history has one purchase per order, with its status",
];
const ENDS: usize = 0;
const MONEY: usize = 1;
const STOCK: usize = 2;
const COMMITTED: usize = 3;
const EVENTS: usize = 4;
const CART: usize = 5;
const HISTORY: usize = 6;

/// An order a client was told was accepted (202), and what its cart held when it checked out.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Its `Idempotency-Key`.
    pub key: String,
    /// The order id the 202 named.
    pub id: String,
    /// Product id → quantity.
    pub lines: BTreeMap<String, i64>,
}

/// A product the run put on sale, and how many units.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub stock: i64,
}

/// An order as orders stored it.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub user_id: String,
    pub status: String,
    pub cancel_reason: Option<String>,
    pub total: i64,
    /// When it last changed: for an order that ended, when it ended (Unix ms).
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct Charge {
    pub charge_id: String,
    pub outcome: String,
    pub amount: i64,
}

#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub status: String,
    pub charge_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StockRow {
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
    pub received: i64,
}

#[derive(Debug, Clone)]
pub struct Purchase {
    pub stage: i64,
    pub cancel_reason: Option<String>,
    pub payment_brand: Option<String>,
    pub refunded_at: Option<i64>,
}

/// An event in a producer's outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    pub subject: String,
}

/// Everything the checks read.
#[derive(Debug, Default)]
pub struct Books {
    pub orders: BTreeMap<String, OrderRow>,
    /// Order → product → quantity.
    pub lines: BTreeMap<String, BTreeMap<String, i64>>,
    /// Order → saga step.
    pub sagas: BTreeMap<String, String>,
    /// (user, key) → (state, the order id its stored 202 names).
    pub keys: BTreeMap<(String, String), (String, Option<String>)>,
    pub order_events: Vec<OutboxRow>,
    /// The processor's charges by idempotency key (payments uses the order id).
    pub charges: BTreeMap<String, Charge>,
    /// The processor's refunds: charge ids.
    pub processor_refunds: BTreeSet<String>,
    pub payments: BTreeMap<String, PaymentRow>,
    pub payment_events: Vec<OutboxRow>,
    pub stock: BTreeMap<String, StockRow>,
    /// Order → reservation state.
    pub reservations: BTreeMap<String, String>,
    /// Order → when its reservation last changed state (Unix ms).
    pub reservation_changed: BTreeMap<String, i64>,
    pub reservation_lines: BTreeMap<String, BTreeMap<String, i64>>,
    /// Consumer → the event ids in its inbox.
    pub inboxes: BTreeMap<String, BTreeSet<String>>,
    /// `consumer: event (error)` for every dead letter.
    pub dead_letters: Vec<String>,
    pub purchases: BTreeMap<String, Purchase>,
}

/// Where a shop keeps its books.
#[derive(Debug, Clone)]
pub enum Place {
    /// SQLite files under a data dir.
    Sqlite(std::path::PathBuf),
    /// PostgreSQL databases `<prefix><service>` on `server` (the cart's events: `<prefix>cart`).
    Postgres { server: String, prefix: String },
}

/// One service's database, read with the same SQL on either engine.
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Every row of `$sql` as `$t`, on either engine (a `?` on failure).
macro_rules! rows {
    ($db:expr, $sql:expr, $t:ty) => {
        match $db {
            Db::Sqlite(pool) => sqlx::query_as::<_, $t>($sql).fetch_all(pool).await,
            Db::Postgres(pool) => sqlx::query_as::<_, $t>($sql).fetch_all(pool).await,
        }
        .map_err(|e| format!("cannot read the books ({}): {e}", $sql))?
    };
}

impl Place {
    /// The database of `service` (`cart-events` for the cart's event bookkeeping).
    async fn open(&self, service: &str) -> Result<Db, String> {
        match self {
            Place::Sqlite(dir) => {
                let path = dir.join(format!("{service}.db"));
                let options = SqliteConnectOptions::new().filename(&path).read_only(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                Ok(Db::Sqlite(pool))
            }
            Place::Postgres { server, prefix } => {
                let name = if service == "cart-events" {
                    "cart"
                } else {
                    service
                };
                let (base, _) = server
                    .rsplit_once('/')
                    .ok_or_else(|| format!("{server} names no database"))?;
                let url = format!("{base}/{prefix}{name}");
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await
                    .map_err(|e| format!("cannot open {prefix}{name}: {e}"))?;
                Ok(Db::Postgres(pool))
            }
        }
    }
}

impl Db {
    async fn close(self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

type Row2 = (String, String);
/// `user_id, idem_key, state, status, body` of an idempotency key.
type KeyRow = (String, String, String, Option<i64>, Option<String>);
/// `order_id, stage, cancel_reason, payment_brand, refunded_at` of a purchase.
type PurchaseRow = (String, i64, Option<String>, Option<String>, Option<i64>);

impl Books {
    /// Reads the books of the shop at `place`.
    pub async fn read(place: &Place) -> Result<Books, String> {
        let mut books = Books::default();
        let db = place.open("orders").await?;
        books.read_orders(&db).await?;
        db.close().await;
        let db = place.open("payments").await?;
        books.read_payments(&db).await?;
        db.close().await;
        let db = place.open("inventory").await?;
        books.read_inventory(&db).await?;
        db.close().await;
        let db = place.open("history").await?;
        books.read_history(&db).await?;
        db.close().await;
        let db = place.open("cart-events").await?;
        books.read_consumer(&db).await?;
        db.close().await;
        Ok(books)
    }

    async fn read_orders(&mut self, db: &Db) -> Result<(), String> {
        let rows: Vec<(String, String, String, Option<String>, i64, i64)> = rows!(
            db,
            "SELECT id, user_id, status, cancel_reason, total_amount, updated_at FROM orders",
            (String, String, String, Option<String>, i64, i64)
        );
        for (id, user_id, status, cancel_reason, total, updated_at) in rows {
            let row = OrderRow {
                user_id,
                status,
                cancel_reason,
                total,
                updated_at,
            };
            self.orders.insert(id, row);
        }
        let lines: Vec<(String, String, i64)> = rows!(
            db,
            "SELECT order_id, product_id, quantity FROM order_lines",
            (String, String, i64)
        );
        for (order, product, quantity) in lines {
            self.lines
                .entry(order)
                .or_default()
                .insert(product, quantity);
        }
        let sagas: Vec<Row2> = rows!(db, "SELECT order_id, step FROM sagas", Row2);
        self.sagas = sagas.into_iter().collect();
        let keys: Vec<KeyRow> = rows!(
            db,
            "SELECT user_id, idem_key, state, status, body FROM idempotency_keys",
            KeyRow
        );
        for (user, key, state, status, body) in keys {
            let id = (status == Some(202))
                .then(|| body.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok()))
                .flatten()
                .and_then(|b| b["id"].as_str().map(str::to_owned));
            self.keys.insert((user, key), (state, id));
        }
        self.order_events = outbox(db).await?;
        Ok(())
    }

    async fn read_payments(&mut self, db: &Db) -> Result<(), String> {
        let charges: Vec<(String, String, String, i64)> = rows!(
            db,
            "SELECT idempotency_key, charge_id, outcome, amount FROM processor_charges",
            (String, String, String, i64)
        );
        for (key, charge_id, outcome, amount) in charges {
            let charge = Charge {
                charge_id,
                outcome,
                amount,
            };
            self.charges.insert(key, charge);
        }
        let refunds: Vec<(String,)> =
            rows!(db, "SELECT charge_id FROM processor_refunds", (String,));
        self.processor_refunds = refunds.into_iter().map(|(c,)| c).collect();
        let payments: Vec<(String, String, Option<String>)> = rows!(
            db,
            "SELECT order_id, status, processor_charge_id FROM payments",
            (String, String, Option<String>)
        );
        for (order, status, charge_id) in payments {
            self.payments
                .insert(order, PaymentRow { status, charge_id });
        }
        self.payment_events = outbox(db).await?;
        Ok(())
    }

    async fn read_inventory(&mut self, db: &Db) -> Result<(), String> {
        let stock: Vec<(String, i64, i64, i64, i64)> = rows!(
            db,
            "SELECT product_id, available, reserved, sold, received FROM stock",
            (String, i64, i64, i64, i64)
        );
        for (product, available, reserved, sold, received) in stock {
            let row = StockRow {
                available,
                reserved,
                sold,
                received,
            };
            self.stock.insert(product, row);
        }
        let reservations: Vec<(String, String, i64)> = rows!(
            db,
            "SELECT order_id, state, updated_at FROM reservations",
            (String, String, i64)
        );
        for (order, state, updated_at) in reservations {
            self.reservation_changed.insert(order.clone(), updated_at);
            self.reservations.insert(order, state);
        }
        let lines: Vec<(String, String, i64)> = rows!(
            db,
            "SELECT order_id, product_id, quantity FROM reservation_lines",
            (String, String, i64)
        );
        for (order, product, quantity) in lines {
            self.reservation_lines
                .entry(order)
                .or_default()
                .insert(product, quantity);
        }
        self.read_consumer(db).await
    }

    async fn read_history(&mut self, db: &Db) -> Result<(), String> {
        let rows: Vec<PurchaseRow> = rows!(
            db,
            "SELECT order_id, stage, cancel_reason, payment_brand, refunded_at FROM purchases",
            PurchaseRow
        );
        for (order, stage, cancel_reason, payment_brand, refunded_at) in rows {
            let purchase = Purchase {
                stage,
                cancel_reason,
                payment_brand,
                refunded_at,
            };
            self.purchases.insert(order, purchase);
        }
        self.read_consumer(db).await
    }

    /// A consuming service's inbox and dead letters.
    async fn read_consumer(&mut self, db: &Db) -> Result<(), String> {
        let inbox: Vec<Row2> = rows!(db, "SELECT consumer, event_id FROM event_inbox", Row2);
        for (consumer, event) in inbox {
            self.inboxes.entry(consumer).or_default().insert(event);
        }
        let dead: Vec<(String, String, String)> = rows!(
            db,
            "SELECT consumer, event_id, error FROM event_dead_letters",
            (String, String, String)
        );
        self.dead_letters.extend(
            dead.into_iter()
                .map(|(consumer, event, error)| format!("{consumer}: event {event} ({error})")),
        );
        Ok(())
    }

    /// Whether every order has ended and every consumer has had every event (or parked it):
    /// nothing is left moving, the books can be checked.
    pub fn quiet(&self) -> bool {
        let ended = self.orders.values().all(|o| o.status != "pending");
        let parked = self.dead_letters.len();
        ended
            && parked == 0
            && ["inventory.orders", "cart.orders", "history.orders"]
                .iter()
                .all(|c| self.has_all(c, &self.order_events))
            && self.has_all("history.payments", &self.payment_events)
    }

    fn has_all(&self, consumer: &str, events: &[OutboxRow]) -> bool {
        let inbox = self.inboxes.get(consumer);
        events
            .iter()
            .all(|e| inbox.is_some_and(|i| i.contains(&e.id)))
    }
}

async fn outbox(db: &Db) -> Result<Vec<OutboxRow>, String> {
    let rows: Vec<(String, String, String)> = rows!(
        db,
        "SELECT id, type, subject FROM outbox ORDER BY seq",
        (String, String, String)
    );
    Ok(rows
        .into_iter()
        .map(|(id, kind, subject)| OutboxRow { id, kind, subject })
        .collect())
}

/// What the shoppers know, to hold the books against.
#[derive(Debug)]
pub struct Known<'a> {
    pub placed: &'a [Placed],
    /// The shoppers' user ids: nobody else checks out.
    pub users: &'a [String],
    pub products: &'a [Product],
    /// Checkouts refused for good, by status and problem.
    pub refused: &'a BTreeMap<String, u32>,
    /// Order id → status, as its owner read it through the gateway after the drain.
    pub seen: &'a BTreeMap<String, String>,
    /// Orders whose products were still in their shopper's cart after the drain.
    pub carts_not_emptied: &'a [String],
}

/// The violations found, per invariant (indexes into [`INVARIANTS`]).
pub type Violations = [Vec<String>; 7];

/// Checks every invariant.
pub fn check(books: &Books, known: &Known<'_>) -> Violations {
    let mut v = books_only(books, &[]);
    ends_known(books, known, &mut v[ENDS]);
    stock_known(books, known, &mut v[STOCK]);
    cart(books, known, &mut v[CART]);
    v
}

/// Checks what the books say of themselves, whoever the clients were, and that every order in
/// `accepted` (ids a client was told were accepted) is stored and ended: what `souk chaos` can
/// hold a shop to, knowing no more of its shoppers than that. Every invariant but the cart's
/// (which needs what the carts held), each with its violations.
pub fn check_books(books: &Books, accepted: &[String]) -> Vec<(&'static str, Vec<String>)> {
    INVARIANTS
        .into_iter()
        .zip(books_only(books, accepted))
        .enumerate()
        .filter(|(i, _)| *i != CART)
        .map(|(_, checked)| checked)
        .collect()
}

fn books_only(books: &Books, accepted: &[String]) -> Violations {
    let mut v: Violations = Default::default();
    ends(books, &mut v[ENDS]);
    for id in accepted {
        if !books.orders.contains_key(id) {
            v[ENDS].push(format!("accepted order {id} is not stored"));
        }
    }
    money(books, &mut v[MONEY]);
    stock(books, &mut v[STOCK]);
    committed(books, &mut v[COMMITTED]);
    events(books, &mut v[EVENTS]);
    history(books, &mut v[HISTORY]);
    v
}

fn ends(books: &Books, v: &mut Vec<String>) {
    for (id, order) in &books.orders {
        if order.status == "pending" {
            v.push(format!("order {id} is still pending"));
        }
        if books.sagas.get(id) != Some(&order.status) {
            v.push(format!(
                "order {id} is {} but its saga is at {:?}",
                order.status,
                books.sagas.get(id)
            ));
        }
        let keys = books
            .keys
            .values()
            .filter(|(_, answer)| answer.as_deref() == Some(id))
            .count();
        if keys != 1 {
            v.push(format!(
                "order {id} is the answer of {keys} idempotency keys"
            ));
        }
    }
}

fn ends_known(books: &Books, known: &Known<'_>, v: &mut Vec<String>) {
    for (id, order) in &books.orders {
        if !known.users.contains(&order.user_id) {
            v.push(format!(
                "order {id} belongs to {}, no shopper",
                order.user_id
            ));
        }
    }
    for placed in known.placed {
        let Some(order) = books.orders.get(&placed.id) else {
            v.push(format!("accepted order {} is not stored", placed.id));
            continue;
        };
        match known.seen.get(&placed.id) {
            Some(seen) if *seen == order.status => {}
            seen => v.push(format!(
                "order {}: its owner reads {seen:?}, orders stores {}",
                placed.id, order.status
            )),
        }
        let key = (order.user_id.clone(), placed.key.clone());
        match books.keys.get(&key) {
            Some((_, Some(answer))) if *answer == placed.id => {}
            other => v.push(format!(
                "key {} answered {} to its client but stores {other:?}",
                placed.key, placed.id
            )),
        }
    }
}

fn money(books: &Books, v: &mut Vec<String>) {
    for (id, order) in &books.orders {
        let charge = books.charges.get(id);
        let payment = books.payments.get(id);
        let approved = charge.filter(|c| c.outcome == "approved");
        let refunded = approved.is_some_and(|c| books.processor_refunds.contains(&c.charge_id));
        match order.status.as_str() {
            "confirmed" => {
                match approved {
                    Some(c) if c.amount == order.total && !refunded => {}
                    _ => v.push(format!(
                        "confirmed order {id} (total {}): processor charge {charge:?}, refunded {refunded}",
                        order.total
                    )),
                }
                let recorded = payment.is_some_and(|p| {
                    p.status == "captured" && p.charge_id == approved.map(|c| c.charge_id.clone())
                });
                if !recorded {
                    v.push(format!(
                        "confirmed order {id}: payments records {payment:?}"
                    ));
                }
            }
            "cancelled" => {
                if approved.is_some() && !refunded {
                    v.push(format!(
                        "cancelled order {id} ({:?}) keeps a capture: {charge:?}",
                        order.cancel_reason
                    ));
                }
                let status = payment.map(|p| p.status.as_str());
                let expected = match (approved.is_some(), status) {
                    // Cancelled: a tombstone whose refund swept a charge payments never recorded.
                    (true, Some("refunded" | "cancelled")) => true,
                    (false, None | Some("declined" | "cancelled")) => true,
                    _ => false,
                };
                if !expected {
                    v.push(format!(
                        "cancelled order {id}: payments records {payment:?}, processor {charge:?}"
                    ));
                }
            }
            _ => {}
        }
    }
    for key in books.charges.keys() {
        if !books.orders.contains_key(key) {
            v.push(format!(
                "the processor charged under {key}, which is no order"
            ));
        }
    }
}

fn stock(books: &Books, v: &mut Vec<String>) {
    for (product, s) in &books.stock {
        let parts = [s.available, s.reserved, s.sold, s.received];
        if parts.iter().any(|&n| n < 0) || s.received != s.available + s.reserved + s.sold {
            v.push(format!("stock of {product} does not add up: {s:?}"));
        }
    }
    let none = BTreeMap::new();
    for (id, order) in &books.orders {
        let lines = books.lines.get(id).unwrap_or(&none);
        let reservation = books.reservations.get(id).map(String::as_str);
        match order.status.as_str() {
            "confirmed" => {
                let held = books.reservation_lines.get(id).unwrap_or(&none);
                if reservation != Some("committed") || held != lines {
                    v.push(format!(
                        "confirmed order {id}: reservation {reservation:?} of {held:?}, order lines {lines:?}"
                    ));
                }
            }
            "cancelled" if !matches!(reservation, None | Some("released" | "expired")) => {
                v.push(format!("cancelled order {id}: reservation {reservation:?}"));
            }
            _ => {}
        }
    }
}

fn stock_known(books: &Books, known: &Known<'_>, v: &mut Vec<String>) {
    let mut sold: BTreeMap<&str, i64> = BTreeMap::new();
    for (id, order) in &books.orders {
        if order.status == "confirmed" {
            for (product, quantity) in books.lines.get(id).into_iter().flatten() {
                *sold.entry(product.as_str()).or_default() += quantity;
            }
        }
    }
    for product in known.products {
        let Some(s) = books.stock.get(&product.id) else {
            v.push(format!("no stock row for {}", product.sku));
            continue;
        };
        let confirmed = sold.get(product.id.as_str()).copied().unwrap_or(0);
        if s.received != product.stock || s.sold != confirmed || s.reserved != 0 {
            v.push(format!(
                "{}: put on sale {}, confirmed orders bought {confirmed}, stock {s:?}",
                product.sku, product.stock
            ));
        }
    }
}

/// A confirmed order's reservation was committed, and no later than the order was confirmed:
/// the saga's synchronous commit, not inventory's reading of `order_confirmed` afterwards.
fn committed(books: &Books, v: &mut Vec<String>) {
    for (id, order) in &books.orders {
        if order.status != "confirmed" {
            continue;
        }
        let state = books.reservations.get(id).map(String::as_str);
        let changed = books.reservation_changed.get(id).copied();
        match (state, changed) {
            (Some("committed"), Some(at)) if at <= order.updated_at => {}
            _ => v.push(format!(
                "confirmed order {id} (at {}): reservation {state:?}, changed at {changed:?}",
                order.updated_at
            )),
        }
    }
}

fn events(books: &Books, v: &mut Vec<String>) {
    let count = |events: &[OutboxRow], subject: &str, kind: &str| {
        events
            .iter()
            .filter(|e| e.subject == subject && e.kind.contains(kind))
            .count()
    };
    for (id, order) in &books.orders {
        let confirmed = usize::from(order.status == "confirmed");
        let cancelled = usize::from(order.status == "cancelled");
        let seen = [
            count(&books.order_events, id, ".order_placed."),
            count(&books.order_events, id, ".order_confirmed."),
            count(&books.order_events, id, ".order_cancelled."),
        ];
        if seen != [1, confirmed, cancelled] {
            v.push(format!(
                "order {id} ({}): placed, confirmed, cancelled events {seen:?}",
                order.status
            ));
        }
        let status = books.payments.get(id).map(|p| p.status.as_str());
        let captured = usize::from(matches!(status, Some("captured" | "refunded")));
        let refunded = usize::from(status == Some("refunded"));
        let seen = [
            count(&books.payment_events, id, ".payment_captured."),
            count(&books.payment_events, id, ".payment_refunded."),
        ];
        if seen != [captured, refunded] {
            v.push(format!(
                "order {id}: payment {status:?} but captured, refunded events {seen:?}"
            ));
        }
    }
    for consumer in ["inventory.orders", "cart.orders", "history.orders"] {
        missing(books, consumer, &books.order_events, v);
    }
    missing(books, "history.payments", &books.payment_events, v);
    v.extend(
        books
            .dead_letters
            .iter()
            .map(|d| format!("dead letter {d}")),
    );
}

fn missing(books: &Books, consumer: &str, events: &[OutboxRow], v: &mut Vec<String>) {
    let inbox = books.inboxes.get(consumer);
    for event in events {
        if !inbox.is_some_and(|i| i.contains(&event.id)) {
            v.push(format!(
                "{consumer} never handled {} {} of {}",
                event.kind, event.id, event.subject
            ));
        }
    }
}

fn cart(books: &Books, known: &Known<'_>, v: &mut Vec<String>) {
    for placed in known.placed {
        let lines = books.lines.get(&placed.id);
        if lines != Some(&placed.lines) {
            v.push(format!(
                "order {} holds {lines:?}, the cart held {:?}",
                placed.id, placed.lines
            ));
        }
    }
    if let Some(n) = known.refused.get("422 cart-empty") {
        v.push(format!("{n} checkouts found the cart just filled empty"));
    }
    v.extend(known.carts_not_emptied.iter().cloned());
}

fn history(books: &Books, v: &mut Vec<String>) {
    for (id, order) in &books.orders {
        let Some(p) = books.purchases.get(id) else {
            v.push(format!("order {id} ({}) has no purchase", order.status));
            continue;
        };
        let refunded = books
            .payments
            .get(id)
            .is_some_and(|p| p.status == "refunded");
        let right = match order.status.as_str() {
            "confirmed" => p.stage == 2 && p.payment_brand.is_some() && p.refunded_at.is_none(),
            "cancelled" => {
                p.stage == 3
                    && p.cancel_reason == order.cancel_reason
                    && p.refunded_at.is_some() == refunded
            }
            _ => true,
        };
        if !right {
            v.push(format!(
                "order {id} ({}, {:?}, refunded {refunded}) has purchase {p:?}",
                order.status, order.cancel_reason
            ));
        }
    }
    for id in books.purchases.keys() {
        if !books.orders.contains_key(id) {
            v.push(format!("purchase {id} is no order"));
        }
    }
}

/// The checks themselves, on books made up here: consistent books pass, and each kind of
/// damage is reported under its own invariant.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod checks {
    use super::*;

    const P: &str = "product-1";

    fn order(status: &str, reason: Option<&str>) -> OrderRow {
        OrderRow {
            user_id: "u".into(),
            status: status.into(),
            cancel_reason: reason.map(str::to_owned),
            total: 500,
            updated_at: 2_000,
        }
    }

    fn event(n: usize, kind: &str, subject: &str) -> OutboxRow {
        OutboxRow {
            id: format!("e{n}"),
            kind: format!("souk.x.{kind}.v1"),
            subject: subject.into(),
        }
    }

    /// `ok` confirmed (2 units of P) and `no` cancelled after its capture was refunded.
    fn books() -> Books {
        let mut b = Books::default();
        let line = BTreeMap::from([(P.to_owned(), 2)]);
        b.orders.insert("ok".into(), order("confirmed", None));
        b.orders
            .insert("no".into(), order("cancelled", Some("timeout")));
        for id in ["ok", "no"] {
            b.lines.insert(id.into(), line.clone());
            let state = if id == "ok" { "confirmed" } else { "cancelled" };
            b.sagas.insert(id.into(), state.into());
            b.keys.insert(
                ("u".into(), format!("k-{id}")),
                ("done".into(), Some(id.into())),
            );
            b.charges.insert(
                id.into(),
                Charge {
                    charge_id: format!("ch-{id}"),
                    outcome: "approved".into(),
                    amount: 500,
                },
            );
        }
        b.processor_refunds.insert("ch-no".into());
        b.payments.insert(
            "ok".into(),
            PaymentRow {
                status: "captured".into(),
                charge_id: Some("ch-ok".into()),
            },
        );
        b.payments.insert(
            "no".into(),
            PaymentRow {
                status: "refunded".into(),
                charge_id: Some("ch-no".into()),
            },
        );
        b.order_events = vec![
            event(1, "order_placed", "ok"),
            event(2, "order_placed", "no"),
            event(3, "order_confirmed", "ok"),
            event(4, "order_cancelled", "no"),
        ];
        b.payment_events = vec![
            event(5, "payment_captured", "ok"),
            event(6, "payment_captured", "no"),
            event(7, "payment_refunded", "no"),
        ];
        for consumer in ["inventory.orders", "cart.orders", "history.orders"] {
            let ids = b.order_events.iter().map(|e| e.id.clone()).collect();
            b.inboxes.insert(consumer.into(), ids);
        }
        let ids = b.payment_events.iter().map(|e| e.id.clone()).collect();
        b.inboxes.insert("history.payments".into(), ids);
        b.stock.insert(
            P.into(),
            StockRow {
                available: 8,
                reserved: 0,
                sold: 2,
                received: 10,
            },
        );
        b.reservations.insert("ok".into(), "committed".into());
        b.reservations.insert("no".into(), "released".into());
        b.reservation_changed.insert("ok".into(), 1_990);
        b.reservation_changed.insert("no".into(), 1_990);
        b.reservation_lines.insert("ok".into(), line.clone());
        b.reservation_lines.insert("no".into(), line);
        let purchase = |stage, reason: Option<&str>, refunded| Purchase {
            stage,
            cancel_reason: reason.map(str::to_owned),
            payment_brand: Some("visa".into()),
            refunded_at: refunded,
        };
        b.purchases.insert("ok".into(), purchase(2, None, None));
        b.purchases
            .insert("no".into(), purchase(3, Some("timeout"), Some(1)));
        b
    }

    fn found(b: &Books) -> Vec<usize> {
        let placed = ["ok", "no"].map(|id| Placed {
            key: format!("k-{id}"),
            id: id.into(),
            lines: BTreeMap::from([(P.to_owned(), 2)]),
        });
        let products = [Product {
            id: P.into(),
            sku: "SKU".into(),
            stock: 10,
        }];
        let seen = BTreeMap::from([
            ("ok".to_owned(), "confirmed".to_owned()),
            ("no".to_owned(), "cancelled".to_owned()),
        ]);
        let known = Known {
            placed: &placed,
            users: &["u".to_owned()],
            products: &products,
            refused: &BTreeMap::new(),
            seen: &seen,
            carts_not_emptied: &[],
        };
        let v = check(b, &known);
        (0..v.len()).filter(|&i| !v[i].is_empty()).collect()
    }

    #[test]
    fn consistent_books_pass() {
        assert_eq!(found(&books()), Vec::<usize>::new());
        assert!(books().quiet());
    }

    #[test]
    fn the_books_alone_hold_an_accepted_order_to_being_stored() {
        let books = books();
        let clean = check_books(&books, &["ok".to_owned(), "no".to_owned()]);
        assert_eq!(clean.len(), INVARIANTS.len() - 1, "all but the cart's");
        assert!(clean.iter().all(|(_, v)| v.is_empty()), "{clean:?}");
        let lost = check_books(&books, &["gone".to_owned()]);
        assert_eq!(lost[ENDS].1, ["accepted order gone is not stored"]);
        let mut damaged = books;
        damaged.purchases.remove("ok");
        let history = check_books(&damaged, &[]);
        assert!(
            history
                .iter()
                .any(|(i, v)| *i == INVARIANTS[HISTORY] && !v.is_empty())
        );
    }

    #[test]
    fn each_kind_of_damage_is_reported_under_its_invariant() {
        type Damage = fn(&mut Books);
        let cases: [(&str, usize, Damage); 9] = [
            ("pending order", ENDS, |b| {
                b.orders.get_mut("ok").unwrap().status = "pending".into()
            }),
            ("capture kept for a cancelled order", MONEY, |b| {
                b.processor_refunds.clear();
                b.payments.get_mut("no").unwrap().status = "captured".into();
            }),
            ("confirmed order never charged", MONEY, |b| {
                b.charges.remove("ok");
            }),
            ("sold twice", STOCK, |b| {
                let s = b.stock.get_mut(P).unwrap();
                s.sold = 4;
                s.available = 6;
            }),
            ("hold left", STOCK, |b| {
                b.reservations.insert("no".into(), "held".into());
            }),
            ("confirmed before its stock was committed", COMMITTED, |b| {
                b.reservation_changed.insert("ok".into(), 2_500);
            }),
            ("an event never consumed", EVENTS, |b| {
                b.inboxes.get_mut("inventory.orders").unwrap().remove("e3");
            }),
            ("order lines not the cart's", CART, |b| {
                b.lines.get_mut("ok").unwrap().insert(P.into(), 3);
            }),
            ("purchase with the wrong status", HISTORY, |b| {
                b.purchases.get_mut("no").unwrap().stage = 2;
            }),
        ];
        for (what, invariant, damage) in cases {
            let mut b = books();
            damage(&mut b);
            assert!(found(&b).contains(&invariant), "{what}: {:?}", found(&b));
        }
    }
}
