//! Bad input is a problem+json 4xx, never a 500, and never stores anything.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{checkout_body, spawn};

souk_chassis::backend_tests! { spawn;
    async fn bad_bodies_are_refused_field_by_field(app) {
        let shopper = app.shopper(1);
        let good = checkout_body(shopper.method);
        let mut cases = vec![
            (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"payment_method_id": "not-a-uuid", "shipping_address": good["shipping_address"]}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"payment_method_id": shopper.method}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!([1, 2]), StatusCode::UNPROCESSABLE_ENTITY),
        ];
        for (field, value) in [
            ("country", json!("UK")), ("country", json!("gb")), ("name", json!("")),
            ("line1", json!("x".repeat(201))), ("city", json!("\u{7}")), ("postal_code", json!("<b>")),
            ("postal_code", json!(12345)), ("extra", json!("field")),
        ] {
            let mut body = good.clone();
            body["shipping_address"][field] = value;
            cases.push((body, StatusCode::UNPROCESSABLE_ENTITY));
        }
        for (body, expected) in cases {
            let (status, _, problem) = app.place_on(&app.instance().server, &shopper, None, &body).await;
            assert_eq!(status, expected, "{body} → {problem}");
        }
        let mut body = good.clone();
        body["shipping_address"]["country"] = json!("ZZ");
        let (_, _, problem) = app.place_on(&app.instance().server, &shopper, None, &body).await;
        assert_eq!(problem["errors"][0]["field"], "shipping_address.country");
        assert_eq!(app.count("orders").await, 0);
    }

    async fn malformed_requests_get_their_own_statuses(app) {
        let shopper = app.shopper(1);
        let server = &app.instance().server;
        let post = |body: String, content_type: &'static str| {
            server
                .client
                .post(server.url("/v1/orders"))
                .bearer_auth(&shopper.token)
                .header("content-type", content_type)
                .body(body)
        };
        for (request, expected) in [
            (post("{not json".into(), "application/json"), StatusCode::BAD_REQUEST),
            (post(checkout_body(shopper.method).to_string(), "text/plain"), StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (post("x".repeat(70_000), "application/json"), StatusCode::PAYLOAD_TOO_LARGE),
        ] {
            let (status, _) = crate::helpers::read_json(request.send().await.unwrap()).await;
            assert_eq!(status, expected);
        }
        for key in ["", "has space", &"k".repeat(256), "é"] {
            let request = post(checkout_body(shopper.method).to_string(), "application/json")
                .header("idempotency-key", key);
            let (status, problem) = crate::helpers::read_json(request.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{key:?}: {problem}");
        }
        assert_eq!(app.count("orders").await, 0);
    }

    async fn paths_queries_and_tokens_are_checked(app) {
        let shopper = app.shopper(1);
        let token = Some(shopper.token.as_str());
        for (path, expected) in [
            ("/v1/orders/not-a-uuid", StatusCode::BAD_REQUEST),
            ("/v1/orders?limit=0", StatusCode::BAD_REQUEST),
            ("/v1/orders?limit=101", StatusCode::BAD_REQUEST),
            ("/v1/orders?limit=x", StatusCode::BAD_REQUEST),
            ("/v1/orders?cursor=%25%25", StatusCode::BAD_REQUEST),
            ("/v1/orders?cursor=bm9wZQ", StatusCode::BAD_REQUEST),
            ("/v1/nothing", StatusCode::NOT_FOUND),
        ] {
            let (status, body) = app.send(Method::GET, path, token, None).await;
            assert_eq!(status, expected, "{path}: {body}");
        }
        let (status, _) = app.send(Method::DELETE, "/v1/orders", token, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let service = app.issuer.service_token("cart", "orders");
        for token in [None, Some("garbage"), Some(service.as_str())] {
            let (status, _) = app.send(Method::GET, "/v1/orders", token, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            let body = checkout_body(shopper.method);
            let (status, _) = app.send(Method::POST, "/v1/orders", token, Some(&body)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }

    async fn the_event_feed_is_for_services_only(app) {
        let shopper = app.shopper(1);
        let (status, _) = app.send(Method::GET, "/v1/events", Some(&shopper.token), None).await;
        assert!(matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), "{status}");
        let (status, _) = app.send(Method::GET, "/v1/events", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
