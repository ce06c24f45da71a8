//! `processor.failure_percent`: charges fail retryably, record nothing, and succeed once the
//! processor recovers.

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::helpers::{VISA, charge_body, spawn_with};

async fn failing(backend: souk_chassis::test_util::Backend) -> Option<crate::helpers::TestApp> {
    spawn_with(backend, |config| config.processor.failure_percent = 100).await
}

souk_chassis::backend_tests! { failing;

    async fn a_failing_processor_is_503_then_a_retry_succeeds(app) {
        let method = app.method_id("u1", VISA).await;
        let order = Uuid::now_v7();
        let body = charge_body(order, "u1", &method, 1200);
        for _ in 0..2 {
            let (status, headers, problem) = app.charge_allowing_5xx(&body).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
            assert_eq!(problem["type"], "urn:souk:problem:processor-unavailable");
            assert_eq!(headers["retry-after"], "1");
        }
        assert_eq!(app.payment(order).await.0, StatusCode::NOT_FOUND);
        // The processor recovers: the same request, to an instance configured with 0 %.
        let (server, recovered) = app.another(|config| config.processor.failure_percent = 0).await;
        let token = app.service();
        let (status, _, payment) = app.send_on(&server, Method::POST, "/v1/payments", Some(&token), Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{payment}");
        assert_eq!(payment["status"], "captured");
        assert_eq!(recovered.processor.charge_calls(), 1);
    }
}
