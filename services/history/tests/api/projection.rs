//! The projection: what each event sequence makes of a purchase, through the real feeds.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::fixtures::{
    CONFIRMED_AT, PLACED_AT, REFUNDED_AT, cancelled, captured, confirmed, other, placed, refunded,
    shown_lines, total,
};
use crate::helpers::spawn;

/// The purchase as history should show it, before any payment or confirmation.
fn pending(order: Uuid) -> Value {
    json!({
        "order_id": order, "status": "pending", "cancel_reason": null, "lines": shown_lines(),
        "total": total(), "payment": null, "placed_at": PLACED_AT, "confirmed_at": null,
        "refunded_at": null,
    })
}

souk_chassis::backend_tests! { spawn;

    async fn placed_then_confirmed_shows_the_purchase_as_bought(app) {
        let order = Uuid::now_v7();
        app.deliver(&placed(order, "alice")).await;
        assert_eq!(app.purchase("alice", order).await, pending(order));
        assert_eq!(app.history_of("alice").await, [pending(order)]);
        app.deliver(&captured(order, "alice")).await;
        app.deliver(&confirmed(order, "alice")).await;
        let mut expected = pending(order);
        expected["status"] = json!("confirmed");
        expected["confirmed_at"] = json!(CONFIRMED_AT);
        expected["payment"] = json!({"brand": "visa", "last4": "4242"});
        assert_eq!(app.purchase("alice", order).await, expected);
        assert_eq!(app.history_of("alice").await, [expected]);
    }

    async fn placed_then_cancelled_keeps_the_reason_and_the_refund(app) {
        let order = Uuid::now_v7();
        for event in [placed(order, "alice"), captured(order, "alice")] {
            app.deliver(&event).await;
        }
        app.deliver(&cancelled(order, "alice", "timeout")).await;
        app.deliver(&refunded(order, "alice")).await;
        let purchase = app.purchase("alice", order).await;
        assert_eq!(purchase["status"], "cancelled");
        assert_eq!(purchase["cancel_reason"], "timeout");
        assert_eq!(purchase["confirmed_at"], Value::Null);
        assert_eq!(purchase["payment"], json!({"brand": "visa", "last4": "4242"}));
        assert_eq!(purchase["refunded_at"], REFUNDED_AT);
        // A declined order never had a capture: no payment to show.
        let declined = Uuid::now_v7();
        app.deliver(&placed(declined, "alice")).await;
        app.deliver(&cancelled(declined, "alice", "payment_declined")).await;
        let purchase = app.purchase("alice", declined).await;
        assert_eq!(purchase["cancel_reason"], "payment_declined");
        assert_eq!(purchase["payment"], Value::Null);
    }

    async fn a_payment_before_its_order_waits_unseen_then_joins_it(app) {
        let order = Uuid::now_v7();
        app.deliver(&captured(order, "alice")).await;
        assert_eq!(app.history_of("alice").await, Vec::<Value>::new(), "a placeholder is not a purchase");
        let (status, _) = app.send(reqwest::Method::GET, &format!("/v1/history/{order}"), Some(&app.user("alice"))).await;
        assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
        app.deliver(&placed(order, "alice")).await;
        let mut expected = pending(order);
        expected["payment"] = json!({"brand": "visa", "last4": "4242"});
        assert_eq!(app.purchase("alice", order).await, expected);
    }

    async fn a_confirmation_without_its_placement_builds_the_purchase_from_its_own_lines(app) {
        let order = Uuid::now_v7();
        app.deliver(&confirmed(order, "alice")).await;
        let purchase = app.purchase("alice", order).await;
        assert_eq!(purchase["status"], "confirmed");
        assert_eq!(purchase["lines"], shown_lines());
        assert_eq!(purchase["placed_at"], PLACED_AT);
        // The placement arriving late changes nothing: the status never goes back.
        app.deliver(&placed(order, "alice")).await;
        assert_eq!(app.purchase("alice", order).await, purchase);
    }

    async fn the_same_event_twice_has_one_effect(app) {
        let mut app = app;
        let order = Uuid::now_v7();
        let events = [placed(order, "alice"), captured(order, "alice"), confirmed(order, "alice")];
        for event in &events {
            app.deliver(event).await;
        }
        let before = app.history_of("alice").await;
        // Straight to the store: the inbox refuses the second effect of each.
        for event in &events {
            let fact = souk_history::projection::facts::read(event).unwrap().unwrap();
            let consumer = souk_history::projection::consumer_name(&app.producer_of(event).name);
            assert!(!app.history.store.apply(&consumer, &event.id, &fact).await.unwrap());
        }
        // Through the feeds: a restart with the offsets rewound redelivers everything.
        let inbox = app.count("event_inbox").await;
        app.execute("UPDATE event_offsets SET position = '0'").await;
        app.restart().await;
        let later = placed(Uuid::now_v7(), "bob");
        app.deliver(&later).await;
        assert_eq!(app.history_of("alice").await, before);
        assert_eq!(app.count("event_inbox").await, inbox + 1, "only the new event was new");
        assert_eq!(app.count("purchases").await, 2);
    }

    async fn events_history_does_not_follow_are_skipped(app) {
        let order = Uuid::now_v7();
        let declined = other("payments", "souk.payments.payment_declined.v1", order,
            json!({"order_id": order, "user_id": "alice", "decline_code": "card_declined"}));
        let newer = other("orders", "souk.orders.order_placed.v2", order, json!({"whatever": true}));
        for event in [&declined, &newer] {
            app.deliver(event).await;
        }
        app.deliver(&placed(order, "alice")).await;
        assert_eq!(app.purchase("alice", order).await, pending(order));
        assert!(app.dead_letters("").await.is_empty(), "nothing parked");
        assert_eq!(app.count("purchases").await, 1);
    }
}
