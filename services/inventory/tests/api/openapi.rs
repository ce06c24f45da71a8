//! The committed OpenAPI document matches the code, so an API change shows up in review.

use reqwest::StatusCode;

use crate::helpers::spawn_unsynced;

const COMMITTED: &str = include_str!("../../openapi.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = souk_inventory::ApiDoc::json();
    assert!(
        generated == COMMITTED,
        "services/inventory/openapi.json is out of date: regenerate it with\n  cargo run -q -p souk-inventory -- openapi > services/inventory/openapi.json\nand review the diff"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_names_every_route() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (method, path) in [
        ("get", "/v1/availability"),
        ("get", "/v1/availability/{product_id}"),
        ("get", "/v1/admin/stock/{sku}"),
        ("put", "/v1/admin/stock/{sku}"),
        ("post", "/v1/admin/stock/{sku}/adjustments"),
        ("post", "/v1/reservations"),
        ("get", "/v1/reservations/{order_id}"),
        ("post", "/v1/reservations/{order_id}/release"),
        ("post", "/v1/reservations/{order_id}/commit"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

souk_chassis::backend_tests! { spawn_unsynced;
    async fn the_service_serves_its_document(app) {
        let (status, doc) = app.get("/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc, serde_json::from_str::<serde_json::Value>(COMMITTED).unwrap());
    }
}
