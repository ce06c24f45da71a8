//! The harness: a gateway on port 0 for each test, and small local upstreams ("stubs") whose
//! answers, delays and health the test controls and whose hits it counts.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use souk_chassis::Shutdown;
use souk_chassis::server::ShutdownTrigger;
use souk_gateway::{GatewayConfig, Running};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The media type of the gateway's own errors.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `[server]` section every in-process test gateway uses: port 0 on loopback, two threads.
pub fn server_section(access_log: bool) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nthreads = 2\naccess_log = {access_log}\n\n"
    )
}

/// The admin token of every test gateway (given as `SOUK_GATEWAY_ADMIN_TOKEN` would be).
pub const ADMIN_TOKEN: &str = "the test gateway's admin token";

/// `addrs` as a TOML array of strings.
pub fn toml_list(addrs: &[SocketAddr]) -> String {
    let quoted: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A loopback address where nothing listens: bound, then closed, so connections are refused.
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

/// A client with a bound on every request, so a hung gateway fails the test instead of blocking it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// A client that sends the admin token with every request.
pub fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}")
            .parse()
            .expect("a header value"),
    );
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .expect("reqwest client")
}

/// A gateway running in this process until dropped.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The read-only listener, when the configuration has one.
    pub metrics_addr: Option<SocketAddr>,
    /// The trace receiver, when the configuration has `[traces]`.
    pub otlp_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    /// A client carrying the admin token.
    pub admin: reqwest::Client,
    trigger: ShutdownTrigger,
    running: Option<Running>,
}

impl TestGateway {
    /// Starts a gateway on `body` (routes and upstreams) under the standard test `[server]`.
    pub fn start(body: &str) -> Self {
        Self::start_with(&format!("{}{body}", server_section(false)))
    }

    /// Starts a gateway on a whole configuration file's text.
    pub fn start_with(toml: &str) -> Self {
        souk_chassis::test_util::init_test_logging();
        let mut config = GatewayConfig::parse(toml).expect("the test configuration is valid");
        config.server.admin_token = souk_chassis::Secret::new(ADMIN_TOKEN);
        let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(1));
        let running = souk_gateway::start(config, None, shutdown).expect("the gateway starts");
        Self {
            addr: running.addr,
            admin_addr: running.admin_addr,
            metrics_addr: running.metrics_addr,
            otlp_addr: running.otlp_addr,
            client: client(),
            admin: admin_client(),
            trigger,
            running: Some(running),
        }
    }

    /// The public URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The admin URL of `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// The read-only listener's URL of `path`.
    pub fn metrics_url(&self, path: &str) -> String {
        let addr = self
            .metrics_addr
            .expect("the test gateway has a metrics listener");
        format!("http://{addr}{path}")
    }

    /// GET `path` through the gateway.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the gateway answers")
    }

    /// GET `path` through the gateway; the status.
    pub async fn get_status(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }

    /// The admin API's view of `upstream`.
    pub async fn upstream(&self, upstream: &str) -> Value {
        let all: Value = self
            .admin
            .get(self.admin_url("/upstreams"))
            .send()
            .await
            .expect("the admin API answers")
            .json()
            .await
            .expect("GET /upstreams is JSON");
        all.as_array()
            .expect("an array of upstreams")
            .iter()
            .find(|u| u["name"] == upstream)
            .unwrap_or_else(|| panic!("no upstream {upstream} in {all}"))
            .clone()
    }

    /// The admin API's view of one endpoint of `upstream`.
    pub async fn endpoint(&self, upstream: &str, addr: SocketAddr) -> Value {
        let view = self.upstream(upstream).await;
        view["endpoints"]
            .as_array()
            .expect("an array of endpoints")
            .iter()
            .find(|e| e["addr"] == addr.to_string())
            .unwrap_or_else(|| panic!("no endpoint {addr} in {view}"))
            .clone()
    }

    /// The breaker state of `upstream` as the admin API shows it.
    pub async fn breaker(&self, upstream: &str) -> String {
        let view = self.upstream(upstream).await;
        view["breaker"].as_str().expect("breaker state").to_owned()
    }

    /// PUT a TOML configuration on the admin API.
    pub async fn put_config(&self, toml: &str) -> reqwest::Response {
        self.admin
            .put(self.admin_url("/config"))
            .body(toml.to_owned())
            .send()
            .await
            .expect("the admin API answers")
    }

    /// The Prometheus text on the admin listener.
    pub async fn metrics(&self) -> String {
        self.admin
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("the admin API answers")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.trigger.trigger();
        // Joining blocks until the drain ends: do it off the test's runtime, and do not wait.
        if let Some(running) = self.running.take() {
            std::thread::spawn(move || running.join());
        }
    }
}

/// The value of the Prometheus sample named `name` whose labels include every one of `labels`.
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Asserts that a response is a gateway-made problem with `status`, carrying a request id;
/// returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "{response:?}");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], PROBLEM_JSON, "{headers:?}");
    let id = headers.get("x-request-id").expect("a request id");
    assert!(!id.is_empty());
    let body: Value = response.json().await.expect("a problem is JSON");
    assert_eq!(body["status"], status, "{body}");
    body
}

/// How a stub answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    delay: Duration,
}

impl Reply {
    /// 200 with the echo body.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// `status` with the echo body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Waits this long (after reading the request body) before answering.
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }
}

#[derive(Debug)]
struct StubState {
    name: String,
    hits: AtomicUsize,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
}

/// A small upstream on a loopback port, served until dropped.
///
/// Every request except `GET /readyz` counts as a hit and is answered by the next scripted reply
/// (or the default one) with an echo of what arrived: `{"stub", "method", "path", "query",
/// "headers", "body_bytes"}`, the body counted as it streams in. `GET /bytes/{n}` streams `n`
/// bytes back instead.
#[derive(Debug)]
pub struct Stub {
    pub addr: SocketAddr,
    state: Arc<StubState>,
    task: JoinHandle<()>,
}

impl Stub {
    /// A stub named `name` answering 200 to everything.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let state = Arc::new(StubState {
            name: name.to_owned(),
            hits: AtomicUsize::new(0),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::ok()),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&state)));
        Self { addr, state, task }
    }

    /// Answers `reply` from now on (after any scripted replies).
    pub fn always(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = reply;
    }

    /// Answers `reply` once, before the default (scripted replies are used in order).
    pub fn then(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    /// Requests received, health checks excluded.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

type StubBody = BoxBody<Bytes, Infallible>;

async fn serve(listener: TcpListener, state: Arc<StubState>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&state), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    state: Arc<StubState>,
    request: Request<Incoming>,
) -> Result<Response<StubBody>, Infallible> {
    if request.uri().path() == "/readyz" {
        return Ok(respond(200, &[], full(Bytes::new())));
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| state.default.lock().unwrap().clone());
    let (parts, mut body) = request.into_parts();
    let mut body_bytes = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        body_bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
    }
    tokio::time::sleep(reply.delay).await;
    if let Some(size) = parts
        .uri
        .path()
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok())
    {
        return Ok(respond(reply.status, &reply.headers, zeros(size)));
    }
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("<binary>"))
            .collect();
        headers.insert(name.to_string(), Value::from(values.join(", ")));
    }
    let echo = json!({
        "stub": state.name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut reply_headers = reply.headers.clone();
    reply_headers.push(("content-type".into(), "application/json".into()));
    Ok(respond(
        reply.status,
        &reply_headers,
        full(Bytes::from(echo.to_string())),
    ))
}

fn respond(status: u16, headers: &[(String, String)], body: StubBody) -> Response<StubBody> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response.body(body).expect("a valid stub response")
}

fn full(bytes: Bytes) -> StubBody {
    Full::new(bytes).boxed()
}

/// The chunk size of streamed bodies.
pub const CHUNK: usize = 64 * 1024;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// A stream of `size` zero bytes in 64 KiB chunks, made as it is read.
pub fn zero_chunks(size: u64) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    futures::stream::unfold(size, |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK as u64);
        Some((Bytes::from_static(&ZEROS[..n as usize]), left - n))
    })
}

fn zeros(size: u64) -> StubBody {
    BodyExt::boxed(StreamBody::new(
        zero_chunks(size).map(|chunk| Ok(Frame::data(chunk))),
    ))
}
