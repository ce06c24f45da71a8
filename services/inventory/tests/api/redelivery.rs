//! Issue 7 (b), inventory's half: orders' events delivered duplicated and re-ordered across
//! orders by a test transport, over real reservations, and stock still equals the truth.
//!
//! Many orders reserve stock through the API, as orders' saga does; a seeded generator decides
//! how each ends — confirmed; cancelled after the saga released the hold itself (the event then
//! repeats the release); cancelled with the hold still there; cancelled out of stock, never
//! reserved (the release leaves a tombstone); or still running, no event yet. [`ReplayFeed`]
//! serves orders' events (placed, then confirmed or cancelled) in the chassis feed's wire format,
//! different orders' events interleaved at random while each order's keep their order, and a
//! third of the events delivered two or three times, a copy anywhere after the first.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use souk_chassis::Shutdown;
use souk_chassis::client::ServiceClient;
use souk_chassis::events::{self, Event};
use souk_chassis::test_util::{ReplayFeed, SeededRng, consumer_position, inbox_count};
use souk_inventory::domain::ReservationState;
use uuid::Uuid;

use crate::helpers::{line, spawn_unsynced};

/// Orders in the generated history.
const ORDERS: usize = 150;
/// Products they buy from.
const PRODUCTS: usize = 6;
/// Units of each product on sale at the start.
const RECEIVED: i64 = 1_000;
/// The generator's seed: the same fates, interleaving and copies on every run.
const SEED: u64 = 0x0007_1A7E_57C0_C4ED;
/// How long the consumer may take to read the feed to its end.
const PATIENCE: Duration = Duration::from_secs(60);

/// How an order's saga ended (or where it stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Confirmed,
    /// The saga released the hold, then said `order_cancelled`.
    ReleasedThenCancelled,
    /// `order_cancelled` is what gives the hold back.
    Cancelled,
    /// Never reserved (out of stock): `order_cancelled` for an order inventory never held.
    NeverReserved,
    /// Still running: the hold stays.
    Held,
}

souk_chassis::backend_tests! { spawn_unsynced;
    async fn duplicated_and_reordered_order_events_leave_stock_as_the_truth(app) {
        let started = Instant::now();
        let mut rng = SeededRng(SEED);
        let mut products = Vec::new();
        for _ in 0..PRODUCTS {
            products.push(app.new_product(RECEIVED).await);
        }
        let fates = [
            Fate::Confirmed, Fate::Confirmed, Fate::Confirmed, Fate::ReleasedThenCancelled,
            Fate::Cancelled, Fate::Cancelled, Fate::NeverReserved, Fate::Held,
        ];
        let mut sold: BTreeMap<Uuid, i64> = products.iter().map(|p| (*p, 0)).collect();
        let mut reserved = sold.clone();
        let mut per_order = Vec::new();
        let mut expected_states = Vec::new();
        for _ in 0..ORDERS {
            let fate = fates[rng.below(fates.len())];
            let order = Uuid::now_v7();
            let mut lines = Vec::new();
            let mut chosen = products.clone();
            for _ in 0..1 + rng.below(3) {
                let product = chosen.swap_remove(rng.below(chosen.len()));
                lines.push((product, i64::try_from(1 + rng.below(5)).unwrap()));
            }
            if fate != Fate::NeverReserved {
                let body = lines.iter().map(|(p, q)| line(*p, *q)).collect();
                let (status, answer) = app.reserve(order, body).await;
                assert_eq!(status, StatusCode::CREATED, "{answer}");
            }
            if fate == Fate::ReleasedThenCancelled {
                let (status, answer) = app.release(order).await;
                assert_eq!(status, StatusCode::OK, "{answer}");
            }
            let data = json!({
                "order_id": order, "user_id": "u-1",
                "lines": lines.iter().map(|(p, q)| json!({"product_id": p, "quantity": q})).collect::<Vec<_>>(),
            });
            let event = |name: &str| Event::new("orders", &format!("souk.orders.{name}.v1"), order.to_string(), data.clone());
            let mut events = vec![event("order_placed")];
            let state = match fate {
                Fate::Confirmed => {
                    events.push(event("order_confirmed"));
                    lines.iter().for_each(|(p, q)| *sold.get_mut(p).unwrap() += q);
                    ReservationState::Committed
                }
                Fate::ReleasedThenCancelled | Fate::Cancelled | Fate::NeverReserved => {
                    events.push(event("order_cancelled"));
                    ReservationState::Released
                }
                Fate::Held => {
                    lines.iter().for_each(|(p, q)| *reserved.get_mut(p).unwrap() += q);
                    ReservationState::Held
                }
            };
            per_order.push(events);
            expected_states.push((order, fate, state));
        }
        let feed = ReplayFeed::schedule(per_order, &mut rng);

        let (stop, shutdown) = Shutdown::manual(Duration::from_secs(1));
        let consumer = app.inventory.consume_order_events(
            &souk_inventory::Config::default(),
            ServiceClient::in_process("orders", feed.router(), Duration::from_secs(5)),
            ServiceClient::in_process("identity", app.issuer.identity_router("inventory"), Duration::from_secs(1)),
            shutdown,
        );
        let database = app.inventory.store.database();
        let end = i64::try_from(feed.deliveries.len()).unwrap();
        while consumer_position(database, "inventory.orders").await < end {
            assert!(started.elapsed() < PATIENCE, "the consumer did not reach the end of the feed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let parked = events::dead_letters(database, "inventory.orders").await.unwrap();
        assert!(parked.is_empty(), "{parked:?}");
        assert_eq!(inbox_count(database, "inventory.orders").await, feed.distinct, "each event handled once");

        let mut mismatches = Vec::new();
        for product in &products {
            let stock = app.stock(*product).await;
            let (sold, reserved) = (sold[product], reserved[product]);
            let want = (RECEIVED, RECEIVED - sold - reserved, reserved, sold);
            let got = (stock.received, stock.available, stock.reserved, stock.sold);
            if got != want || !stock.is_consistent() {
                mismatches.push(format!("product {product}: want (received, available, reserved, sold) {want:?}, got {got:?}"));
            }
        }
        for (order, fate, state) in &expected_states {
            let reservation = app.inventory.store.reservation(*order).await.unwrap();
            if reservation.as_ref().map(|r| r.state) != Some(*state) {
                mismatches.push(format!("order {order} ({fate:?}): want {state:?}, got {reservation:?}"));
            }
        }
        let distinct = feed.distinct;
        let delivered = feed.deliveries.len();
        println!(
            "inventory redelivery ({}): {ORDERS} orders over {PRODUCTS} products, {distinct} events, \
             {delivered} deliveries ({} duplicates), units sold {}, still held {}, mismatches {}; took {:.1?}",
            database.engine(),
            delivered - distinct,
            sold.values().sum::<i64>(),
            reserved.values().sum::<i64>(),
            mismatches.len(),
            started.elapsed(),
        );
        assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
        app.assert_consistent().await;
        stop.trigger();
        tokio::time::timeout(PATIENCE, consumer).await.expect("the consumer stops").unwrap();
    }
}
