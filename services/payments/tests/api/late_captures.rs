//! Issue 16: no capture kept for a cancelled order, even when payments is paused past its
//! pending-charge lease. A refund then settles the charge as "never made" (a tombstone) while
//! the charge is still inside the processor; when it lands, it finds its row settled and gives
//! the money back at once. A charge whose process dies right after the processor answered is
//! found by the sweep of recently cancelled orders.

use std::time::Duration;

use reqwest::StatusCode;
use uuid::Uuid;

use souk_payments::domain::{Currency, Money, Timestamp};

use crate::helpers::{VISA, charge_body, spawn_with};

/// Payments whose processor takes 1.5 s per call, so a charge can be caught inside it.
async fn slow(backend: souk_chassis::test_util::Backend) -> Option<crate::helpers::TestApp> {
    spawn_with(backend, |config| config.processor.latency_ms = 1500).await
}

souk_chassis::backend_tests! { slow;
    async fn a_charge_that_finds_its_row_settled_refunds_at_once(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 1200);
        let charging = {
            let (server, client) = (app.server.url("/v1/payments"), app.server.client.clone());
            let token = app.service();
            tokio::spawn(async move {
                let response = client.post(server).bearer_auth(token).json(&body).send().await.unwrap();
                crate::helpers::read_json(response).await
            })
        };
        // The charge is inside the processor; its process is paused past the lease.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while app.payment(order).await.0 != StatusCode::OK {
            assert!(tokio::time::Instant::now() < deadline, "never claimed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.age_pending(order, 3_600_000).await;
        // The saga gives up and refunds: the abandoned charge is settled from the processor,
        // which holds nothing yet, so the order is cancelled with nothing to refund.
        let (status, refund) = app.refund(order).await;
        assert_eq!((status, refund["status"].as_str()), (StatusCode::OK, Some("nothing_to_refund")), "{refund}");
        // Then the charge lands at the processor and comes back to a settled row.
        let (status, problem) = charging.await.unwrap();
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:order-cancelled");
        assert_eq!(app.rows_containing("processor_charges", &order.to_string()).await, 1, "it was captured");
        assert_eq!(app.rows_containing("processor_refunds", &order.to_string()).await, 1, "and given back at once");
        assert_eq!(app.payment(order).await.1["status"], "cancelled");
    }
}

/// Payments sweeping cancelled orders every 200 ms.
async fn sweeping(backend: souk_chassis::test_util::Backend) -> Option<crate::helpers::TestApp> {
    spawn_with(backend, |config| config.late_capture_sweep_ms = 200).await
}

souk_chassis::backend_tests! { sweeping;
    async fn a_capture_landing_after_the_order_was_cancelled_is_refunded_by_the_sweep(app) {
        let method = app.method_id("u1", VISA).await;
        let token = app.payments.store.method(Uuid::parse_str(&method).unwrap()).await.unwrap().unwrap().token;
        let order = Uuid::now_v7();
        let (status, refund) = app.refund(order).await;
        assert_eq!((status, refund["status"].as_str()), (StatusCode::OK, Some("nothing_to_refund")));
        // A charge for the order, paused until after the cancellation, lands at the processor
        // and its process dies before it records or refunds anything.
        let amount = Money::positive(990, Currency::parse("USD").unwrap()).unwrap();
        app.payments.processor.charge(&order.to_string(), &token, &amount, Timestamp::now()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while app.rows_containing("processor_refunds", &order.to_string()).await == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the late capture was never refunded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(app.rows_containing("processor_refunds", &order.to_string()).await, 1, "refunded once");
    }

    async fn tombstones_go_after_their_retention_and_payments_stay(app) {
        let method = app.method_id("u1", VISA).await;
        let (cancelled, charged) = (Uuid::now_v7(), Uuid::now_v7());
        app.refund(cancelled).await;
        let (status, _, _) = app.charge(&charge_body(charged, "u1", &method, 500)).await;
        assert_eq!(status, StatusCode::CREATED);
        let store = &app.payments.store;
        assert_eq!(store.purge_tombstones(Duration::from_secs(3600)).await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(store.purge_tombstones(Duration::ZERO).await.unwrap(), 1);
        assert!(store.payment(cancelled).await.unwrap().is_none());
        assert!(store.payment(charged).await.unwrap().is_some(), "a capture is a record");
    }
}
