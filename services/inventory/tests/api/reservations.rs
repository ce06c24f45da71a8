//! Reserving, releasing and committing: all or nothing, idempotent, and only for services.

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{line, spawn};

souk_chassis::backend_tests! { spawn;

    async fn a_reservation_holds_every_line_and_repeats_safely(app) {
        let (a, b) = (app.new_product(10).await, app.new_product(3).await);
        let order = Uuid::now_v7();
        let (status, held) = app.reserve(order, vec![line(b, 3), line(a, 2)]).await;
        assert_eq!(status, StatusCode::CREATED, "{held}");
        assert_eq!(held["order_id"], order.to_string());
        assert_eq!(held["state"], "held");
        assert!(held["expires_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(held["lines"].as_array().unwrap().len(), 2);
        assert_eq!((app.stock(a).await.available, app.stock(a).await.reserved), (8, 2));
        assert_eq!((app.stock(b).await.available, app.stock(b).await.reserved), (0, 3));

        let (status, again) = app.reserve(order, vec![line(a, 2), line(b, 3)]).await;
        assert_eq!(status, StatusCode::OK, "a replay, lines in any order");
        assert_eq!(again, held);
        assert_eq!(app.stock(a).await.available, 8, "nothing taken twice");

        let (status, problem) = app.reserve(order, vec![line(a, 1)]).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem["type"], "urn:souk:problem:reservation-conflict");
        assert_eq!(problem["reservation"]["state"], "held");

        let (status, fetched) = app.send(Method::GET, &format!("/v1/reservations/{order}"), Some(&app.service()), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(fetched, held);
        app.assert_consistent().await;
    }

    async fn out_of_stock_reserves_nothing_and_names_the_lacking_products(app) {
        let (plenty, scarce) = (app.new_product(10).await, app.new_product(1).await);
        let unknown = Uuid::now_v7();
        let order = Uuid::now_v7();
        let (status, problem) = app.reserve(order, vec![line(plenty, 5), line(scarce, 2), line(unknown, 1)]).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:out-of-stock");
        let mut lacking: Vec<&str> = problem["product_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        lacking.sort();
        let mut expected = vec![scarce.to_string(), unknown.to_string()];
        expected.sort();
        assert_eq!(lacking, expected);
        assert_eq!(problem["errors"][0]["field"], "lines[1].product_id");
        assert_eq!(app.stock(plenty).await.available, 10, "all or nothing");
        assert_eq!(app.stock(scarce).await.available, 1);
        let (status, _) = app.send(Method::GET, &format!("/v1/reservations/{order}"), Some(&app.service()), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "a refused reservation leaves no trace");
        let (status, _) = app.reserve(order, vec![line(plenty, 5), line(scarce, 1)]).await;
        assert_eq!(status, StatusCode::CREATED, "the order may try again with what there is");
    }

    async fn release_gives_units_back_once(app) {
        let product = app.new_product(5).await;
        let order = Uuid::now_v7();
        app.reserve(order, vec![line(product, 4)]).await;
        let (status, released) = app.release(order).await;
        assert_eq!(status, StatusCode::OK, "{released}");
        assert_eq!(released["state"], "released");
        assert_eq!((app.stock(product).await.available, app.stock(product).await.reserved), (5, 0));
        let (status, again) = app.release(order).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, released);
        assert_eq!(app.stock(product).await.available, 5, "given back once");
        let (status, problem) = app.commit(order).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem["type"], "urn:souk:problem:reservation-state");
        assert_eq!(problem["reservation"]["state"], "released");
        let (status, replay) = app.reserve(order, vec![line(product, 4)]).await;
        assert_eq!((status, replay["state"].as_str()), (StatusCode::OK, Some("released")), "a replay reports the state");
        assert_eq!(app.stock(product).await.available, 5);
    }

    async fn commit_sells_once_and_cannot_be_released(app) {
        let product = app.new_product(5).await;
        let order = Uuid::now_v7();
        app.reserve(order, vec![line(product, 2)]).await;
        let (status, committed) = app.commit(order).await;
        assert_eq!(status, StatusCode::OK, "{committed}");
        assert_eq!(committed["state"], "committed");
        let stock = app.stock(product).await;
        assert_eq!((stock.available, stock.reserved, stock.sold), (3, 0, 2));
        let (status, again) = app.commit(order).await;
        assert_eq!((status, &again), (StatusCode::OK, &committed));
        assert_eq!(app.stock(product).await.sold, 2, "sold once");
        let (status, problem) = app.release(order).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem["reservation"]["state"], "committed");
        let (status, _) = app.commit(Uuid::now_v7()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        app.assert_consistent().await;
    }

    async fn releasing_an_unknown_order_refuses_its_late_reservation(app) {
        let product = app.new_product(5).await;
        let order = Uuid::now_v7();
        let (status, tombstone) = app.release(order).await;
        assert_eq!(status, StatusCode::OK, "{tombstone}");
        assert_eq!(tombstone["state"], "released");
        assert!(tombstone["expires_at"].is_null());
        assert_eq!(tombstone["lines"].as_array().unwrap().len(), 0);
        let (status, problem) = app.reserve(order, vec![line(product, 1)]).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["type"], "urn:souk:problem:reservation-conflict");
        assert_eq!(app.stock(product).await.available, 5, "nothing held for a cancelled order");
        assert_eq!(app.release(order).await.0, StatusCode::OK);
    }

    async fn internal_endpoints_take_service_tokens_only(app) {
        let product = app.new_product(5).await;
        let order = Uuid::now_v7();
        let body = json!({ "order_id": order, "lines": [line(product, 1)] });
        let user = app.user();
        let admin = app.admin();
        let for_cart = app.issuer.service_token("orders", "cart");
        let user_for_inventory = app.issuer.token("user-1", "user", "inventory");
        let routes = [
            (Method::POST, "/v1/reservations".to_owned(), Some(body.clone())),
            (Method::GET, format!("/v1/reservations/{order}"), None),
            (Method::POST, format!("/v1/reservations/{order}/release"), None),
            (Method::POST, format!("/v1/reservations/{order}/commit"), None),
        ];
        for (method, path, body) in &routes {
            for (who, token, expected) in [
                ("anonymous", None, StatusCode::UNAUTHORIZED),
                ("a user", Some(user.as_str()), StatusCode::UNAUTHORIZED),
                ("an administrator", Some(admin.as_str()), StatusCode::UNAUTHORIZED),
                ("a service token for cart", Some(for_cart.as_str()), StatusCode::UNAUTHORIZED),
                ("a user token for inventory", Some(user_for_inventory.as_str()), StatusCode::FORBIDDEN),
            ] {
                let (status, problem) = app.send(method.clone(), path, token, body.as_ref()).await;
                assert_eq!(status, expected, "{who} {method} {path}: {problem}");
            }
        }
        assert_eq!(app.stock(product).await.available, 5, "nothing happened");
        let (status, _) = app.reserve(order, vec![line(product, 1)]).await;
        assert_eq!(status, StatusCode::CREATED);
    }
}
