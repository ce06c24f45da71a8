//! The request-smuggling and header battery: raw bytes to the gateway over a plain TCP socket (no
//! HTTP client that would tidy them up), and a raw upstream socket that records exactly what the
//! gateway sent on. Every malformed or ambiguous request is refused (a 4xx, nothing reaches the
//! upstream), or normalised: one request reaches the upstream, framed one way only (CRLF line
//! ends, one Content-Length or chunked, never both), and nothing smuggled behind it ever does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::TestGateway;

/// An upstream that records each request it receives, as raw bytes (head and body), and
/// answers 200 to each.
struct RawUpstream {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&received);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_raw(stream, Arc::clone(&recorded)));
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    fn requests(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads requests off one upstream connection: the head, then a body by Content-Length or
/// chunked framing, records them, answers each.
async fn serve_raw(mut stream: TcpStream, received: Arc<Mutex<Vec<Vec<u8>>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let body_end = loop {
            let body = &buffer[head_end..];
            let complete = if head.contains("\r\ntransfer-encoding: chunked") {
                find(body, b"0\r\n\r\n").map(|at| head_end + at + 5)
            } else {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                (body.len() >= length).then_some(head_end + length)
            };
            if let Some(end) = complete {
                break end;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        received.lock().unwrap().push(buffer[..body_end].to_vec());
        buffer.drain(..body_end);
        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn gateway_for(upstream: &RawUpstream) -> TestGateway {
    TestGateway::start_with(&format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        admin_listen = "127.0.0.1:0"
        threads = 1
        access_log = false
        max_header_bytes = 16384

        [[routes]]
        name = "raw"
        prefix = "/"
        upstream = "raw"

        [upstreams.raw]
        endpoints = ["{}"]
        [upstreams.raw.health]
        path = ""
        [upstreams.raw.retry]
        max_retries = 0
        "#,
        upstream.addr
    ))
}

/// Sends `raw` on a fresh connection and reads what the gateway answers: until it closes, or
/// until it has sent at least one whole response and then nothing for a moment (a kept-alive
/// connection). The status codes of every response, in order.
async fn exchange(gateway: &TestGateway, raw: &[u8]) -> Vec<u16> {
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let wait = if whole_response(&answer) {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(10)
        };
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) if whole_response(&answer) => break,
            Err(_) => panic!("the gateway neither answered nor closed"),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text[at + 9..].get(..3)?.parse().ok())
        .collect()
}

/// Whether `bytes` hold at least one whole response (head, and a body of its Content-Length).
fn whole_response(bytes: &[u8]) -> bool {
    let Some(end) = find(bytes, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}

/// What a case must come to.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A 4xx of these, and nothing at the upstream.
    Refused(&'static [u16]),
    /// One 200, and one unambiguous request at the upstream whose body is this.
    Normalised(&'static [u8]),
    /// Either, whichever the parser chooses; never anything ambiguous.
    RefusedOrNormalised(&'static [u8]),
}

/// Every request the upstream received is framed one way only.
fn assert_unambiguous(case: &str, request: &[u8]) {
    let head_end = find(request, b"\r\n\r\n").expect("a head") + 4;
    let head = &request[..head_end];
    for (i, byte) in head.iter().enumerate() {
        if *byte == b'\n' {
            assert!(
                i > 0 && head[i - 1] == b'\r',
                "{case}: a bare LF reached the upstream: {:?}",
                String::from_utf8_lossy(head)
            );
        }
        if *byte == b'\r' {
            assert_eq!(
                head.get(i + 1),
                Some(&b'\n'),
                "{case}: a bare CR reached the upstream"
            );
        }
    }
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let lengths = text.matches("\r\ncontent-length:").count();
    let encodings = text.matches("\r\ntransfer-encoding:").count();
    assert!(
        lengths <= 1,
        "{case}: {lengths} Content-Length headers upstream: {text}"
    );
    assert!(
        lengths + encodings <= 1,
        "{case}: Content-Length and Transfer-Encoding upstream: {text}"
    );
    assert!(!text.contains("\r\n "), "{case}: a folded line upstream");
    assert!(
        !text.contains(" :"),
        "{case}: a space before a colon upstream"
    );
    assert!(
        !text.contains("smuggled"),
        "{case}: the smuggled request went through"
    );
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: shop\r\n\r\n";

fn cases() -> Vec<(&'static str, String, Expect)> {
    use Expect::{Normalised, Refused, RefusedOrNormalised};
    let post = |headers: &str, body: &str| {
        format!("POST /submit HTTP/1.1\r\nHost: shop\r\n{headers}\r\n{body}")
    };
    let get = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: shop\r\n\r\n");
    let long = "a".repeat(20_000);
    vec![
        // CL.TE and TE.CL: chunked wins, the length is dropped, the connection closes after.
        (
            "CL+TE",
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            RefusedOrNormalised(b""),
        ),
        (
            "TE+CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 50\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            RefusedOrNormalised(b""),
        ),
        (
            "duplicate Content-Length, different",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            Refused(&[400]),
        ),
        (
            "duplicate Content-Length, equal",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            RefusedOrNormalised(b"hello"),
        ),
        (
            "Content-Length list",
            post("Content-Length: 5, 6\r\n", "hello!"),
            Refused(&[400]),
        ),
        (
            "Content-Length with a sign",
            post("Content-Length: +5\r\n", "hello"),
            Refused(&[400]),
        ),
        (
            "Content-Length negative",
            post("Content-Length: -1\r\n", "hello"),
            Refused(&[400]),
        ),
        (
            "Content-Length in hex",
            post("Content-Length: 0x5\r\n", "hello"),
            Refused(&[400]),
        ),
        (
            "Content-Length with letters",
            post("Content-Length: 5a\r\n", "hello"),
            Refused(&[400]),
        ),
        (
            "Content-Length huge",
            post("Content-Length: 99999999999999999999999\r\n", "hello"),
            Refused(&[400, 413]),
        ),
        (
            "Transfer-Encoding xchunked",
            post(
                "Transfer-Encoding: xchunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            Refused(&[400, 501]),
        ),
        (
            "Transfer-Encoding chunked then identity",
            post(
                "Transfer-Encoding: chunked, identity\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            Refused(&[400, 501]),
        ),
        (
            "Transfer-Encoding twice",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
                "0\r\n\r\n",
            ),
            Refused(&[400, 501]),
        ),
        (
            "Transfer-Encoding with a space before the colon",
            post(
                "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n",
                "hello",
            ),
            Refused(&[400]),
        ),
        (
            "Transfer-Encoding folded",
            post(
                "Content-Length: 5\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\n",
                "hello",
            ),
            Refused(&[400]),
        ),
        (
            "Transfer-Encoding with a vertical tab",
            post("Transfer-Encoding:\x0bchunked\r\n", "0\r\n\r\n"),
            Refused(&[400]),
        ),
        (
            "Transfer-Encoding in capitals",
            post("TRANSFER-ENCODING: CHUNKED\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            Normalised(b"5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            "POST /submit HTTP/1.0\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .into(),
            Refused(&[400]),
        ),
        (
            "chunk size with garbage",
            post("Transfer-Encoding: chunked\r\n", "5x\r\nhello\r\n0\r\n\r\n"),
            Refused(&[400]),
        ),
        (
            "bare LF line ends",
            "POST /submit HTTP/1.1\nHost: shop\nContent-Length: 5\n\nhello".into(),
            RefusedOrNormalised(b"hello"),
        ),
        (
            "bare CR in a header",
            "GET /x HTTP/1.1\r\nHost: shop\r\nX-A: a\rb\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "obs-fold",
            "GET /x HTTP/1.1\r\nHost: shop\r\nX-A: a\r\n b\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "space before a colon",
            "GET /x HTTP/1.1\r\nHost: shop\r\nX-A : b\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "a header name with a space",
            "GET /x HTTP/1.1\r\nHost: shop\r\nX A: b\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "a header name with a control character",
            "GET /x HTTP/1.1\r\nHost: shop\r\nX\x01A: b\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "a header value with NUL",
            "GET /x HTTP/1.1\r\nHost: shop\r\nX-A: a\0b\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "a header value with DEL",
            "GET /x HTTP/1.1\r\nHost: shop\r\nX-A: a\x7fb\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "a header without a colon",
            "GET /x HTTP/1.1\r\nHost: shop\r\nX-A\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "two Host headers",
            "GET /x HTTP/1.1\r\nHost: shop\r\nHost: evil.example\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "no Host on HTTP/1.1",
            "GET /x HTTP/1.1\r\nX-A: b\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "an oversize request line",
            get(&format!("/{long}")),
            Refused(&[414, 431]),
        ),
        (
            "an oversize header",
            format!("GET /x HTTP/1.1\r\nHost: shop\r\nX-Big: {long}\r\n\r\n"),
            Refused(&[431]),
        ),
        (
            "absolute-form",
            "GET http://evil.example/x HTTP/1.1\r\nHost: shop\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "absolute-form with the shop's own host",
            "GET http://shop/x HTTP/1.1\r\nHost: shop\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "authority-form",
            "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n".into(),
            Refused(&[400, 405]),
        ),
        (
            "asterisk-form",
            "OPTIONS * HTTP/1.1\r\nHost: shop\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "dot segments",
            get("/api/v1/products/../admin/products"),
            Refused(&[400]),
        ),
        ("a dot segment", get("/api/./v1"), Refused(&[400])),
        (
            "encoded dot segments",
            get("/api/v1/products/%2e%2e/admin"),
            Refused(&[400]),
        ),
        (
            "an encoded slash",
            get("/api/v1/products%2f..%2fadmin"),
            Refused(&[400]),
        ),
        (
            "an encoded letter",
            get("/api/v1/%61dmin/products"),
            Refused(&[400]),
        ),
        ("an encoded NUL", get("/x%00"), Refused(&[400])),
        ("a bad percent escape", get("/x%zz"), Refused(&[400])),
        ("an empty segment", get("//x"), Refused(&[400])),
        ("a backslash", get("/x\\..\\admin"), Refused(&[400])),
        (
            "a space in the target",
            "GET /x y HTTP/1.1\r\nHost: shop\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "a NUL in the target",
            "GET /x\0 HTTP/1.1\r\nHost: shop\r\n\r\n".into(),
            Refused(&[400]),
        ),
        (
            "an unknown version",
            "GET /x HTTP/1.2\r\nHost: shop\r\n\r\n".into(),
            Refused(&[400, 505]),
        ),
        (
            "a plain request, for contrast",
            post("Content-Length: 5\r\n", "hello"),
            Normalised(b"hello"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_or_ambiguous_request_is_refused_or_normalised() {
    let upstream = RawUpstream::start().await;
    let gateway = gateway_for(&upstream);
    for (case, raw, expect) in cases() {
        let before = upstream.requests().len();
        let statuses = exchange(&gateway, raw.as_bytes()).await;
        let arrived: Vec<Vec<u8>> = upstream.requests()[before..].to_vec();
        for request in &arrived {
            assert_unambiguous(case, request);
        }
        let refused = |allowed: &[u16]| {
            statuses.len() == 1 && allowed.contains(&statuses[0]) && arrived.is_empty()
        };
        let normalised = |body: &[u8]| {
            statuses == [200]
                && arrived.len() == 1
                && arrived[0][find(&arrived[0], b"\r\n\r\n").unwrap() + 4..] == *body
        };
        let ok = match expect {
            Expect::Refused(allowed) => refused(allowed),
            Expect::Normalised(body) => normalised(body),
            Expect::RefusedOrNormalised(body) => {
                refused(&[400, 411, 413, 501])
                    || normalised(body)
                    || (statuses == [200] && arrived.len() == 1 && body.is_empty())
            }
        };
        assert!(
            ok,
            "{case}: expected {expect:?}; the client got {statuses:?}, the upstream {:?}",
            arrived
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect::<Vec<_>>()
        );
    }
    // Nothing smuggled in any case reached the upstream on a kept-alive connection either.
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| find(r, b"/smuggled").is_none())
    );
}
