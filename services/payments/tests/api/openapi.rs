//! The committed OpenAPI document matches the code, so an API change shows up in review.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn;

const COMMITTED: &str = include_str!("../../openapi.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = souk_payments::ApiDoc::json();
    assert!(
        generated == COMMITTED,
        "services/payments/openapi.json is out of date: regenerate it with\n  cargo run -q -p souk-payments -- openapi > services/payments/openapi.json\nand review the diff"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_names_every_route() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/v1/payment-methods", "post"),
        ("/v1/payment-methods", "get"),
        ("/v1/payment-methods/{id}", "get"),
        ("/v1/payments", "post"),
        ("/v1/payments/{order_id}", "get"),
        ("/v1/payments/{order_id}/refund", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

souk_chassis::backend_tests! { spawn;
    async fn the_service_serves_its_document(app) {
        let (status, doc) = app.send(Method::GET, "/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc, serde_json::from_str::<serde_json::Value>(COMMITTED).unwrap());
    }
}
