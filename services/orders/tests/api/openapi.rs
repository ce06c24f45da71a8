//! The committed OpenAPI document matches the code, so an API change shows up in review.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn;

const COMMITTED: &str = include_str!("../../openapi.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = souk_orders::ApiDoc::json();
    assert!(
        generated == COMMITTED,
        "services/orders/openapi.json is out of date: regenerate it with\n  cargo run -q -p souk-orders -- openapi > services/orders/openapi.json\nand review the diff"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_names_every_route() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/v1/orders", "post"),
        ("/v1/orders", "get"),
        ("/v1/orders/{id}", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing"
        );
    }
    for schema in [
        "Problem",
        "OrderView",
        "OrderLine",
        "CancelReason",
        "ShippingAddress",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

souk_chassis::backend_tests! { spawn;
    async fn the_service_serves_its_document(app) {
        let (status, doc) = app.send(Method::GET, "/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc, serde_json::from_str::<serde_json::Value>(COMMITTED).unwrap());
    }
}
