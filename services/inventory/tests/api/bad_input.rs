//! Hostile and malformed input: always a clear problem+json 4xx, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{line, read_json, spawn};

async fn post_raw(
    app: &crate::helpers::TestApp,
    body: &str,
    content_type: &str,
) -> (StatusCode, Value) {
    let response = app
        .server
        .client
        .post(app.server.url("/v1/reservations"))
        .bearer_auth(app.service())
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    read_json(response).await
}

souk_chassis::backend_tests! { spawn;

    async fn malformed_bodies_are_4xx(app) {
        for (body, content_type, expected) in [
            ("{", "application/json", StatusCode::BAD_REQUEST),
            ("", "application/json", StatusCode::BAD_REQUEST),
            ("[]", "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"order_id":"not-a-uuid","lines":[]}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"order_id":"0190b3a0-0000-7000-8000-000000000001"}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"order_id":"0190b3a0-0000-7000-8000-000000000001","lines":[],"extra":1}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"order_id":"0190b3a0-0000-7000-8000-000000000001","lines":[{"product_id":"x","quantity":1}]}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"order_id":"0190b3a0-0000-7000-8000-000000000001","lines":[{"product_id":"0190b3a0-0000-7000-8000-000000000001","quantity":1.5}]}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"order_id":"0190b3a0-0000-7000-8000-000000000001","lines":[]}"#, "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ] {
            let (status, problem) = post_raw(&app, body, content_type).await;
            assert_eq!(status, expected, "{body} as {content_type}: {problem}");
        }
    }

    async fn lines_are_validated_field_by_field(app) {
        let product = app.new_product(500).await;
        let other = app.new_product(500).await;
        let cases: Vec<(Vec<Value>, &str)> = vec![
            (vec![], "lines"),
            (vec![line(product, 0)], "lines[0].quantity"),
            (vec![line(product, 100)], "lines[0].quantity"),
            (vec![line(product, -5)], "lines[0].quantity"),
            (vec![line(product, 1), line(other, 1), line(product, 2)], "lines[2].product_id"),
            ((0..101).map(|_| line(Uuid::now_v7(), 1)).collect(), "lines"),
        ];
        for (lines, field) in cases {
            let (status, problem) = app.reserve(Uuid::now_v7(), lines).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        assert_eq!(app.stock(product).await.available, 500);
        let (status, _) = app.reserve(Uuid::now_v7(), vec![line(product, 99)]).await;
        assert_eq!(status, StatusCode::CREATED, "99 is allowed");
    }

    async fn bad_order_ids_in_paths_are_400(app) {
        for id in ["abc", "1", &"x".repeat(2000), "%00"] {
            for path in [format!("/v1/reservations/{id}"), format!("/v1/reservations/{id}/release"), format!("/v1/reservations/{id}/commit")] {
                let method = if path.ends_with("release") || path.ends_with("commit") { Method::POST } else { Method::GET };
                let (status, problem) = app.send(method, &path, Some(&app.service()), None).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {problem}");
            }
        }
    }

    async fn odd_skus_are_404_not_500(app) {
        for sku in ["%27%3B--", "x", &"A".repeat(500), "%F0%9F%98%80"] {
            let path = format!("/v1/admin/stock/{sku}");
            let (status, _, problem) = app.send_with(Method::PUT, &path, Some(&app.admin()), &[("if-match", "\"1\"")], Some(&json!({ "quantity": 1 }))).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{sku}: {problem}");
            let (status, problem) = app.send(Method::GET, &path, Some(&app.admin()), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{sku}: {problem}");
            let (status, problem) = app.adjust(sku, 1, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{sku}: {problem}");
        }
    }

    async fn oversized_bodies_are_413_and_other_methods_405(app) {
        let body = format!("{{\"order_id\":\"{}\",\"lines\":[{}]}}", Uuid::now_v7(), "1,".repeat(40_000));
        let (status, _) = post_raw(&app, &body, "application/json").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let response = app.server.client.delete(app.server.url("/v1/reservations")).send().await.unwrap();
        let (status, _) = read_json(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
