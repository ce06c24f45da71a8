//! Crash safety: a saga left behind by a dead instance is finished by the next one, exactly once;
//! instances sharing a database never run one saga twice.

use std::time::Duration;

use uuid::Uuid;

use crate::helpers::spawn;

souk_chassis::backend_tests! { spawn;
    async fn a_saga_interrupted_after_the_charge_is_finished_once_by_the_next_instance(app) {
        let mut app = app;
        // Payments captures, then the instance dies before hearing the answer.
        app.fakes.world().hang_after_capture = true;
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while app.fakes.captures(id) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never charged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app.crash().await;
        app.fakes.world().hang_after_capture = false;
        // Past the dead instance's call timeout: had it lived on, it would have charged again.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(app.fakes.calls("charge", &id.to_string()), 1, "the crashed instance stopped");

        app.instance = Some(app.start().await);
        let order = app.settled(&shopper, id).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        assert_eq!(app.fakes.captures(id), 1, "the charge was replayed, not repeated");
        assert_eq!(app.fakes.calls("charge", &id.to_string()), 2);
        assert_eq!(app.fakes.calls("reserve", &id.to_string()), 1);
        let confirmed = app
            .events_of(id)
            .await
            .into_iter()
            .filter(|e| e["type"] == "souk.orders.order_confirmed.v1")
            .count();
        assert_eq!(confirmed, 1);
    }

    async fn a_saga_interrupted_before_any_call_is_resumed_on_start(app) {
        let mut app = app;
        app.fakes.world().down.insert("reserve");
        let shopper = app.shopper(1);
        let id = app.place_ok(&shopper).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.crash().await;
        app.fakes.world().down.clear();
        app.instance = Some(app.start().await);
        assert_eq!(app.settled(&shopper, id).await["status"], "confirmed");
        assert_eq!(app.fakes.captures(id), 1);
    }

    async fn two_instances_on_one_database_run_each_saga_once(app) {
        let second = app.start().await;
        let mut placed: Vec<(Uuid, crate::helpers::Shopper)> = Vec::new();
        for i in 0..12 {
            let shopper = app.shopper(1);
            let server = if i % 2 == 0 { &app.instance().server } else { &second.server };
            let body = crate::helpers::checkout_body(shopper.method);
            let (status, _, accepted) = app.place_on(server, &shopper, None, &body).await;
            assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{accepted}");
            placed.push((accepted["id"].as_str().unwrap().parse().unwrap(), shopper));
        }
        for (id, shopper) in &placed {
            assert_eq!(app.settled(shopper, *id).await["status"], "confirmed");
            let subject = id.to_string();
            assert_eq!(app.fakes.calls("reserve", &subject), 1, "reserved once");
            assert_eq!(app.fakes.calls("charge", &subject), 1, "charged once");
            assert_eq!(app.fakes.captures(*id), 1);
        }
        assert_eq!(app.count("outbox").await, 24, "one placed and one confirmed event each");
        drop(second);
    }

    async fn waiting_for_tokens_never_outlives_the_lease(app) {
        // Identity hangs: every token fetch takes its whole timeout (1 s) and fails. Were the
        // fetches made one after another behind a lock, the tenth saga would wait ten seconds
        // for its token, far past its 4 s lease, and the second instance would take the saga
        // over and run the same step alongside.
        let second = app.start().await;
        app.fakes.world().hang.insert("identity");
        let mut placed: Vec<(Uuid, crate::helpers::Shopper)> = Vec::new();
        for _ in 0..10 {
            let shopper = app.shopper(1);
            placed.push((app.place_ok(&shopper).await, shopper));
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
        app.fakes.world().hang.clear();
        for (id, shopper) in &placed {
            assert_eq!(app.settled(shopper, *id).await["status"], "confirmed");
            let subject = id.to_string();
            assert_eq!(app.fakes.calls("reserve", &subject), 1, "reserved once, by one instance");
            assert_eq!(app.fakes.calls("charge", &subject), 1, "charged once");
        }
        drop(second);
    }
}
