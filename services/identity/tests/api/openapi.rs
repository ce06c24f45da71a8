//! The committed OpenAPI document matches the code, so an API change shows up in review.

use reqwest::StatusCode;

use crate::helpers::spawn;

const COMMITTED: &str = include_str!("../../openapi.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = souk_identity::ApiDoc::json();
    assert!(
        generated == COMMITTED,
        "services/identity/openapi.json is out of date: regenerate it with\n  cargo run -q -p souk-identity -- openapi > services/identity/openapi.json\nand review the diff"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_names_every_route() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (method, path) in [
        ("post", "/v1/auth/register"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
        ("post", "/v1/auth/password"),
        ("get", "/v1/me"),
        ("get", "/.well-known/jwks.json"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing"
        );
    }
    for schema in ["Problem", "FieldError", "Role", "Jwks", "Jwk"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} is missing"
        );
    }
}

souk_chassis::backend_tests! { spawn;
    async fn the_service_serves_its_document(app) {
        let reply = app.get("/openapi.json", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["content-type"], "application/json");
        assert!(reply.text == COMMITTED, "the served document differs from the committed one");
    }
}
