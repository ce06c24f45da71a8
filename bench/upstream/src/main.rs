//! The upstream of bench/gateway.sh: answers every request with the same 100-byte JSON body.
//!
//! It does as little as a server can, so that a benchmark through a proxy measures the proxy.
//! `GET /readyz` answers 200 and `GET /stats` reports how many connections it has accepted,
//! which tells whether a proxy reuses its upstream connections.
//!
//! Usage: `souk-bench-upstream [--listen 127.0.0.1:0] [--threads 1]`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::runtime::Builder;

/// The body of every ordinary answer: exactly 100 bytes of JSON.
const BODY: &[u8] = br#"{"id":"0192f3a4-5b6c-7d8e-9f01-23456789abcd","name":"souk bench item","price_cents":12999,"ok":true}"#;
const _: () = assert!(BODY.len() == 100, "the benchmark body must be 100 bytes");

#[allow(
    clippy::expect_used,
    reason = "start-up: failing to bind ends the program"
)]
fn main() {
    let (listen, threads) = parse_args();
    let mut builder = match threads {
        0 | 1 => Builder::new_current_thread(),
        _ => Builder::new_multi_thread(),
    };
    if threads > 1 {
        builder.worker_threads(threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind(listen).await.expect("cannot bind");
        let bound = listener
            .local_addr()
            .expect("cannot read the bound address");
        println!("listening on {bound}");
        serve(listener).await;
    });
}

/// `--listen ADDR` (default 127.0.0.1:0) and `--threads N` (default 1, a current-thread runtime).
#[allow(clippy::expect_used, reason = "start-up: a bad flag ends the program")]
fn parse_args() -> (SocketAddr, usize) {
    let (mut listen, mut threads) = (SocketAddr::from(([127, 0, 0, 1], 0)), 1);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().expect("every flag takes a value");
        match flag.as_str() {
            "--listen" => {
                listen = value
                    .parse()
                    .expect("--listen takes an address like 127.0.0.1:8080")
            }
            "--threads" => threads = value.parse().expect("--threads takes a number"),
            other => panic!("unknown flag {other}; flags: --listen ADDR, --threads N"),
        }
    }
    (listen, threads)
}

/// Accepts connections for ever, one task each, HTTP/1 with keep-alive.
async fn serve(listener: TcpListener) {
    let accepted = Arc::new(AtomicU64::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, most likely: wait for some to close rather than spin.
                eprintln!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let accepted = Arc::clone(&accepted);
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, Arc::clone(&accepted)));
            // A load generator resets its connections when it stops; that is no news.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond<B>(
    request: Request<B>,
    accepted: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let get = request.method() == Method::GET;
    Ok(match request.uri().path() {
        "/readyz" if get => Response::new(Full::new(Bytes::from_static(b"ok\n"))),
        "/stats" if get => {
            let connections = accepted.load(Ordering::Relaxed);
            json(format!("{{\"connections\": {connections}}}\n").into())
        }
        _ => json(Bytes::from_static(BODY)),
    })
}

fn json(body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    let content_type = HeaderValue::from_static("application/json");
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}
