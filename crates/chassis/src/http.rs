//! The standard HTTP stack every service runs behind, in one documented order.
//!
//! Outermost first, with the reason for each position:
//! 1. **request id** — set before anything logs, so every line and the response carry it;
//! 2. **trace span** — one span per request, continuing the caller's W3C `traceparent`, with its
//!    route and status; when spans are exported the response carries its `traceparent`
//!    (probes and the event feed's long polls make none: they would bury the shop's traffic);
//! 3. **request id on the response** — so a client can quote it in a bug report;
//! 4. **metrics** — outside everything that can fail, so timeouts, 413s and panics are counted;
//! 5. **compression** — outside the problem mapper, so problem bodies are compressed too and the
//!    mapper never sees an encoded body; never for a response marked `Cache-Control:
//!    no-transform` (a page with a secret token beside reflected text: BREACH);
//! 6. **problem+json** — gives the bodiless errors made below (404, 405, 413, timeouts) our format;
//! 7. **timeout** — bounds the handler, answering 503 when it runs out;
//! 8. **panic catcher** — a panicking handler becomes a logged 500, never a dropped connection;
//! 9. **body limit** — innermost, read by the extractors that read the body (413 beyond it).

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, Request, StatusCode};
use serde::{Deserialize, Serialize};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::health::{self, Health};
use crate::problem::Problem;
use crate::{metrics, telemetry};

/// The request id header, set by the first souk hop that sees a request and kept by the others.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// HTTP settings shared by every service (`[<service>.http]` in config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The longest a request may take before the service answers 503.
    pub request_timeout_ms: u64,
    /// The largest request body accepted, in bytes (413 beyond).
    pub body_limit_bytes: usize,
    /// How long in-flight requests may run after shutdown begins.
    pub drain_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 10_000,
            body_limit_bytes: 64 * 1024,
            drain_timeout_ms: 10_000,
        }
    }
}

impl HttpConfig {
    /// The drain deadline as a [`Duration`].
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

/// A service's whole router: its API, plus `/healthz`, `/readyz` and `/metrics`, behind the
/// standard stack.
pub fn service_router(api: Router, health: Health, config: &HttpConfig) -> Router {
    // Install the recorder now: requests recorded before it exists would be lost.
    metrics::handle();
    let ops = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .with_state(health);
    stack(api.merge(ops), config)
}

/// Wraps `router` in the standard stack (see the module docs for the order).
pub fn stack(router: Router, config: &HttpConfig) -> Router {
    // `Router::layer` wraps every route, so the layer added last runs first: read bottom-up.
    // Layering one at a time lets each layer keep its own body type (axum boxes in between).
    let router = router
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(
            config.body_limit_bytes,
            refuse_declared_oversize,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(config.request_timeout_ms),
        ))
        .layer(axum::middleware::map_response(crate::problem::problemize))
        .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(MayTransform)))
        .layer(axum::middleware::from_fn(metrics::record));
    // Only where spans are exported (decided at start-up, before any service is built): a
    // layer costs a boxed future per request even when it does nothing.
    let router = match telemetry::exporting() {
        true => router.layer(axum::middleware::map_response(answer_traceparent)),
        false => router,
    };
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(record_status),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuidV7))
}

/// Compresses only responses that allow it: `Cache-Control: no-transform` asks that the body
/// reach the client as it was made (RFC 9111 §5.2.2.6), which pages holding a secret token beside
/// text an attacker can reflect rely on.
#[derive(Debug, Clone, Copy)]
struct MayTransform;

impl Predicate for MayTransform {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        !response
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|directive| directive.trim().eq_ignore_ascii_case("no-transform"))
    }
}

/// Answers 413 at once when `Content-Length` declares a body over the limit, whether or not the
/// handler would read it; bodies of unknown length are bounded by the extractors as they read.
async fn refuse_declared_oversize(
    axum::extract::State(limit): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Problem::typed(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
        )
        .with_detail(format!(
            "the body is {length} bytes; this endpoint accepts at most {limit}"
        ))
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Request ids are UUIDv7: unique, and sortable by time in logs.
#[derive(Debug, Clone, Copy)]
struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        http::HeaderValue::try_from(uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Paths that make no span: probes, metrics scrapes and the event feed's long polls, which
/// would otherwise begin a trace of their own every second or so and bury the shop's traffic.
const UNTRACED: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/v1/events"];

/// Marks a request that makes no span ([`untraced`]).
#[derive(Debug, Clone, Copy)]
struct Untraced;

/// `router` (a whole stack) with no span for any of its requests: for listeners of operators'
/// tools (the gateway's admin and read-only listeners, whose map polls every second), which
/// would otherwise begin a trace of their own for every look and bury the shop's traffic.
pub fn untraced(router: Router) -> Router {
    router.layer(axum::middleware::map_request(
        |mut request: axum::extract::Request| async move {
            request.extensions_mut().insert(Untraced);
            request
        },
    ))
}

fn request_span<B>(request: &Request<B>) -> tracing::Span {
    if UNTRACED.contains(&request.uri().path()) || request.extensions().get::<Untraced>().is_some()
    {
        return tracing::Span::none();
    }
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let method = request.method();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        method = %method,
        route,
        request_id,
        "http.route" = route,
        "http.response.status_code" = tracing::field::Empty,
        "souk.service" = request
            .extensions()
            .get::<telemetry::ServedBy>()
            .map(|s| &*s.0),
    );
    telemetry::continue_trace(&span, request.headers());
    span
}

fn record_status<B>(response: &Response<B>, _latency: Duration, span: &tracing::Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Puts the request span's `traceparent` on the response, so whoever saw an answer (or an
/// error) can open its trace; only when spans are exported (otherwise there is no trace to
/// open).
async fn answer_traceparent(mut response: Response) -> Response {
    if telemetry::exporting()
        && !response.headers().contains_key(TRACEPARENT)
        && let Some(value) = telemetry::traceparent(&tracing::Span::current())
            .and_then(|v| http::HeaderValue::try_from(v).ok())
    {
        response.headers_mut().insert(TRACEPARENT, value);
    }
    response
}

/// The W3C trace-context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR)
        .with_detail("an internal error occurred; it has been logged")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(config: &HttpConfig) -> Router {
        let api = Router::new()
            .route("/echo", post(|body: String| async move { body }))
            .route(
                "/slow",
                get(|| async { tokio::time::sleep(Duration::from_secs(60)).await }),
            )
            .route("/panic", get(explode));
        service_router(api, Health::new(), config)
    }

    async fn explode() -> &'static str {
        panic!("boom")
    }

    async fn send(router: Router, request: Request<Body>) -> Response {
        router.oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn request_ids_are_made_or_kept() {
        let fresh = send(
            app(&HttpConfig::default()),
            Request::get("/healthz").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[REQUEST_ID].len(), 36);
        let kept = Request::get("/healthz")
            .header(REQUEST_ID, "abc")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(app(&HttpConfig::default()), kept).await.headers()[REQUEST_ID],
            "abc"
        );
    }

    #[tokio::test]
    async fn undeclared_methods_get_405_with_allow() {
        let response = send(
            app(&HttpConfig::default()),
            Request::delete("/echo").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[http::header::ALLOW], "POST");
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            crate::problem::CONTENT_TYPE
        );
    }

    #[tokio::test]
    async fn unknown_paths_get_a_problem_404() {
        let response = send(
            app(&HttpConfig::default()),
            Request::get("/nope").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            crate::problem::CONTENT_TYPE
        );
    }

    #[tokio::test]
    async fn declared_oversized_bodies_get_413_even_where_no_body_is_read() {
        let config = HttpConfig {
            body_limit_bytes: 16,
            ..HttpConfig::default()
        };
        let request = Request::get("/healthz")
            .header("content-length", "1024")
            .body(Body::from(vec![b'x'; 1024]))
            .unwrap();
        let response = send(app(&config), request).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn oversized_bodies_get_413() {
        let config = HttpConfig {
            body_limit_bytes: 16,
            ..HttpConfig::default()
        };
        let request = Request::post("/echo")
            .body(Body::from(vec![b'x'; 1024]))
            .unwrap();
        let response = send(app(&config), request).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            crate::problem::CONTENT_TYPE
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_handlers_time_out_with_503() {
        let config = HttpConfig {
            request_timeout_ms: 100,
            ..HttpConfig::default()
        };
        let response = send(
            app(&config),
            Request::get("/slow").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn panics_become_problem_500s() {
        let response = send(
            app(&HttpConfig::default()),
            Request::get("/panic").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(!body.to_string().contains("boom"));
    }

    #[tokio::test]
    async fn metrics_count_requests_per_route() {
        let router = app(&HttpConfig::default());
        send(
            router.clone(),
            Request::get("/healthz").body(Body::empty()).unwrap(),
        )
        .await;
        let response = send(
            router,
            Request::get("/metrics").body(Body::empty()).unwrap(),
        )
        .await;
        let text = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(
            text.contains(
                r#"http_server_requests_total{route="/healthz",method="GET",status="200"}"#
            ),
            "{text}"
        );
        assert!(
            text.contains("http_server_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
