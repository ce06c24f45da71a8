//! Early answers to clients that write before they read: an answer the gateway gives before it
//! has read the request's body (413, 401, 429, 404, 405, 502/503) reaches a client that sends its
//! whole body first — Python's urllib and requests, Java's HttpURLConnection — instead of a
//! broken pipe or a reset (lingering close, `src/linger.rs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::helpers::{Stub, TestGateway, refused_addr, toml_list};

/// More than loopback's socket buffers absorb, so a client that writes it all before reading
/// would block on a gateway that stopped reading, or be reset by one that closed.
const BODY: usize = 8 * 1024 * 1024;

/// Sends `head` (without its blank line) and a `BODY`-byte body in full, then reads the answer
/// to its end: the status line and the answer's `content-type`.
fn write_then_read(gateway: SocketAddr, head: &str) -> Result<(String, String), String> {
    let mut stream = TcpStream::connect(gateway).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let head =
        format!("{head}\r\ncontent-length: {BODY}\r\ncontent-type: application/json\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("writing the head: {e}"))?;
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..BODY / chunk.len() {
        stream
            .write_all(&chunk)
            .map_err(|e| format!("writing the body: {e}"))?;
    }
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading the answer: {e}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let content_type = answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((status, content_type))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_writes_its_whole_body_first_reads_every_early_answer() {
    let upstream = Stub::start("shop").await;
    let gateway = TestGateway::start(&format!(
        r#"
        [auth]
        jwks_upstream = "identity"
        issuer = "souk-identity"
        audience = "souk"

        [[routes]]
        name = "small"
        prefix = "/small"
        upstream = "shop"
        body_limit_bytes = 1024

        [[routes]]
        name = "me"
        prefix = "/me"
        upstream = "shop"
        policy = "user"

        [[routes]]
        name = "limited"
        prefix = "/limited"
        upstream = "shop"
        body_limit_bytes = 1073741824
        [routes.rate_limit]
        client_per_minute = 1
        client_burst = 1

        [[routes]]
        name = "read-only"
        prefix = "/read-only"
        methods = ["GET"]
        upstream = "shop"

        [[routes]]
        name = "down"
        prefix = "/down"
        upstream = "down"
        body_limit_bytes = 1073741824

        [upstreams.shop]
        endpoints = {shop}
        [upstreams.shop.health]
        path = ""
        [upstreams.down]
        endpoints = {down}
        [upstreams.down.health]
        path = ""
        [upstreams.identity]
        endpoints = {down}
        "#,
        shop = toml_list(&[upstream.addr]),
        down = toml_list(&[refused_addr()]),
    ));
    // The limited route's one request is spent first.
    assert_eq!(
        gateway
            .client
            .post(gateway.url("/limited"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let cases = [
        ("POST /small HTTP/1.1", "413"),
        ("POST /me HTTP/1.1", "401"),
        ("POST /limited HTTP/1.1", "429"),
        ("POST /read-only HTTP/1.1", "405"),
        ("POST /nowhere HTTP/1.1", "404"),
        ("POST /down HTTP/1.1", "50"),
    ];
    let addr = gateway.addr;
    for (request, expected) in cases {
        let head = format!("{request}\r\nhost: shop.test");
        let answer = tokio::task::spawn_blocking(move || write_then_read(addr, &head))
            .await
            .unwrap();
        let (status, content_type) = answer.unwrap_or_else(|e| panic!("{request}: {e}"));
        assert!(
            status.starts_with(&format!("HTTP/1.1 {expected}")),
            "{request}: {status}"
        );
        assert_eq!(content_type, "application/problem+json", "{request}");
    }
    assert_eq!(
        upstream.hits(),
        1,
        "no refused request reached the upstream"
    );
}
