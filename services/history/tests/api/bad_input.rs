//! Who may ask, and what bad requests get: 401 without a user's token, a problem+json 4xx for
//! bad input, never a 500 (the shared reader fails any 500 or non-problem error).

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::fixtures::placed;
use crate::helpers::spawn;

souk_chassis::backend_tests! { spawn;

    async fn the_history_wants_a_users_token(app) {
        let order = Uuid::now_v7();
        app.deliver(&placed(order, "alice")).await;
        let service = app.issuer.service_token("orders", "history");
        let wrong_audience = app.issuer.token("alice", "user", "elsewhere");
        for path in ["/v1/history".to_owned(), format!("/v1/history/{order}")] {
            for token in [None, Some("not-a-token"), Some(service.as_str()), Some(wrong_audience.as_str())] {
                let (status, problem) = app.send(Method::GET, &path, token).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with {token:?}: {problem}");
                assert_eq!(problem["type"], "urn:souk:problem:unauthorized");
            }
        }
        // An administrator is a user too, with a history of their own (empty here).
        let (status, page) = app.send(Method::GET, "/v1/history", Some(&app.admin())).await;
        assert_eq!((status, page["items"].as_array().unwrap().len()), (StatusCode::OK, 0));
    }

    async fn bad_input_is_a_4xx_problem(app) {
        let token = app.user("alice");
        let bad_shape = souk_chassis::pagination::encode_cursor(&"not a position");
        let cases = [
            ("/v1/history?limit=0", StatusCode::BAD_REQUEST),
            ("/v1/history?limit=101", StatusCode::BAD_REQUEST),
            ("/v1/history?limit=-1", StatusCode::BAD_REQUEST),
            ("/v1/history?limit=ten", StatusCode::BAD_REQUEST),
            ("/v1/history?limit=99999999999999999999", StatusCode::BAD_REQUEST),
            ("/v1/history?cursor=%%%", StatusCode::BAD_REQUEST),
            ("/v1/history?cursor=bm90LWpzb24", StatusCode::BAD_REQUEST),
            (&format!("/v1/history?cursor={bad_shape}"), StatusCode::BAD_REQUEST),
            ("/v1/history?user_id=bob", StatusCode::BAD_REQUEST),
            ("/v1/history/not-a-uuid", StatusCode::BAD_REQUEST),
            ("/v1/history/%00", StatusCode::BAD_REQUEST),
            ("/v1/history/a/b", StatusCode::NOT_FOUND),
            ("/v1/purchases", StatusCode::NOT_FOUND),
        ];
        for (path, expected) in cases {
            let (status, problem) = app.send(Method::GET, path, Some(&token)).await;
            assert_eq!(status, expected, "{path}: {problem}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            let (status, _) = app.send(method.clone(), "/v1/history", Some(&token)).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        }
        let long = format!("/v1/history?cursor={}", "A".repeat(5000));
        let (status, _) = app.send(Method::GET, &long, Some(&token)).await;
        assert!(status.is_client_error(), "{status}");
    }

    async fn it_reports_health_and_readiness(app) {
        for path in ["/healthz", "/readyz"] {
            let response = app.server.client.get(app.server.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
        let metrics = app.server.client.get(app.server.url("/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), StatusCode::OK);
    }
}
