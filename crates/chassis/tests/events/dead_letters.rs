//! Failing handlers: retries keep the order, poison and exhausted events are parked, and a
//! replayed dead letter is handled.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use souk_chassis::auth::AuthVerifier;
use souk_chassis::events::{self, Outbox};
use souk_chassis::test_util::TestIssuer;
use tower::ServiceExt;

use crate::consumer::{feed_consumer, shutdown};
use crate::helpers::{Recorder, append, effects, event, eventually, fixture};

const WAIT: Duration = Duration::from_secs(20);

async fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

souk_chassis::backend_tests! { fixture;

    async fn an_unavailable_store_is_waited_out_never_parked(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let handler = Recorder::new("cart.orders", &fx.db);
        // Far more failures than the attempts allowed: an outage, not the event's fault.
        handler.script.lock().unwrap().unavailable.insert("s0".into(), 12);
        let sent: Vec<_> = (0..3).map(|n| event("orders", n)).collect();
        for e in &sent {
            append(&fx.db, e).await;
        }
        let (trigger, signal) = shutdown();
        let task = feed_consumer("cart.orders", &outbox, &fx.db)
            .max_attempts(2)
            .spawn(handler.clone(), signal);
        eventually("every event is handled, in order", WAIT, || async { effects(&fx.db, "cart.orders").await.len() == 3 }).await;
        let ids: Vec<&str> = sent.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(effects(&fx.db, "cart.orders").await, ids);
        assert_eq!(handler.calls_of("s0"), 13);
        assert!(events::dead_letters(&fx.db, "cart.orders").await.unwrap().is_empty(), "nothing parked");
        trigger.trigger();
        task.await.unwrap();
    }

    async fn retries_keep_order_poison_is_parked_and_a_replay_handles_it(fx) {
        let outbox = Outbox::new(fx.db.clone(), "orders");
        let handler = Recorder::new("cart.orders", &fx.db);
        {
            let mut script = handler.script.lock().unwrap();
            script.retry.insert("s0".into(), 2); // fails twice, then works
            script.poison.insert("s1".into()); // never works until healed
            script.retry.insert("s3".into(), 100); // always fails: parked after 4 attempts
        }
        let sent: Vec<_> = (0..5).map(|n| event("orders", n)).collect();
        for e in &sent {
            append(&fx.db, e).await;
        }
        let (trigger, signal) = shutdown();
        let task = feed_consumer("cart.orders", &outbox, &fx.db)
            .max_attempts(4)
            .spawn(handler.clone(), signal);
        eventually("the good events are handled", WAIT, || async { effects(&fx.db, "cart.orders").await.len() == 3 }).await;
        assert_eq!(effects(&fx.db, "cart.orders").await, [sent[0].id.as_str(), sent[2].id.as_str(), sent[4].id.as_str()]);
        assert_eq!(handler.calls_of("s0"), 3);
        assert_eq!(handler.calls_of("s1"), 1, "poison is never retried");
        assert_eq!(handler.calls_of("s3"), 4);

        let parked = events::dead_letters(&fx.db, "cart.orders").await.unwrap();
        assert_eq!(parked.len(), 2);
        assert_eq!((parked[0].event.id.as_str(), parked[0].attempts), (sent[1].id.as_str(), 1));
        assert!(parked[0].error.contains("scripted poison"), "{}", parked[0].error);
        assert_eq!((parked[1].event.id.as_str(), parked[1].attempts), (sent[3].id.as_str(), 4));
        assert!(parked[1].error.contains("gave up after 4 attempts"), "{}", parked[1].error);
        assert_eq!(parked[0].event.data, sent[1].data);

        // Healed, the poison event is replayed and handled; the other stays parked.
        handler.script.lock().unwrap().poison.clear();
        assert!(events::replay_dead_letter(&fx.db, &parked[0].id).await.unwrap());
        assert!(!events::replay_dead_letter(&fx.db, "no-such-letter").await.unwrap());
        eventually("the replayed event is handled", WAIT, || async { effects(&fx.db, "cart.orders").await.len() == 4 }).await;
        eventually("the dead letter is gone", WAIT, || async { events::dead_letters(&fx.db, "cart.orders").await.unwrap().len() == 1 }).await;

        // Replayed and failing again: parked anew, its attempts added up.
        let still = events::dead_letters(&fx.db, "cart.orders").await.unwrap().remove(0);
        assert!(events::replay_dead_letter(&fx.db, &still.id).await.unwrap());
        eventually("the replay fails and is parked again", WAIT, || async {
            let letters = events::dead_letters(&fx.db, "cart.orders").await.unwrap();
            letters.len() == 1 && letters[0].attempts == 8 && letters[0].replayed_ms.is_none()
        }).await;
        trigger.trigger();
        task.await.unwrap();
        assert_eq!(handler.calls_of("s1"), 2);
    }
}

#[tokio::test]
async fn administrators_list_and_replay_dead_letters_over_http() {
    let Some(fx) = fixture(souk_chassis::test_util::Backend::Sqlite).await else {
        return;
    };
    let outbox = Outbox::new(fx.db.clone(), "orders");
    let handler = Recorder::new("cart.orders", &fx.db);
    handler.script.lock().unwrap().poison.insert("s0".into());
    let poison = event("orders", 0);
    append(&fx.db, &poison).await;
    let (trigger, signal) = shutdown();
    let task = feed_consumer("cart.orders", &outbox, &fx.db).spawn(handler.clone(), signal);
    eventually("the event is parked", WAIT, || async {
        events::dead_letters(&fx.db, "cart.orders")
            .await
            .unwrap()
            .len()
            == 1
    })
    .await;

    let issuer = TestIssuer::start().await;
    let router =
        events::dead_letters_router(fx.db.clone(), AuthVerifier::new(issuer.auth_config("cart")));
    let (admin, user) = (
        issuer.user_token("a1", "admin"),
        issuer.user_token("u1", "user"),
    );
    assert_eq!(
        send(&router, "GET", "/v1/admin/dead-letters", &user)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&router, "GET", "/v1/admin/dead-letters", "nonsense")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, list) = send(
        &router,
        "GET",
        "/v1/admin/dead-letters?consumer=cart.orders&limit=1",
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["event"]["id"], poison.id.as_str());
    assert_eq!(list["items"][0]["consumer"], "cart.orders");
    assert!(
        list["items"][0]["parked_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(list["next_cursor"], serde_json::Value::Null);
    let (_, other) = send(
        &router,
        "GET",
        "/v1/admin/dead-letters?consumer=someone.else",
        &admin,
    )
    .await;
    assert_eq!(other["items"], serde_json::json!([]));

    let id = list["items"][0]["id"].as_str().unwrap();
    let replay = format!("/v1/admin/dead-letters/{id}/replay");
    assert_eq!(
        send(&router, "POST", &replay, &user).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(
            &router,
            "POST",
            "/v1/admin/dead-letters/nope/replay",
            &admin
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    handler.script.lock().unwrap().poison.clear();
    assert_eq!(
        send(&router, "POST", &replay, &admin).await.0,
        StatusCode::ACCEPTED
    );
    eventually("the replayed event is handled", WAIT, || async {
        effects(&fx.db, "cart.orders").await == [poison.id.clone()]
    })
    .await;
    eventually("the dead letter is gone", WAIT, || async {
        let (_, list) = send(&router, "GET", "/v1/admin/dead-letters", &admin).await;
        list["items"] == serde_json::json!([])
    })
    .await;
    trigger.trigger();
    task.await.unwrap();
}
