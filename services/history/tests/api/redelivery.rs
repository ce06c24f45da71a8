//! Issue 7 (b), history's half: event delivery duplicated and re-ordered across orders by a test
//! transport, and the projection still equals the source of truth.
//!
//! A seeded generator writes the history of many orders — each one's events as orders and
//! payments would publish them (placed, then confirmed or cancelled; captured, refunded or
//! declined) — and the final purchase each must become. [`ReplayFeed`] serves each producer's
//! events in the chassis feed's wire format, with the events of different orders interleaved at
//! random while each order's own events keep their order (the guarantee a producer gives), and
//! a third of the events delivered two or three times (a copy may come any time after the
//! first: at-least-once). History's two consumers read the two feeds independently, so orders'
//! and payments' events also cross each other in every way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use souk_chassis::Shutdown;
use souk_chassis::client::ServiceClient;
use souk_chassis::events::{self, Event};
use souk_chassis::test_util::{
    ReplayFeed, SeededRng, TestDatabase, TestIssuer, TestServer, consumer_position, inbox_count,
};
use souk_history::{Config, ConsumerConfig, Producers};
use uuid::Uuid;

use crate::helpers::read_json;

/// Orders in the generated history.
const ORDERS: usize = 240;
/// Shoppers they belong to.
const USERS: usize = 8;
/// The generator's seed: the same orders, fates, interleaving and copies on every run.
const SEED: u64 = 0x0007_5EED_0B5E_55ED;
/// How long the consumers may take to read both feeds to their end.
const PATIENCE: Duration = Duration::from_secs(60);

souk_chassis::backend_tests! { TestDatabase::create;
    async fn duplicated_and_reordered_delivery_still_projects_the_truth(db) {
        let started = Instant::now();
        let mut rng = SeededRng(SEED);
        let (orders_events, payments_events, truth) = generate(&mut rng);
        let orders = ReplayFeed::schedule(orders_events, &mut rng);
        let payments = ReplayFeed::schedule(payments_events, &mut rng);

        let issuer = TestIssuer::start().await;
        let config = Config {
            database: db.config.clone(),
            auth: issuer.auth_config("history"),
            consumers: ConsumerConfig {
                retry_base_ms: 20,
                retry_max_ms: 500,
                long_poll_ms: 200,
                ..ConsumerConfig::default()
            },
            ..Config::default()
        };
        let timeout = Duration::from_secs(5);
        let producers = Producers {
            orders: ServiceClient::in_process("orders", orders.router(), timeout),
            payments: ServiceClient::in_process("payments", payments.router(), timeout),
            identity: ServiceClient::in_process("identity", issuer.identity_router("history"), timeout),
        };
        let (stop, shutdown) = Shutdown::manual(Duration::from_secs(2));
        let history = souk_history::build_with(&config, producers, &shutdown).await.unwrap();
        let server = TestServer::spawn(history.router.clone()).await;
        let database = history.store.database();
        for (consumer, feed) in [("history.orders", &orders), ("history.payments", &payments)] {
            let end = i64::try_from(feed.deliveries.len()).unwrap();
            let waited = Instant::now();
            while consumer_position(database, consumer).await < end {
                assert!(waited.elapsed() < PATIENCE, "{consumer} did not reach the end of its feed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for (consumer, feed) in [("history.orders", &orders), ("history.payments", &payments)] {
            let parked = events::dead_letters(database, consumer).await.unwrap();
            assert!(parked.is_empty(), "{consumer} parked {parked:?}");
            assert_eq!(inbox_count(database, consumer).await, feed.distinct, "{consumer} handled each event once");
        }

        // Each shopper's history, as they read it, against the truth.
        let mut mismatches = Vec::new();
        let mut shown = 0;
        for user in 0..USERS {
            let user = format!("user-{user}");
            let purchases = history_of(&server, &issuer.user_token(&user, "user")).await;
            shown += purchases.len();
            let expected: BTreeMap<&str, &Value> = truth
                .iter()
                .filter(|t| t.user == user)
                .map(|t| (t.order.as_str(), &t.purchase))
                .collect();
            let actual: BTreeMap<&str, &Value> = purchases
                .iter()
                .map(|p| (p["order_id"].as_str().unwrap(), p))
                .collect();
            for (order, want) in &expected {
                match actual.get(order) {
                    Some(got) if got == want => {}
                    got => mismatches.push(format!("{order}: want {want}, got {got:?}")),
                }
            }
            mismatches.extend(actual.keys().filter(|o| !expected.contains_key(*o)).map(|o| format!("{o}: not in the truth")));
        }
        let delivered = orders.deliveries.len() + payments.deliveries.len();
        let distinct = orders.distinct + payments.distinct;
        println!(
            "history redelivery ({}): {ORDERS} orders of {USERS} users, {distinct} events, {delivered} \
             deliveries ({} duplicates), {shown} purchases shown, mismatches {}; took {:.1?}",
            database.engine(),
            delivered - distinct,
            mismatches.len(),
            started.elapsed(),
        );
        assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
        assert_eq!(shown, ORDERS);
        stop.trigger();
        tokio::time::timeout(PATIENCE, history.stopped()).await.expect("the consumers stop");
    }
}

/// Every purchase the bearer of `token` sees, following the cursors.
async fn history_of(server: &TestServer, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = "/v1/history?limit=100".to_owned();
    loop {
        let response = server
            .client
            .get(server.url(&path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (status, page) = read_json(response).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/history?limit=100&cursor={cursor}"),
            None => return items,
        }
    }
}

/// What one order should end as.
struct Truth {
    order: String,
    user: String,
    purchase: Value,
}

/// How an order's saga ended (or where it stands).
#[derive(Debug, Clone, Copy)]
enum Fate {
    Confirmed,
    Declined,
    OutOfStock,
    /// Captured, then the saga gave up (the answer was lost): refunded and cancelled.
    RefundedTimeout,
    /// Still running.
    Pending,
    /// Still running, already paid.
    PaidPending,
}

/// Each order's events by producer (orders', payments'), in the order that producer published
/// them, and the purchase each order must become.
fn generate(rng: &mut SeededRng) -> (Vec<Vec<Event>>, Vec<Vec<Event>>, Vec<Truth>) {
    let fates = [
        Fate::Confirmed,
        Fate::Confirmed,
        Fate::Confirmed,
        Fate::Declined,
        Fate::OutOfStock,
        Fate::RefundedTimeout,
        Fate::Pending,
        Fate::PaidPending,
    ];
    let (mut orders, mut payments, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..ORDERS {
        let fate = fates[rng.below(fates.len())];
        let order = rng.uuid();
        let user = format!("user-{}", rng.below(USERS));
        let placed = u64::try_from(n).unwrap() * 11;
        let (lines, shown, total) = lines(rng);
        let data = json!({
            "order_id": order, "user_id": user, "lines": lines, "total": total,
            "created_at": at(placed),
        });
        let event = |producer: &str, name: &str, extra: Value| {
            let mut data = data.clone();
            data.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            Event::new(
                producer,
                &format!("souk.{producer}.{name}.v1"),
                order.to_string(),
                data,
            )
        };
        let card = json!({"id": Uuid::now_v7(), "brand": "visa", "last4": format!("{:04}", rng.below(10_000))});
        let captured = event(
            "payments",
            "payment_captured",
            json!({"payment_method": card, "captured_at": at(placed + 2)}),
        );
        let refunded = event(
            "payments",
            "payment_refunded",
            json!({"refunded_at": at(placed + 9)}),
        );
        let declined = event(
            "payments",
            "payment_declined",
            json!({"decline_code": "card_declined"}),
        );
        let confirmed = event(
            "orders",
            "order_confirmed",
            json!({"confirmed_at": at(placed + 3)}),
        );
        let cancelled = |reason: &str| {
            event(
                "orders",
                "order_cancelled",
                json!({"reason": reason, "cancelled_at": at(placed + 8)}),
            )
        };
        let mut purchase = json!({
            "order_id": order, "status": "pending", "cancel_reason": null, "lines": shown,
            "total": total, "payment": null, "placed_at": at(placed), "confirmed_at": null,
            "refunded_at": null,
        });
        let paid = json!({"brand": "visa", "last4": card["last4"]});
        let mut of_orders = vec![event("orders", "order_placed", json!({}))];
        let of_payments = match fate {
            Fate::Confirmed => {
                of_orders.push(confirmed);
                purchase["status"] = json!("confirmed");
                purchase["confirmed_at"] = json!(at(placed + 3));
                purchase["payment"] = paid;
                vec![captured]
            }
            Fate::Declined | Fate::OutOfStock => {
                let reason = if matches!(fate, Fate::Declined) {
                    "payment_declined"
                } else {
                    "out_of_stock"
                };
                of_orders.push(cancelled(reason));
                purchase["status"] = json!("cancelled");
                purchase["cancel_reason"] = json!(reason);
                if matches!(fate, Fate::Declined) {
                    vec![declined]
                } else {
                    vec![]
                }
            }
            Fate::RefundedTimeout => {
                of_orders.push(cancelled("timeout"));
                purchase["status"] = json!("cancelled");
                purchase["cancel_reason"] = json!("timeout");
                purchase["payment"] = paid;
                purchase["refunded_at"] = json!(at(placed + 9));
                vec![captured, refunded]
            }
            Fate::Pending => vec![],
            Fate::PaidPending => {
                purchase["payment"] = paid;
                vec![captured]
            }
        };
        orders.push(of_orders);
        payments.push(of_payments);
        truth.push(Truth {
            order: order.to_string(),
            user,
            purchase,
        });
    }
    (orders, payments, truth)
}

/// One to three lines: as orders writes them, as history shows them, and their total.
fn lines(rng: &mut SeededRng) -> (Value, Value, Value) {
    let usd = |amount: usize| json!({"amount": amount, "currency": "USD"});
    let (mut written, mut shown, mut total) = (Vec::new(), Vec::new(), 0);
    for i in 0..1 + rng.below(3) {
        let (product, quantity, price) = (rng.uuid(), 1 + rng.below(5), 100 + rng.below(5000));
        total += quantity * price;
        let name = format!("Product {i}");
        written.push(
            json!({"product_id": product, "sku": format!("SKU-{i}"), "name": name,
            "quantity": quantity, "unit_price": usd(price), "line_total": usd(quantity * price)}),
        );
        shown.push(
            json!({"product_id": product, "name": name, "quantity": quantity,
            "unit_price": usd(price), "line_total": usd(quantity * price)}),
        );
    }
    (json!(written), json!(shown), usd(total))
}

/// `seconds` after 2026-11-30T08:00:00Z, as producers write times.
fn at(seconds: u64) -> String {
    let s = 8 * 3600 + seconds;
    format!(
        "2026-11-30T{:02}:{:02}:{:02}.000Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}
