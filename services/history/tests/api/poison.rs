//! Events history cannot handle: parked as dead letters without holding up the ones behind
//! them, listed for administrators, and handled when replayed once the cause is fixed.

use reqwest::{Method, StatusCode};
use souk_chassis::test_util::Backend;
use uuid::Uuid;

use crate::fixtures::{placed, placed_at};
use crate::helpers::{TestApp, eventually, spawn, spawn_with};

/// History that parks an event after three failed attempts.
async fn impatient(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |config| config.consumers.max_attempts = 3).await
}

/// Asks for dead letter `id` to be replayed, as an administrator.
async fn replay(app: &TestApp, id: &str) {
    let path = format!("/v1/admin/dead-letters/{id}/replay");
    let (status, body) = app.send(Method::POST, &path, Some(&app.admin())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

souk_chassis::backend_tests! { spawn;

    async fn a_poison_event_is_parked_and_the_events_behind_it_go_on(app) {
        let (bad, good) = (Uuid::now_v7(), Uuid::now_v7());
        let poison = placed_at(bad, "alice", "yesterday");
        app.orders.publish(&poison).await;
        app.deliver(&placed(good, "alice")).await;
        let shown: Vec<_> = app.history_of("alice").await.iter().map(|p| p["order_id"].clone()).collect();
        assert_eq!(shown, [good.to_string()]);

        let letters = app.dead_letters("history.orders").await;
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0]["event"]["id"], poison.id);
        assert_eq!(letters[0]["attempts"], 1, "poison is not retried");
        assert!(letters[0]["error"].as_str().unwrap().contains("RFC 3339"), "{}", letters[0]);
        assert!(app.dead_letters("history.payments").await.is_empty());

        // Replaying cannot cure bad data: it is parked again, and nothing else moves.
        replay(&app, letters[0]["id"].as_str().unwrap()).await;
        eventually("the replay is parked again", || async {
            app.dead_letters("history.orders").await.first().is_some_and(|l| l["attempts"] == 2 && l["replay_requested_at"].is_null())
        }).await;
        assert_eq!(app.history_of("alice").await.len(), 1);
    }

    async fn a_name_history_cannot_show_as_sent_is_cleaned_never_parked(app) {
        // Names with control characters reached orders' events before the catalog refused them
        // (an administrator's "Mug\nBlue"): the purchase is recorded, its name made showable.
        let order = Uuid::now_v7();
        let mut event = placed(order, "alice");
        event.data["lines"][0]["name"] = serde_json::json!("Mug\nBlue\u{1b}[31m");
        app.deliver(&event).await;
        let purchase = app.purchase("alice", order).await;
        assert_eq!(purchase["lines"][0]["name"], "Mug Blue [31m", "{purchase}");
        assert!(app.dead_letters("history.orders").await.is_empty());
    }

    async fn dead_letters_are_for_administrators_only(app) {
        for (token, expected) in [(None, StatusCode::UNAUTHORIZED), (Some(app.user("alice")), StatusCode::FORBIDDEN)] {
            let (status, _) = app.send(Method::GET, "/v1/admin/dead-letters", token.as_deref()).await;
            assert_eq!(status, expected);
            let path = format!("/v1/admin/dead-letters/{}/replay", Uuid::now_v7());
            let (status, _) = app.send(Method::POST, &path, token.as_deref()).await;
            assert_eq!(status, expected);
        }
        let path = format!("/v1/admin/dead-letters/{}/replay", Uuid::now_v7());
        let (status, _) = app.send(Method::POST, &path, Some(&app.admin())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

souk_chassis::backend_tests! { impatient;

    async fn an_outage_that_outlasts_the_retries_is_parked_then_replayed_once_fixed(app) {
        let order = Uuid::now_v7();
        // The projection's table gone: every attempt fails for a reason that may pass.
        app.execute("ALTER TABLE purchases RENAME TO purchases_away").await;
        app.orders.publish(&placed(order, "alice")).await;
        eventually("the event is parked", || async {
            !app.dead_letters("history.orders").await.is_empty()
        }).await;
        let letter = app.dead_letters("history.orders").await.remove(0);
        assert_eq!(letter["attempts"], 3);
        assert!(letter["error"].as_str().unwrap().contains("gave up after 3 attempts"), "{letter}");

        app.execute("ALTER TABLE purchases_away RENAME TO purchases").await;
        replay(&app, letter["id"].as_str().unwrap()).await;
        eventually("the replayed event is handled", || async {
            app.history_of("alice").await.len() == 1
        }).await;
        assert_eq!(app.purchase("alice", order).await["status"], "pending");
        // The letter leaves the list in the transaction after the effect's (the inbox guards a
        // second replay), so a reader may see the purchase a moment before the list empties.
        eventually("a handled replay leaves the list", || async {
            app.dead_letters("history.orders").await.is_empty()
        }).await;
    }
}
