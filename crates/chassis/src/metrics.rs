//! Prometheus metrics: one process-wide recorder, a per-route request middleware, and `/metrics`.
//!
//! Metric names follow OpenTelemetry's HTTP semantic conventions in Prometheus form:
//! `http_server_requests_total{route,method,status}` and
//! `http_server_request_duration_seconds{route,method,status}` (a histogram).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: fine below 10 ms where a healthy shop lives, coarse above.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
///
/// Several services in one process (`souk monolith`, tests) share it; their routes tell them apart.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .upkeep_timeout(Duration::from_secs(5))
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS);
        // Buckets are non-empty constants, so this cannot fail; fall back to a detached recorder anyway.
        let builder = match builder {
            Ok(builder) => builder,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be global (a test harness); then ours only renders its own.
        let _ = metrics::set_global_recorder(recorder);
        keep_up(handle.clone());
        handle
    })
}

/// How often histogram samples are folded into their buckets when nothing scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Folds the recorder's histogram samples into buckets every [`UPKEEP`], on a thread of its own.
///
/// The recorder keeps every observed sample until upkeep runs, and only a scrape of `/metrics`
/// ran it: a process nobody scraped held every request's latency forever (about a megabyte a
/// second at the gateway's rate). A thread, not a task: the recorder is process-wide and may be
/// made before, or outlive, any runtime.
fn keep_up(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP);
                handle.run_upkeep();
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "cannot start the metrics upkeep; samples are folded only on scrapes");
    }
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn render() -> Response {
    let handle = handle();
    handle.run_upkeep();
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Middleware: counts every request and observes its latency, labelled by matched route.
///
/// Unmatched paths share one `route="unmatched"` label so that scanners cannot grow the label set.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_server_requests_total", &labels).increment(1);
    metrics::histogram!("http_server_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Standard methods by name, everything else as `other` (the label set stays bounded).
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
