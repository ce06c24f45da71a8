//! The saga's other endings: each refusal cancels with its reason after giving back whatever was
//! taken, failures are retried, and a deadline ends the retrying.

use crate::fakes::Card;
use crate::helpers::{spawn, spawn_short_deadline};

souk_chassis::backend_tests! { spawn;
    async fn too_little_stock_cancels_out_of_stock_and_charges_nothing(app) {
        let shopper = app.shopper(1);
        let scarce = app.fakes.product("Last teapot", 3000, "USD", 1);
        app.fakes.add_to_cart(&shopper.user, scarce, 2);
        let id = app.place_ok(&shopper).await;
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "cancelled");
        assert_eq!(order["cancel_reason"], "out_of_stock");
        // Released all the same, so a reservation arriving late for it is refused.
        assert_eq!(app.fakes.calls("release", &id.to_string()), 1);
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("released"));
        assert_eq!(app.fakes.calls("charge", &id.to_string()), 0);
        assert_eq!(app.fakes.available(scarce), 1);
        assert_eq!(app.fakes.available(shopper.product), 100, "nothing of the order stays held");
        let events = app.events_of(id).await;
        assert_eq!(events.last().unwrap()["type"], "souk.orders.order_cancelled.v1");
        assert_eq!(events.last().unwrap()["data"]["reason"], "out_of_stock");
    }

    async fn a_declined_card_cancels_and_gives_the_stock_back(app) {
        let shopper = app.shopper(2);
        let declined = app.fakes.method(&shopper.user, Card::Declined);
        let body = crate::helpers::checkout_body(declined);
        let (status, _, accepted) = app.place_on(&app.instance().server, &shopper, None, &body).await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED);
        let id: uuid::Uuid = accepted["id"].as_str().unwrap().parse().unwrap();
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "cancelled");
        assert_eq!(order["cancel_reason"], "payment_declined");
        assert_eq!(app.fakes.captures(id), 0);
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("released"));
        assert_eq!(app.fakes.available(shopper.product), 100);
        assert_eq!(app.fakes.payment(id).as_deref(), Some("declined"));
    }

    async fn a_processor_failing_for_a_while_is_retried_and_charges_once(app) {
        app.fakes.world().processor_failures = 3;
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        assert_eq!(app.fakes.calls("charge", &id.to_string()), 4);
        assert_eq!(app.fakes.captures(id), 1);
        assert_eq!(app.fakes.calls_of("refund"), 0);
    }

    async fn inventory_down_for_a_while_is_retried(app) {
        app.fakes.world().down.insert("reserve");
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while app.fakes.calls("reserve", &id.to_string()) < 3 {
            assert!(tokio::time::Instant::now() < deadline, "no retries");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(app.order(&shopper, id).await["status"], "pending");
        app.fakes.world().down.clear();
        assert_eq!(app.settled(&shopper, id).await["status"], "confirmed");
        assert_eq!(app.fakes.captures(id), 1);
        let server = &app.instance().server;
        let metrics = server.client.get(server.url("/metrics")).send().await.unwrap();
        let metrics = metrics.text().await.unwrap();
        assert!(metrics.contains(r#"orders_saga_retries_total{step="reserve"}"#), "{metrics}");
        assert!(metrics.contains("orders_confirmed_total"), "{metrics}");
    }
}

souk_chassis::backend_tests! { spawn_short_deadline;
    async fn payments_unreachable_past_the_deadline_cancels_releases_and_refunds(app) {
        app.fakes.world().hang.insert("charge");
        let shopper = app.shopper(2);
        let id = app.place_ok(&shopper).await;
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "cancelled");
        assert_eq!(order["cancel_reason"], "timeout");
        assert!(app.fakes.calls("charge", &id.to_string()) >= 1);
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("released"));
        assert_eq!(app.fakes.available(shopper.product), 100);
        assert_eq!(app.fakes.calls("refund", &id.to_string()), 1);
        // The refund left a tombstone: a charge arriving late is refused.
        assert_eq!(app.fakes.payment(id).as_deref(), Some("cancelled"));
        assert_eq!(app.fakes.captures(id), 0);
    }

    async fn a_processor_failing_past_the_deadline_cancels_payment_failed(app) {
        app.fakes.world().processor_failures = u32::MAX;
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["cancel_reason"], "payment_failed", "{order}");
        assert!(app.fakes.calls("charge", &id.to_string()) > 1);
        assert_eq!(app.fakes.calls("refund", &id.to_string()), 1);
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("released"));
    }

    async fn compensation_outlasts_the_deadline_until_it_succeeds(app) {
        {
            let mut world = app.fakes.world();
            world.down.insert("charge");
            world.down.insert("release");
            world.down.insert("refund");
        }
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
        assert_eq!(app.order(&shopper, id).await["status"], "pending", "compensation has not finished");
        assert!(app.fakes.calls("release", &id.to_string()) > 1, "release is retried past the deadline");
        app.fakes.world().down.clear();
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "cancelled");
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("released"));
        assert_eq!(app.fakes.payment(id).as_deref(), Some("cancelled"));
    }
}
