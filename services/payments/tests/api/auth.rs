//! Who may call what: users their own cards, services the payments, nobody anonymous.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{VISA, card, charge_body, spawn};

souk_chassis::backend_tests! { spawn;

    async fn internal_endpoints_take_only_service_tokens_for_payments(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 100);
        let routes: Vec<(Method, String, Option<Value>)> = vec![
            (Method::POST, "/v1/payments".into(), Some(body)),
            (Method::GET, format!("/v1/payments/{order}"), None),
            (Method::POST, format!("/v1/payments/{order}/refund"), None),
        ];
        let user = app.user("u1");
        let admin = app.issuer.user_token("root", "admin");
        let for_inventory = app.issuer.service_token("orders", "inventory");
        let user_with_payments_audience = app.issuer.token("u1", "user", "payments");
        for (method, path, body) in &routes {
            for (who, token, expected) in [
                ("anonymous", None, StatusCode::UNAUTHORIZED),
                ("a user", Some(user.as_str()), StatusCode::UNAUTHORIZED),
                ("an admin", Some(admin.as_str()), StatusCode::UNAUTHORIZED),
                ("a service token for inventory", Some(for_inventory.as_str()), StatusCode::UNAUTHORIZED),
                ("a user token addressed to payments", Some(user_with_payments_audience.as_str()), StatusCode::FORBIDDEN),
                ("garbage", Some("x.y.z"), StatusCode::UNAUTHORIZED),
            ] {
                let (status, problem) = app.send(method.clone(), path, token, body.as_ref()).await;
                assert_eq!(status, expected, "{who} {method} {path}: {problem}");
            }
        }
        assert_eq!(app.payments.processor.charge_calls(), 0);
        assert_eq!(app.payment(order).await.0, StatusCode::NOT_FOUND, "the refund attempts left no tombstone");
    }

    async fn only_orders_may_charge_and_a_feed_readers_token_moves_no_money(app) {
        // The attack: history holds a token for payments only to read its event feed; another
        // service may hold one for payments too. Neither may charge, refund or read payments.
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 100);
        let history_feed = app.issuer.feed_token("history", "payments");
        let history_full = app.issuer.service_token("history", "payments");
        let inventory_full = app.issuer.service_token("inventory", "payments");
        for (method, path, body) in [
            (Method::POST, "/v1/payments".to_owned(), Some(&body)),
            (Method::POST, format!("/v1/payments/{order}/refund"), None),
            (Method::GET, format!("/v1/payments/{order}"), None),
        ] {
            for (who, token) in [
                ("history's feed token", &history_feed),
                ("a full token of history", &history_full),
                ("a full token of inventory", &inventory_full),
            ] {
                let (status, problem) = app.send(method.clone(), &path, Some(token), body).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{who} {method} {path}: {problem}");
            }
        }
        assert_eq!(app.payments.processor.charge_calls(), 0, "nothing was charged");
        assert_eq!(app.payment(order).await.0, StatusCode::NOT_FOUND, "no refund tombstone either");
        // The feed token does what it is for: reading the feed.
        let (status, feed) = app.send(Method::GET, "/v1/events?after=0", Some(&history_feed), None).await;
        assert_eq!(status, StatusCode::OK, "{feed}");
        // And orders still charges.
        let (status, charged) = app.send(Method::POST, "/v1/payments", Some(&app.service()), Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{charged}");
    }

    async fn payment_methods_take_user_tokens(app) {
        let service = app.service();
        for (method, path, body) in [
            (Method::POST, "/v1/payment-methods".to_owned(), Some(card(VISA))),
            (Method::GET, "/v1/payment-methods".to_owned(), None),
            (Method::GET, format!("/v1/payment-methods/{}", Uuid::now_v7()), None),
        ] {
            for (who, token) in [("anonymous", None), ("a service", Some(service.as_str())), ("garbage", Some("abc"))] {
                let response = {
                    let mut request = app.server.client.request(method.clone(), app.server.url(&path));
                    if let Some(token) = token {
                        request = request.bearer_auth(token);
                    }
                    if let Some(body) = &body {
                        request = request.json(body);
                    }
                    request.send().await.unwrap()
                };
                assert!(response.headers().contains_key("www-authenticate"), "{who} {method} {path}");
                let (status, _) = crate::helpers::read_json(response).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{who} {method} {path}");
            }
        }
    }
}
