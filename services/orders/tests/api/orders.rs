//! Reading orders: the owner only (another user's is a 404), and the caller's list, newest first
//! in pages.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn;

souk_chassis::backend_tests! { spawn;
    async fn another_users_order_is_a_404(app) {
        let (alice, bob) = (app.shopper(1), app.shopper(1));
        let id = app.place_ok(&alice).await;
        let (status, problem) = app.send(Method::GET, &format!("/v1/orders/{id}"), Some(&bob.token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (missing, _) = app
            .send(Method::GET, &format!("/v1/orders/{}", uuid::Uuid::now_v7()), Some(&bob.token), None)
            .await;
        assert_eq!(missing, StatusCode::NOT_FOUND, "the same answer as for no order at all");
        assert!(!problem.to_string().contains(&alice.user));
        let (_, page) = app.send(Method::GET, "/v1/orders", Some(&bob.token), None).await;
        assert_eq!(page["items"], serde_json::json!([]));
    }

    async fn the_callers_orders_come_newest_first_in_pages(app) {
        let shopper = app.shopper(1);
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(app.place_ok(&shopper).await.to_string());
        }
        app.place_ok(&app.shopper(1)).await; // someone else's
        let mut seen = Vec::new();
        let mut path = "/v1/orders?limit=2".to_owned();
        let mut pages = 0;
        loop {
            let (status, page) = app.send(Method::GET, &path, Some(&shopper.token), None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            pages += 1;
            for order in page["items"].as_array().unwrap() {
                assert_eq!(order["lines"][0]["quantity"], 1);
                seen.push(order["id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/orders?limit=2&cursor={cursor}"),
                None => break,
            }
        }
        ids.reverse();
        assert_eq!(seen, ids);
        assert_eq!(pages, 3);
        let (_, all) = app.send(Method::GET, "/v1/orders", Some(&shopper.token), None).await;
        assert_eq!(all["items"].as_array().unwrap().len(), 5);
        assert_eq!(all["next_cursor"], serde_json::Value::Null);
    }
}
