//! The public API as the clients people have meet it: `curl --compressed` (what every browser and
//! HTTP library does with `Accept-Encoding`) on the product page aggregate, and Python's urllib,
//! which writes a request's whole body before it reads the answer, on early answers.

use std::process::Command;

use serde_json::Value;

use crate::helpers::Shop;

/// The 200 schema of `GET path` in the merged OpenAPI document, as a standalone JSON Schema whose
/// `#/components/...` references resolve.
fn answer_validator(openapi: &Value, path: &str) -> jsonschema::Validator {
    let schema =
        &openapi["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "no 200 schema for {path}");
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": openapi["components"],
        "allOf": [schema],
    });
    jsonschema::validator_for(&root).unwrap()
}

/// `curl --compressed` (plus `extra` arguments): the status and the decoded body.
fn curl(url: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    let output = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--compressed",
            "--max-time",
            "10",
        ])
        .args(["--write-out", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {extra:?} {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut body = output.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[split + 1..]).parse().unwrap();
    body.truncate(split);
    (status, body)
}

/// Every `Accept-Encoding` a client sends gets the whole aggregate, valid against its schema.
async fn the_product_page_answers_every_accept_encoding(shop: &Shop) {
    let openapi: Value = shop.get("/api/openapi.json").await.json().await.unwrap();
    let validator = answer_validator(&openapi, "/api/v1/products/{id}/details");
    let page: Value = shop
        .get("/api/v1/products?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let id = page["items"][0]["id"].as_str().unwrap();
    let url = format!("http://{}/api/v1/products/{id}/details", shop.gateway);
    let encodings: [&[&str]; 7] = [
        &[],
        &["-H", "Accept-Encoding:"],
        &["-H", "Accept-Encoding: identity"],
        &["-H", "Accept-Encoding: gzip"],
        &["-H", "Accept-Encoding: deflate"],
        &["-H", "Accept-Encoding: br"],
        &["-H", "Accept-Encoding: gzip, deflate, br, zstd"],
    ];
    for extra in encodings {
        let (status, body) = curl(&url, extra);
        assert_eq!(status, 200, "{extra:?}: {}", String::from_utf8_lossy(&body));
        let body: Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{extra:?}: not JSON ({e})"));
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{extra:?}: {errors:?} in {body}");
        assert_eq!(body["product"]["id"], id, "{extra:?}: {body}");
    }
}

/// What Python's urllib makes of `POST path` with a `size`-byte body (written whole before the
/// answer is read): `"<status> <content-type>"`, or the exception it raised.
fn urllib_post(url: &str, size: usize) -> String {
    let script = r#"
import sys, urllib.request, urllib.error
url, size = sys.argv[1], int(sys.argv[2])
request = urllib.request.Request(url, data=b"x" * size, method="POST",
                                 headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        print(answer.status, answer.headers.get("Content-Type"))
except urllib.error.HTTPError as answer:
    answer.read()
    print(answer.code, answer.headers.get("Content-Type"))
except Exception as error:
    print("error:", type(error).__name__, error)
"#;
    let output = Command::new("python3")
        .args(["-c", script, url, &size.to_string()])
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A client that writes before it reads gets every early answer, not a broken pipe or a reset.
fn early_answers_reach_clients_that_write_first(shop: &Shop) {
    for size in [2 << 20, 8 << 20] {
        for (path, expected) in [
            // Over every route's body limit: refused before the body is read.
            ("/api/v1/auth/register", "413"),
            // Signed-in routes refuse an anonymous caller before reading its body.
            ("/api/v1/orders", "401"),
            ("/api/v1/payment-methods", "401"),
        ] {
            let url = format!("http://{}{path}", shop.gateway);
            let answer = urllib_post(&url, size);
            assert_eq!(
                answer,
                format!("{expected} application/problem+json"),
                "{size} bytes to {path}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_clients_meet_the_shop_in_both_topologies() {
    for topology in ["up", "monolith"] {
        let mut shop = Shop::start(topology, &[]).await;
        the_product_page_answers_every_accept_encoding(&shop).await;
        tokio::task::block_in_place(|| early_answers_reach_clients_that_write_first(&shop));
        let (status, _) = shop.stop();
        assert!(status.success(), "{topology}: {status}");
    }
}
