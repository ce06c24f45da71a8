//! Events: each recorded outcome puts exactly one event in the outbox feed, in the transaction
//! that records it — none for a replay, none for a transaction that failed, never a card number.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, VISA, charge_body, random_card, spawn};

/// The types of `events`, in order.
fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// Sends `method path` with orders' service token, returning only the status: for answers the
/// shared reader refuses (a 500 from a deliberately broken database).
async fn raw_status(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> StatusCode {
    let mut request = app
        .server
        .client
        .request(method, app.server.url(path))
        .bearer_auth(app.service());
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap().status()
}

souk_chassis::backend_tests! { spawn;

    async fn a_capture_is_one_event_and_a_replay_adds_none(app) {
        let number = random_card();
        let method = app.method_id("u1", &number).await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 1999);
        let (status, _, charged) = app.charge(&body).await;
        assert_eq!(status, StatusCode::CREATED);
        let events = app.events().await;
        assert_eq!(types(&events), ["souk.payments.payment_captured.v1"]);
        let event = &events[0];
        assert_eq!(event["source"], "souk/payments");
        assert_eq!(event["subject"], order.to_string());
        assert_eq!(event["data"], json!({
            "payment_id": charged["id"],
            "order_id": order,
            "user_id": "u1",
            "amount": {"amount": 1999, "currency": "USD"},
            "payment_method": {"id": method, "brand": "visa", "last4": &number[12..]},
            "captured_at": charged["captured_at"],
        }));
        assert!(!event.to_string().contains(&number[..12]), "no card number in an event: {event}");
        let (status, _, _) = app.charge(&body).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(app.events().await.len(), 1, "a replayed charge adds no event");
    }

    async fn a_decline_is_one_event_with_its_code(app) {
        let method = app.method_id("u1", "4000000000009995").await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 500);
        let (status, _, problem) = app.charge(&body).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        app.charge(&body).await;
        let events = app.events_of(order).await;
        assert_eq!(types(&events), ["souk.payments.payment_declined.v1"], "one, replay or not");
        let data = &events[0]["data"];
        assert_eq!(data["payment_id"], problem["payment_id"]);
        assert_eq!(data["decline_code"], "insufficient_funds");
        assert_eq!(data["user_id"], "u1");
        assert_eq!(data["amount"], json!({"amount": 500, "currency": "USD"}));
        assert_eq!(data["payment_method"], json!({"id": method, "brand": "visa", "last4": "9995"}));
        assert!(data["declined_at"].as_str().unwrap().ends_with('Z'));
        assert!(data.get("captured_at").is_none());
        let (status, _) = app.refund(order).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.events().await.len(), 1, "nothing to refund, nothing to announce");
    }

    async fn a_refund_is_one_event_and_its_repeats_add_none(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let (_, _, charged) = app.charge(&charge_body(order, "u1", &method, 3000)).await;
        let (status, refund) = app.refund(order).await;
        assert_eq!(status, StatusCode::OK, "{refund}");
        app.refund(order).await;
        let events = app.events_of(order).await;
        assert_eq!(types(&events), ["souk.payments.payment_captured.v1", "souk.payments.payment_refunded.v1"]);
        assert_eq!(events[1]["data"], json!({
            "payment_id": charged["id"],
            "order_id": order,
            "user_id": "u1",
            "amount": {"amount": 3000, "currency": "USD"},
            "refund_id": refund["refund"]["id"],
            "refunded_at": refund["refund"]["created_at"],
        }));
        // An order refunded before any charge leaves a tombstone, and no event.
        let (status, _) = app.refund(Uuid::now_v7()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.events().await.len(), 2);
    }

    async fn a_failed_transaction_records_nothing_and_announces_nothing(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let (status, _, _) = app.charge(&charge_body(order, "u1", &method, 700)).await;
        assert_eq!(status, StatusCode::CREATED);
        // With the outbox gone, the append fails and the whole transaction rolls back.
        app.rename_table("outbox", "outbox_away").await;
        let refund_path = format!("/v1/payments/{order}/refund");
        let status = raw_status(&app, Method::POST, &refund_path, None).await;
        assert!(status.is_server_error(), "{status}");
        let other = Uuid::now_v7();
        let status = raw_status(&app, Method::POST, "/v1/payments", Some(&charge_body(other, "u1", &method, 800))).await;
        assert!(status.is_server_error(), "{status}");
        app.rename_table("outbox_away", "outbox").await;
        let (_, payment) = app.payment(order).await;
        assert_eq!(payment["status"], "captured", "the refund was not recorded");
        assert!(app.payments.store.refund_of(order).await.unwrap().is_none());
        let (_, payment) = app.payment(other).await;
        assert_eq!(payment["status"], "pending", "the capture was not recorded");
        assert_eq!(types(&app.events().await), ["souk.payments.payment_captured.v1"]);
        // Once the outbox is back, the refund goes through with its event.
        let (status, _) = app.refund(order).await;
        assert_eq!(status, StatusCode::OK);
        let events = app.events().await;
        assert_eq!(types(&events), ["souk.payments.payment_captured.v1", "souk.payments.payment_refunded.v1"]);
    }

    async fn the_feed_wants_a_service_token_for_payments(app) {
        let (status, _) = app.send(Method::GET, "/v1/events", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = app.send(Method::GET, "/v1/events", Some(&app.user("u1")), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a user's token has another audience");
        let elsewhere = app.issuer.service_token("history", "orders");
        let (status, _) = app.send(Method::GET, "/v1/events", Some(&elsewhere), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a token for another service");
        let (status, problem) = app.send(Method::GET, "/v1/events?limit=0", Some(&app.service()), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    }
}
