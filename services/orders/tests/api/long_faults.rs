//! Issue 16: faults longer than inventory's hold. No order is confirmed unless inventory has
//! committed its stock: after the capture the saga commits the reservation synchronously, and
//! refunds and cancels `out_of_stock` when the hold lapsed and the units were sold meanwhile; a
//! saga resumed past its deadline never moves forward again.

use std::time::Duration;

use crate::helpers::{spawn, spawn_with};

souk_chassis::backend_tests! { spawn;
    async fn a_confirmed_order_had_its_stock_committed_before(app) {
        let shopper = app.shopper(2);
        let id = app.place_ok(&shopper).await;
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("committed"));
        assert_eq!(app.fakes.calls("commit", &id.to_string()), 1);
        assert_eq!(app.fakes.available(shopper.product), 98, "sold once");
    }

    async fn a_capture_after_the_hold_lapsed_and_its_units_sold_is_refunded_out_of_stock(app) {
        {
            let mut world = app.fakes.world();
            world.hold = Some(Duration::from_millis(300));
            world.charge_delay = Some(Duration::from_millis(1000));
        }
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        // The hold lapses while payments is slow, and somebody else buys the units.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while app.fakes.calls("charge", &id.to_string()) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never charged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        {
            let mut world = app.fakes.world();
            world.expire_lapsed();
            world.available.insert(shopper.product, 0);
        }
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "cancelled", "{order}");
        assert_eq!(order["cancel_reason"], "out_of_stock", "{order}");
        assert_eq!(app.fakes.captures(id), 1);
        assert_eq!(app.fakes.refunds(id), 1, "the capture was given back");
        assert_ne!(app.fakes.reservation(id).as_deref(), Some("committed"));
        assert_eq!(app.fakes.available(shopper.product), 0, "nothing sold twice");
    }

    async fn a_hold_shorter_than_the_deadline_is_reported(app) {
        app.fakes.world().hold = Some(Duration::from_secs(5));
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        assert_eq!(app.settled(&shopper, id).await["status"], "confirmed");
        let server = &app.instance().server;
        let metrics = server.client.get(server.url("/metrics")).send().await.unwrap();
        let metrics = metrics.text().await.unwrap();
        assert!(metrics.contains("orders_hold_too_short_total"), "a 5 s hold under a 20 s deadline: {metrics}");
    }

    async fn a_capture_after_the_hold_lapsed_with_units_left_is_confirmed(app) {
        {
            let mut world = app.fakes.world();
            world.hold = Some(Duration::from_millis(200));
            world.charge_delay = Some(Duration::from_millis(600));
        }
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("committed"));
        assert_eq!(app.fakes.available(shopper.product), 99, "taken again, once");
    }
}

mod resumed_past_its_deadline {
    use super::*;

    async fn never_charges(backend: souk_chassis::test_util::Backend) {
        let Some(mut app) = spawn_with(backend, |config| config.saga.deadline_secs = 2).await
        else {
            return;
        };
        app.fakes.world().hang.insert("charge");
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while app.fakes.calls("charge", &id.to_string()) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never charged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Orders dies inside the charge and stays down past the order's deadline.
        app.crash().await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        app.fakes.world().hang.clear();
        app.instance = Some(app.start().await);
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "cancelled", "{order}");
        assert_eq!(order["cancel_reason"], "timeout", "{order}");
        assert_eq!(
            app.fakes.calls("charge", &id.to_string()),
            1,
            "no charge after the deadline"
        );
        assert_eq!(app.fakes.captures(id), 0);
        assert_eq!(
            app.fakes.payment(id).as_deref(),
            Some("cancelled"),
            "a tombstone"
        );
        assert_eq!(app.fakes.reservation(id).as_deref(), Some("released"));
    }

    #[tokio::test]
    async fn sqlite() {
        never_charges(souk_chassis::test_util::Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        never_charges(souk_chassis::test_util::Backend::Postgres).await;
    }
}
