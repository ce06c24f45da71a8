//! Refunds, the saga's compensation: idempotent, and safe before, during or after the charge.

use reqwest::StatusCode;
use serde_json::json;
use souk_payments::domain::{ChargeRequest, Currency, Money, PaymentStatus, Timestamp};
use uuid::Uuid;

use crate::helpers::{VISA, charge_body, spawn};

fn request(user: &str, method: &str, amount: i64) -> ChargeRequest {
    ChargeRequest {
        user_id: user.to_owned(),
        payment_method_id: Uuid::parse_str(method).unwrap(),
        amount: Money::positive(amount, Currency::parse("USD").unwrap()).unwrap(),
    }
}

souk_chassis::backend_tests! { spawn;

    async fn a_captured_payment_is_refunded_once(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 3000);
        let (_, _, charged) = app.charge(&body).await;
        let (status, refund) = app.refund(order).await;
        assert_eq!(status, StatusCode::OK, "{refund}");
        assert_eq!(refund["status"], "refunded");
        assert_eq!(refund["order_id"], order.to_string());
        assert_eq!(refund["refund"]["payment_id"], charged["id"]);
        assert_eq!(refund["refund"]["amount"], json!({"amount": 3000, "currency": "USD"}));
        let (status, again) = app.refund(order).await;
        assert_eq!((status, &again), (StatusCode::OK, &refund), "the same refund");
        let (_, payment) = app.payment(order).await;
        assert_eq!(payment["status"], "refunded");
        assert!(payment["refunded_at"].is_string());
        let (status, _, replay) = app.charge(&body).await;
        assert_eq!((status, &replay), (StatusCode::CREATED, &charged), "a charge replay still answers as first");
        assert_eq!(app.rows_containing("processor_refunds", &order.to_string()).await, 1, "refunded once at the processor");
    }

    async fn a_refund_before_the_charge_leaves_a_tombstone(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let (status, refund) = app.refund(order).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(refund, json!({"order_id": order, "status": "nothing_to_refund", "refund": null}));
        assert_eq!(app.refund(order).await, (StatusCode::OK, refund));
        let (status, _, problem) = app.charge(&charge_body(order, "u1", &method, 100)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:order-cancelled");
        let (_, payment) = app.payment(order).await;
        assert_eq!(payment["status"], "cancelled");
        assert_eq!(payment["amount"], json!(null));
        assert_eq!(app.payments.processor.charge_calls(), 0, "the cancelled order was never charged");
    }

    async fn a_declined_payment_has_nothing_to_refund(app) {
        let method = app.method_id("u1", "4000000000000002").await;
        let order = Uuid::now_v7();
        let (status, _, _) = app.charge(&charge_body(order, "u1", &method, 100)).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        let (status, refund) = app.refund(order).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(refund["status"], "nothing_to_refund");
        assert_eq!(app.payment(order).await.1["status"], "declined");
    }

    async fn a_refund_during_a_charge_is_in_progress(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        app.payments.store.claim(order, &request("u1", &method, 100)).await.unwrap();
        let (status, problem) = app.refund(order).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:in-progress");
    }

    async fn a_refund_settles_an_abandoned_charge_from_the_processor(app) {
        let method = app.method_id("u1", VISA).await;
        let token = app.payments.store.method(Uuid::parse_str(&method).unwrap()).await.unwrap().unwrap().token;
        // Charged at the processor, then the charging process died (long ago).
        let charged = Uuid::now_v7();
        let asked = request("u1", &method, 800);
        app.payments.store.claim(charged, &asked).await.unwrap();
        app.age_pending(charged, 3_600_000).await;
        app.payments.processor.charge(&charged.to_string(), &token, &asked.amount, Timestamp::now()).await.unwrap();
        let (status, refund) = app.refund(charged).await;
        assert_eq!((status, refund["status"].as_str()), (StatusCode::OK, Some("refunded")), "{refund}");
        assert_eq!(app.payments.store.payment(charged).await.unwrap().unwrap().status, PaymentStatus::Refunded);
        // Claimed, then the process died before the processor was asked.
        let never = Uuid::now_v7();
        app.payments.store.claim(never, &asked).await.unwrap();
        app.age_pending(never, 3_600_000).await;
        let (status, refund) = app.refund(never).await;
        assert_eq!((status, refund["status"].as_str()), (StatusCode::OK, Some("nothing_to_refund")));
        let (status, _, problem) = app.charge(&charge_body(never, "u1", &method, 800)).await;
        assert_eq!(status, StatusCode::CONFLICT, "a late charge is refused: {problem}");
        assert_eq!(problem["type"], "urn:souk:problem:order-cancelled");
        assert!(app.payments.processor.find_charge(&never.to_string()).await.unwrap().is_none());
    }

    async fn a_tombstone_refunds_a_charge_only_the_processor_knows(app) {
        let method = app.method_id("u1", VISA).await;
        let token = app.payments.store.method(Uuid::parse_str(&method).unwrap()).await.unwrap().unwrap().token;
        // The processor charged, but the attempt failed ambiguously and was forgotten.
        let order = Uuid::now_v7();
        let amount = Money::positive(650, Currency::parse("USD").unwrap()).unwrap();
        app.payments.processor.charge(&order.to_string(), &token, &amount, Timestamp::now()).await.unwrap();
        let (status, refund) = app.refund(order).await;
        assert_eq!((status, refund["status"].as_str()), (StatusCode::OK, Some("nothing_to_refund")));
        assert_eq!(app.rows_containing("processor_refunds", &order.to_string()).await, 1, "the money went back");
    }
}
