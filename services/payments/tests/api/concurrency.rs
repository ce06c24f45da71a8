//! The correctness property: an order is never charged twice — not by concurrent duplicates, not
//! by a retry after a crash between the processor's answer and payments recording it.

use futures::future::join_all;
use reqwest::StatusCode;
use souk_payments::domain::{ChargeRequest, Currency, Money, PaymentStatus, Timestamp};
use souk_payments::processor::ProcessorError;
use souk_payments::store::Claim;
use uuid::Uuid;

use crate::helpers::{VISA, charge_body, spawn, spawn_slow};

fn request(user: &str, method: &str, amount: i64) -> ChargeRequest {
    ChargeRequest {
        user_id: user.to_owned(),
        payment_method_id: Uuid::parse_str(method).unwrap(),
        amount: Money::positive(amount, Currency::parse("USD").unwrap()).unwrap(),
    }
}

/// The card token behind a payment method (what the processor is asked to charge).
async fn token(app: &crate::helpers::TestApp, method: &str) -> String {
    let method = app
        .payments
        .store
        .method(Uuid::parse_str(method).unwrap())
        .await
        .unwrap()
        .unwrap();
    method.token
}

souk_chassis::backend_tests! { spawn_slow;

    async fn concurrent_duplicates_reach_the_processor_once(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 4200);
        let answers = join_all((0..8).map(|_| app.charge(&body))).await;
        let captured: Vec<_> = answers.iter().filter(|a| a.0 == StatusCode::CREATED).collect();
        assert!(!captured.is_empty(), "one request charges");
        assert!(captured.iter().all(|a| a.2 == captured[0].2), "and any that came after it replay its answer");
        assert!(captured.len() < answers.len(), "the others overlapped it (the processor takes 300 ms)");
        for (status, headers, problem) in answers.iter().filter(|a| a.0 != StatusCode::CREATED) {
            assert_eq!(*status, StatusCode::CONFLICT, "{problem}");
            assert_eq!(problem["type"], "urn:souk:problem:in-progress");
            assert_eq!(headers["retry-after"], "1");
        }
        assert_eq!(app.payments.processor.charge_calls(), 1, "exactly one processor call");
        let (status, _, again) = app.charge(&body).await;
        assert_eq!((status, &again), (StatusCode::CREATED, &captured[0].2), "the retry the 409 asked for");
        assert_eq!(app.rows_containing("processor_charges", &order.to_string()).await, 1);
    }
}

souk_chassis::backend_tests! { spawn;

    async fn the_processor_answers_a_repeated_key_with_its_first_charge(app) {
        let method = app.method_id("u1", VISA).await;
        let token = token(&app, &method).await;
        let processor = &app.payments.processor;
        let key = Uuid::now_v7().to_string();
        let amount = Money::positive(700, Currency::parse("USD").unwrap()).unwrap();
        let first = processor.charge(&key, &token, &amount, Timestamp::now()).await.unwrap();
        let second = processor.charge(&key, &token, &amount, Timestamp::now()).await.unwrap();
        assert_eq!(first, second, "the same charge, not a second one");
        assert_eq!(processor.find_charge(&key).await.unwrap(), Some(first));
        assert_eq!(app.rows_containing("processor_charges", &key).await, 1);
        let more = Money::positive(701, Currency::parse("USD").unwrap()).unwrap();
        let reused = processor.charge(&key, &token, &more, Timestamp::now()).await;
        assert!(matches!(reused, Err(ProcessorError::KeyReused { .. })), "{reused:?}");
    }

    async fn a_retry_after_a_crash_gets_the_charge_already_made(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        // A process claimed the order long ago, the processor charged, and the process died
        // before recording the answer.
        let asked = request("u1", &method, 1500);
        let claim = app.payments.store.claim(order, &asked).await.unwrap();
        assert!(matches!(claim, Claim::New(_)));
        app.age_pending(order, 3_600_000).await;
        let charged = app.payments.processor
            .charge(&order.to_string(), &token(&app, &method).await, &asked.amount, Timestamp::now())
            .await
            .unwrap();
        let (status, _, payment) = app.charge(&charge_body(order, "u1", &method, 1500)).await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        assert_eq!(payment["status"], "captured");
        let stored = app.payments.store.payment(order).await.unwrap().unwrap();
        assert_eq!(stored.processor_charge_id.as_deref(), Some(charged.id.as_str()), "the first charge, recorded");
        assert_eq!(stored.status, PaymentStatus::Captured);
        assert_eq!(app.rows_containing("processor_charges", &order.to_string()).await, 1, "charged once");
    }

    async fn a_fresh_pending_charge_is_in_progress(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        app.payments.store.claim(order, &request("u1", &method, 900)).await.unwrap();
        let (status, headers, problem) = app.charge(&charge_body(order, "u1", &method, 900)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:in-progress");
        assert_eq!(headers["retry-after"], "1");
        let (status, payment) = app.payment(order).await;
        assert_eq!((status, payment["status"].as_str()), (StatusCode::OK, Some("pending")));
        assert_eq!(app.payments.processor.charge_calls(), 0);
    }
}
