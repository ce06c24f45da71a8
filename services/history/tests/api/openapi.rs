//! The committed OpenAPI document matches the code, so an API change shows up in review.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn;

const COMMITTED: &str = include_str!("../../openapi.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = souk_history::ApiDoc::json();
    assert!(
        generated == COMMITTED,
        "services/history/openapi.json is out of date: regenerate it with\n  cargo run -q -p souk-history -- openapi > services/history/openapi.json\nand review the diff"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_names_every_route() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/v1/history", "/v1/history/{order_id}"] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "GET {path} is missing"
        );
    }
    let purchase = &doc["components"]["schemas"]["PurchaseView"]["properties"];
    for field in [
        "order_id",
        "status",
        "cancel_reason",
        "lines",
        "total",
        "payment",
        "placed_at",
        "confirmed_at",
        "refunded_at",
    ] {
        assert!(purchase[field].is_object(), "{field} is missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

souk_chassis::backend_tests! { spawn;
    async fn the_service_serves_its_document(app) {
        let (status, doc) = app.send(Method::GET, "/openapi.json", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc, serde_json::from_str::<serde_json::Value>(COMMITTED).unwrap());
    }
}
