//! Hostile and malformed input: always a clear problem+json 4xx, never a 500.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn;

cart_tests! { spawn;

    async fn malformed_bodies_are_4xx_problems(app) {
        let mug = app.catalog.add(100);
        let cases = [
            (r#"{"quantity": 1"#, "application/json", StatusCode::BAD_REQUEST),
            ("", "application/json", StatusCode::BAD_REQUEST),
            ("quantity=1", "application/x-www-form-urlencoded", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (r#"{"quantity": 1}"#, "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ("{}", "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            // (serde reads `[1]` as the struct `{"quantity": 1}`: harmless, so not refused.)
            ("[]", "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            ("1", "application/json", StatusCode::UNPROCESSABLE_ENTITY),
        ];
        for (body, content_type, expected) in cases {
            let (status, problem) = app.put_raw(mug, body, content_type).await;
            assert_eq!(status, expected, "{body:?} as {content_type}: {problem}");
        }
        assert_eq!(app.cart().await["items"], serde_json::json!([]));
    }

    async fn non_uuid_product_ids_are_400(app) {
        let long = "x".repeat(2000);
        for id in ["abc", "1", "00000000-0000-0000-0000-00000000000g", "%00", long.as_str()] {
            let path = format!("/v1/cart/items/{id}");
            for method in [Method::PUT, Method::DELETE] {
                let (status, problem) = app
                    .call(method.clone(), &path, Some(&app.token), Some(serde_json::json!({"quantity": 1})))
                    .await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {id}: {problem}");
            }
        }
    }

    async fn a_two_mebibyte_body_is_413(app) {
        let mug = app.catalog.add(100);
        let body = format!(r#"{{"quantity": 1, "note": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
        let (status, _) = app.put_raw(mug, &body, "application/json").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    async fn undeclared_methods_are_405_and_unknown_paths_404(app) {
        let (status, _) = app.call(Method::POST, "/v1/cart", Some(&app.token), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = app.call(Method::GET, "/v1/cart/items", Some(&app.token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
