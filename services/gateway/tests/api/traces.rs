//! The trace receiver over the network: a flood of exports stays within the store's bounds and
//! is counted, malformed exports are 400s that leave it answering, and the reads follow the
//! listeners' rules (a token on the admin listener, none on the read-only one).

use serde_json::{Value, json};

use crate::helpers::TestGateway;

/// A gateway whose store holds at most 500 spans and 64 KiB.
fn gateway() -> TestGateway {
    TestGateway::start(
        "[traces]\notlp_listen = \"127.0.0.1:0\"\nmax_spans = 500\nmax_bytes = 65536\n",
    )
}

/// An OTLP/JSON export of `spans` spans of trace `trace`, each with a 100-byte attribute.
fn export(trace: u32, spans: u32) -> Value {
    let spans: Vec<Value> = (0..spans)
        .map(|n| {
            json!({
                "traceId": format!("{trace:032x}"),
                "spanId": format!("{:016x}", n + 1),
                "name": format!("span {n}"),
                "kind": 2,
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000001000000",
                "attributes": [{"key": "db.query.text", "value": {"stringValue": "x".repeat(100)}}]
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "flood"}}]},
        "scopeSpans": [{"spans": spans}]
    }]})
}

async fn post(gateway: &TestGateway, content_type: &str, body: Vec<u8>) -> u16 {
    let url = format!("http://{}/v1/traces", gateway.otlp_addr.unwrap());
    gateway
        .client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_exports_stays_within_the_bounds_and_is_counted() {
    let gateway = gateway();
    let mut sends = tokio::task::JoinSet::new();
    for trace in 1..=40u32 {
        let body = serde_json::to_vec(&export(trace, 100)).unwrap();
        let (client, url) = (
            gateway.client.clone(),
            format!("http://{}/v1/traces", gateway.otlp_addr.unwrap()),
        );
        sends.spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    while let Some(status) = sends.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let list: Value = gateway
        .client
        .get(gateway.metrics_url("/traces?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let store = &list["store"];
    assert!(store["spans"].as_u64().unwrap() <= 500, "{store}");
    assert!(store["bytes"].as_u64().unwrap() <= 65_536, "{store}");
    assert_eq!(
        store["spans"].as_u64().unwrap() + store["dropped"].as_u64().unwrap(),
        4_000,
        "every span kept or counted as dropped: {store}"
    );
    let metrics = gateway
        .client
        .get(gateway.metrics_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_trace_spans_dropped_total"),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_trace_spans "), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_exports_are_refused_and_the_receiver_goes_on() {
    let gateway = gateway();
    for (content_type, body) in [
        ("application/x-protobuf", vec![0xff; 64]),
        (
            "application/json",
            b"{\"resourceSpans\": [{\"scopeSpans\": 3}]}".to_vec(),
        ),
        ("application/json", vec![b'['; 10_000]),
    ] {
        assert_eq!(post(&gateway, content_type, body).await, 400);
    }
    assert_eq!(post(&gateway, "text/plain", b"spans".to_vec()).await, 415);
    let body = serde_json::to_vec(&export(7, 3)).unwrap();
    assert_eq!(post(&gateway, "application/json", body).await, 200);
    let trace = format!("{:032x}", 7);
    let spans: Value = gateway
        .client
        .get(gateway.metrics_url(&format!("/traces/{trace}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spans["spans"].as_array().unwrap().len(), 3, "{spans}");
    assert_eq!(spans["spans"][0]["service"], "flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_wants_its_token_for_traces_and_the_read_only_one_does_not() {
    let gateway = gateway();
    for path in ["/traces", "/waterfall"] {
        let bare = gateway
            .client
            .get(gateway.admin_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), 401, "{path}");
        let with_token = gateway
            .admin
            .get(gateway.admin_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(with_token.status(), 200, "{path}");
        let read_only = gateway
            .client
            .get(gateway.metrics_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(read_only.status(), 200, "{path}");
    }
    let bad = gateway
        .client
        .get(gateway.metrics_url("/traces?min_ms=-1&limit=0&status=ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["errors"].as_array().unwrap().len(), 3, "{problem}");
}
