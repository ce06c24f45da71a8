//! Arrival order: orders' and payments' events are not ordered with each other (and a consumer
//! may be behind), so every order of arrival must end in the same purchase.

use serde_json::{Value, json};
use souk_chassis::events::{Event, Handler};
use souk_history::projection::Projection;
use uuid::Uuid;

use crate::fixtures::{
    CONFIRMED_AT, PLACED_AT, REFUNDED_AT, cancelled, captured, confirmed, placed, refunded,
    shown_lines, total,
};
use crate::helpers::spawn;

/// Every ordering of `items`.
fn permutations(items: &[&'static str]) -> Vec<Vec<&'static str>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

/// The event `kind` of `order`, bought by alice.
fn event(kind: &str, order: Uuid) -> Event {
    match kind {
        "placed" => placed(order, "alice"),
        "captured" => captured(order, "alice"),
        "confirmed" => confirmed(order, "alice"),
        "cancelled" => cancelled(order, "alice", "timeout"),
        "refunded" => refunded(order, "alice"),
        other => panic!("no event {other}"),
    }
}

/// `purchase` with its order id blanked, so purchases of different orders compare.
fn anonymous(mut purchase: Value) -> Value {
    purchase["order_id"] = json!("…");
    purchase
}

#[test]
fn permutations_are_all_there() {
    let all = permutations(&["a", "b", "c", "d"]);
    assert_eq!(all.len(), 24);
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), 24);
}

souk_chassis::backend_tests! { spawn;

    async fn every_arrival_order_of_placed_captured_and_confirmed_ends_the_same(app) {
        let expected = json!({
            "order_id": "…", "status": "confirmed", "cancel_reason": null, "lines": shown_lines(),
            "total": total(), "payment": {"brand": "visa", "last4": "4242"}, "placed_at": PLACED_AT,
            "confirmed_at": CONFIRMED_AT, "refunded_at": null,
        });
        for arrival in permutations(&["placed", "captured", "confirmed"]) {
            let order = Uuid::now_v7();
            // Each event is handled before the next is published: exactly this arrival order.
            for kind in &arrival {
                app.deliver(&event(kind, order)).await;
            }
            let purchase = app.purchase("alice", order).await;
            assert_eq!(purchase["order_id"], order.to_string());
            assert_eq!(anonymous(purchase), expected, "arrival {arrival:?}");
        }
        assert_eq!(app.history_of("alice").await.len(), 6);
    }

    async fn every_arrival_order_of_a_refunded_cancellation_ends_the_same_despite_repeats(app) {
        // Straight to the handler, 24 orderings of four events, each event handled twice.
        let projection = Projection::new(app.history.store.clone(), "history.test");
        let expected = json!({
            "order_id": "…", "status": "cancelled", "cancel_reason": "timeout", "lines": shown_lines(),
            "total": total(), "payment": {"brand": "visa", "last4": "4242"}, "placed_at": PLACED_AT,
            "confirmed_at": null, "refunded_at": REFUNDED_AT,
        });
        for arrival in permutations(&["placed", "captured", "cancelled", "refunded"]) {
            let order = Uuid::now_v7();
            let events: Vec<Event> = arrival.iter().map(|kind| event(kind, order)).collect();
            for event in events.iter().chain(&events) {
                projection.handle(event).await.unwrap();
            }
            let purchase = app.purchase("alice", order).await;
            assert_eq!(anonymous(purchase), expected, "arrival {arrival:?}");
        }
        assert_eq!(app.count("purchases").await, 24);
        assert_eq!(app.count("event_inbox").await, 24 * 4, "one effect per event");
    }
}
