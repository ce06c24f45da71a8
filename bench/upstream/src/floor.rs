//! The floor under bench/gateway.sh: the least a reverse proxy built on hyper can do. It is not
//! a proxy anyone should run — no routing, header hygiene, timeouts, retries, health, metrics or
//! logs — but it shows what hyper and tokio alone cost per proxied request, so the benchmark can
//! tell the gateway's own overhead from its stack's.
//!
//! One thread (a current-thread runtime). Each client connection gets its own upstream
//! connection, opened on its first request and driven by one spawned task; requests are sent on
//! with their headers as they came, and bodies stream both ways. No pool to look up, no timer.
//!
//! Usage: `souk-bench-floor --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

#[allow(
    clippy::expect_used,
    reason = "start-up: failing to bind ends the program"
)]
fn main() {
    let (listen, upstream) = parse_args();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind(listen).await.expect("cannot bind");
        let bound = listener
            .local_addr()
            .expect("cannot read the bound address");
        println!("listening on {bound}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream, upstream));
        }
    });
}

/// `--listen ADDR` (default 127.0.0.1:0) and `--upstream ADDR` (required).
#[allow(clippy::expect_used, reason = "start-up: a bad flag ends the program")]
fn parse_args() -> (SocketAddr, SocketAddr) {
    let (mut listen, mut upstream) = (SocketAddr::from(([127, 0, 0, 1], 0)), None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().expect("every flag takes a value");
        let addr = value.parse().expect("addresses look like 127.0.0.1:8080");
        match flag.as_str() {
            "--listen" => listen = addr,
            "--upstream" => upstream = Some(addr),
            other => panic!("unknown flag {other}; flags: --listen ADDR, --upstream ADDR"),
        }
    }
    (listen, upstream.expect("--upstream ADDR is required"))
}

/// One client connection, with its own upstream connection.
async fn serve(stream: TcpStream, upstream: SocketAddr) {
    let sender: Arc<Mutex<Option<client::SendRequest<Incoming>>>> = Arc::default();
    let service = service_fn(move |request: Request<Incoming>| {
        let sender = Arc::clone(&sender);
        async move { Ok::<_, Infallible>(forward(&sender, upstream, request).await) }
    });
    // A load generator resets its connections when it stops; that is no news.
    let _ = server::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn forward(
    sender: &Mutex<Option<client::SendRequest<Incoming>>>,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    let mut sender = sender.lock().await;
    if sender.as_ref().is_none_or(client::SendRequest::is_closed) {
        *sender = connect(upstream).await;
    }
    let Some(connection) = sender.as_mut() else {
        return bad_gateway();
    };
    match connection.send_request(request).await {
        Ok(response) => response.map(UnsyncBoxBody::new),
        Err(_) => bad_gateway(),
    }
}

async fn connect(upstream: SocketAddr) -> Option<client::SendRequest<Incoming>> {
    let stream = TcpStream::connect(upstream).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = client::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

fn bad_gateway() -> Response<Body> {
    let mut response = Response::new(UnsyncBoxBody::new(
        Empty::new().map_err(|never: Infallible| match never {}),
    ));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
