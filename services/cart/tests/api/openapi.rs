//! The committed OpenAPI document matches the code, so an API change shows up in review.

use reqwest::StatusCode;

use crate::helpers::{Backend, read_json, spawn};

const COMMITTED: &str = include_str!("../../openapi.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = souk_cart::ApiDoc::json();
    assert!(
        generated == COMMITTED,
        "services/cart/openapi.json is out of date: regenerate it with\n  cargo run -q -p souk-cart -- openapi > services/cart/openapi.json\nand review the diff"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_names_every_route() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/v1/cart", "get"),
        ("/v1/cart", "delete"),
        ("/v1/cart/items/{product_id}", "put"),
        ("/v1/cart/items/{product_id}", "delete"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing"
        );
    }
    for schema in ["CartView", "LineView", "Problem"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

#[tokio::test]
async fn the_service_serves_its_document() {
    let app = spawn(Backend::Sqlite).await.unwrap();
    let response = app
        .server
        .client
        .get(app.server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    let (status, doc) = read_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc,
        serde_json::from_str::<serde_json::Value>(COMMITTED).unwrap()
    );
}
