//! Hostile and malformed input: always a clear problem+json 4xx, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{read_json, spawn};

souk_chassis::backend_tests! { spawn;

    async fn malformed_bodies_are_4xx_problems(app) {
        let user = app.user("u1");
        let service = app.service();
        for (path, token) in [("/v1/payment-methods", &user), ("/v1/payments", &service)] {
            for (body, content_type, expected) in [
                ("{", "application/json", StatusCode::BAD_REQUEST),
                ("{,}", "application/json", StatusCode::BAD_REQUEST),
                ("[]", "application/json", StatusCode::UNPROCESSABLE_ENTITY),
                ("null", "application/json", StatusCode::UNPROCESSABLE_ENTITY),
                ("{}", "application/json", StatusCode::UNPROCESSABLE_ENTITY),
                ("{}", "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
                ("\u{0}\u{1}", "application/json", StatusCode::BAD_REQUEST),
            ] {
                let response = app.server.client.post(app.server.url(path)).bearer_auth(token)
                    .header("content-type", content_type).body(body).send().await.unwrap();
                let (status, problem) = read_json(response).await;
                assert_eq!(status, expected, "{path} {body:?} as {content_type}: {problem}");
            }
        }
    }

    async fn unknown_fields_are_refused(app) {
        let mut body = crate::helpers::card(crate::helpers::VISA);
        body["cvv"] = json!("123");
        let (status, problem) = app.send(Method::POST, "/v1/payment-methods", Some(&app.user("u1")), Some(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(!problem.to_string().contains("4242424242"), "{problem}");
    }

    async fn non_uuid_ids_are_400(app) {
        let user = app.user("u1");
        let service = app.service();
        for id in ["abc", "1", "00000000-0000-0000-0000-00000000000g", "%00"] {
            let (status, _) = app.send(Method::GET, &format!("/v1/payment-methods/{id}"), Some(&user), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
            let (status, _) = app.send(Method::POST, &format!("/v1/payments/{id}/refund"), Some(&service), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
        }
    }

    async fn oversized_bodies_are_413(app) {
        let huge = format!("{{\"card_number\":\"{}\"}}", "4".repeat(100 * 1024));
        let response = app.server.client.post(app.server.url("/v1/payment-methods"))
            .bearer_auth(app.user("u1")).header("content-type", "application/json").body(huge).send().await.unwrap();
        let (status, problem) = read_json(response).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    }

    async fn undeclared_methods_are_405_and_unknown_paths_404(app) {
        let (status, _) = app.send(Method::DELETE, "/v1/payment-methods", Some(&app.user("u1")), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = app.send(Method::PUT, "/v1/payments", Some(&app.service()), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = app.send(Method::GET, "/v1/refunds", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
