//! Charging orders: the test cards' outcomes, replays, conflicts and ownership.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{VISA, charge_body, spawn};

souk_chassis::backend_tests! { spawn;

    async fn the_usual_card_is_captured(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let (status, headers, payment) = app.charge(&charge_body(order, "u1", &method, 1999)).await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        assert_eq!(headers["location"], format!("/v1/payments/{order}"));
        assert_eq!(payment["status"], "captured");
        assert_eq!(payment["order_id"], order.to_string());
        assert_eq!(payment["user_id"], "u1");
        assert_eq!(payment["payment_method_id"], method.as_str());
        assert_eq!(payment["amount"], json!({"amount": 1999, "currency": "USD"}));
        assert!(payment["captured_at"].as_str().unwrap().ends_with('Z'));
        Uuid::parse_str(payment["id"].as_str().unwrap()).unwrap();
        let (status, stored) = app.payment(order).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stored, payment, "GET shows what the charge answered");
        assert_eq!(app.payments.processor.charge_calls(), 1);
    }

    async fn declining_test_cards_are_402_and_recorded(app) {
        for (number, code) in [("4000000000000002", "card_declined"), ("4000 0000 0000 9995", "insufficient_funds")] {
            let method = app.method_id("u1", number).await;
            let order = Uuid::now_v7();
            let body = charge_body(order, "u1", &method, 500);
            let (status, _, problem) = app.charge(&body).await;
            assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{problem}");
            assert_eq!(problem["type"], "urn:souk:problem:card-declined");
            assert_eq!(problem["decline_code"], code);
            assert_eq!(problem["order_id"], order.to_string());
            let (status, _, again) = app.charge(&body).await;
            assert_eq!((status, &again), (StatusCode::PAYMENT_REQUIRED, &problem), "a replay answers the same");
            let (_, stored) = app.payment(order).await;
            assert_eq!(stored["status"], "declined");
            assert_eq!(stored["decline_code"], code);
            assert_eq!(stored["id"], problem["payment_id"]);
        }
        assert_eq!(app.payments.processor.charge_calls(), 2, "replays never reach the processor");
    }

    async fn the_error_card_fails_every_time_and_is_not_recorded(app) {
        let method = app.method_id("u1", "4000000000000119").await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 500);
        for _ in 0..3 {
            let (status, headers, problem) = app.charge_allowing_5xx(&body).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
            assert_eq!(problem["type"], "urn:souk:problem:processor-unavailable");
            assert_eq!(headers["retry-after"], "1");
        }
        assert_eq!(app.payments.processor.charge_calls(), 3, "each retry asked the processor again");
        let (status, _) = app.payment(order).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing final was recorded");
        // The order can still be paid with another card.
        let visa = app.method_id("u1", VISA).await;
        let (status, _, _) = app.charge(&charge_body(order, "u1", &visa, 500)).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    async fn a_replay_answers_exactly_as_the_first_time(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 2500);
        let first = app.charge(&body).await;
        let second = app.charge(&body).await;
        assert_eq!(first.0, StatusCode::CREATED);
        assert_eq!((first.0, &first.2), (second.0, &second.2));
        assert_eq!(first.1["location"], second.1["location"]);
        assert_eq!(app.payments.processor.charge_calls(), 1);
    }

    async fn another_body_for_a_charged_order_is_409(app) {
        let method = app.method_id("u1", VISA).await;
        let other_method = app.method_id("u1", "5555555555554444").await;
        app.method_id("u2", VISA).await;
        let order = Uuid::now_v7();
        let (status, _, first) = app.charge(&charge_body(order, "u1", &method, 1000)).await;
        assert_eq!(status, StatusCode::CREATED);
        for body in [
            charge_body(order, "u1", &method, 1001),
            charge_body(order, "u1", &other_method, 1000),
            json!({"order_id": order, "user_id": "u1", "payment_method_id": method, "amount": {"amount": 1000, "currency": "EUR"}}),
        ] {
            let (status, _, problem) = app.charge(&body).await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}: {problem}");
            assert_eq!(problem["type"], "urn:souk:problem:payment-conflict");
        }
        let (_, stored) = app.payment(order).await;
        assert_eq!(stored, first, "the first charge stands");
        assert_eq!(app.payments.processor.charge_calls(), 1);
    }

    async fn only_the_users_own_card_can_be_charged(app) {
        let alices = app.method_id("alice", VISA).await;
        for (user, method) in [("mallory", alices.clone()), ("alice", Uuid::now_v7().to_string())] {
            let order = Uuid::now_v7();
            let (status, _, problem) = app.charge(&charge_body(order, user, &method, 100)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
            assert_eq!(problem["type"], "urn:souk:problem:payment-method-not-owned");
            assert_eq!(problem["errors"][0]["field"], "payment_method_id");
            assert_eq!(app.payment(order).await.0, StatusCode::NOT_FOUND);
        }
        assert_eq!(app.payments.processor.charge_calls(), 0);
    }

    async fn invalid_charges_are_422_naming_the_field(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let with = |field: &str, value: Value| {
            let mut body = charge_body(order, "u1", &method, 100);
            body[field] = value;
            body
        };
        for (body, field) in [
            (charge_body(order, "u1", &method, 0), "amount.amount"),
            (charge_body(order, "u1", &method, -5), "amount.amount"),
            (with("amount", json!({"amount": 100, "currency": "usd"})), "amount.currency"),
            (with("amount", json!({"amount": 100, "currency": "US"})), "amount.currency"),
            (with("user_id", json!("")), "user_id"),
            (with("user_id", json!("x".repeat(201))), "user_id"),
        ] {
            let (status, _, problem) = app.charge(&body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        for body in [
            with("amount", json!({"amount": 1.5, "currency": "USD"})),
            with("order_id", json!("not-a-uuid")),
            with("surprise", json!(true)),
            json!({"order_id": order}),
        ] {
            let (status, _, problem) = app.charge(&body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
            assert_eq!(problem["type"], "urn:souk:problem:invalid-body");
        }
        assert_eq!(app.payments.processor.charge_calls(), 0);
    }

    async fn an_unknown_order_has_no_payment(app) {
        let (status, problem) = app.payment(Uuid::now_v7()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        let (status, _) = app.send(Method::GET, "/v1/payments/nope", Some(&app.service()), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
