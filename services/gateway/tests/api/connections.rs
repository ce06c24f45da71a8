//! Slow, huge and many: clients that never finish their headers are cut off after
//! `header_timeout_ms`, headers over `max_header_bytes` get a 431, and connections beyond
//! `max_connections_per_address` or `max_connections` are refused with a 503 as they are
//! accepted — so no number of idle or half-sent connections exhausts the gateway's memory.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{Stub, TestGateway, toml_list};

fn gateway_for(stub: &Stub, limits: &str) -> TestGateway {
    TestGateway::start_with(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nthreads = 2\n\
         access_log = false\n{limits}\n\n[[routes]]\nname = \"all\"\nprefix = \"/\"\n\
         upstream = \"echo\"\n[upstreams.echo]\nendpoints = {}\n",
        toml_list(&[stub.addr])
    ))
}

/// A connection to `gateway` from the loopback address `from` (a client of its own).
async fn connect_from(gateway: SocketAddr, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(gateway).await.unwrap()
}

/// Everything the gateway sends until it closes the connection (or 10 s pass).
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

/// Whether the gateway has closed `stream` without a word within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unterminated_headers_are_cut_off_and_huge_ones_refused() {
    let stub = Stub::start("echo").await;
    let gateway = gateway_for(&stub, "header_timeout_ms = 300\nmax_header_bytes = 16384");

    // The slow client: a request line and half a header, then nothing.
    let started = Instant::now();
    let mut slow = TcpStream::connect(gateway.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: shop\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(
        answer.is_some(),
        "an unterminated request held its connection for 10 s"
    );
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(250),
        "cut off only after the timeout: {held:?}"
    );

    // Dribbling bytes does not reset the clock: the whole head must come within the timeout.
    let started = Instant::now();
    let mut dribble = TcpStream::connect(gateway.addr).await.unwrap();
    dribble
        .write_all(b"GET / HTTP/1.1\r\nHost: shop\r\n")
        .await
        .unwrap();
    let mut cut = false;
    for _ in 0..50 {
        if dribble.write_all(b"X: y\r\n").await.is_err()
            || closed_within(&mut dribble, Duration::from_millis(100)).await
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a client dribbling headers kept its connection for {:?}",
        started.elapsed()
    );

    // A head over the limit: 431, and nothing reaches the upstream.
    let mut huge = TcpStream::connect(gateway.addr).await.unwrap();
    let header = format!(
        "GET / HTTP/1.1\r\nHost: shop\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let _ = huge.write_all(header.as_bytes()).await;
    let answer = read_until_closed(&mut huge).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    assert_eq!(stub.hits(), 0);

    // An ordinary request still goes through.
    assert_eq!(gateway.get_status("/fine").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_caps_are_refused_at_once() {
    let stub = Stub::start("echo").await;
    let gateway = gateway_for(
        &stub,
        "header_timeout_ms = 20000\nmax_connections = 8\nmax_connections_per_address = 5",
    );
    // A held connection: one whole request answered (so the gateway has surely admitted and
    // counted it), then kept open, idle.
    let hold = |mut stream: TcpStream| async move {
        stream
            .write_all(b"GET /held HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
                .await
                .expect("the held connection is answered")
                .unwrap();
            assert!(n > 0, "the held connection was closed");
            answer.extend_from_slice(&chunk[..n]);
        }
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        stream
    };

    // One address opens its five, then one more: refused at once, with a 503.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(hold(connect_from(gateway.addr, "127.0.0.2").await).await);
    }
    let mut sixth = connect_from(gateway.addr, "127.0.0.2").await;
    let answer = read_until_closed(&mut sixth)
        .await
        .expect("refused at once");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too-many-connections"), "{answer}");

    // Another address gets its own, up to the total of eight.
    for _ in 0..3 {
        held.push(hold(connect_from(gateway.addr, "127.0.0.3").await).await);
    }
    let mut ninth = connect_from(gateway.addr, "127.0.0.4").await;
    let answer = read_until_closed(&mut ninth)
        .await
        .expect("refused at once");
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "over the total: {answer}"
    );

    // Connections that close give their slots back: a new client gets through.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = gateway
            .client
            .get(gateway.url("/again"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if matches!(status, Ok(200)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots were not given back: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
