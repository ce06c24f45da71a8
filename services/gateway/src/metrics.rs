//! The gateway's metrics, with handles resolved once per route so the hot path does no label
//! lookups (about 30 ns an observation instead of 200 ns).
//!
//! - `gateway_requests_total{route, upstream, method_class, status_class}`
//! - `gateway_request_duration_seconds{route, upstream}`: time to the response head
//! - `gateway_upstream_attempts_total{route, upstream}` and `gateway_upstream_retries_total{…}`
//! - per upstream (see `upstream`): shed requests, ejections, suppressed ejections, breaker state

use std::time::Duration;

use http::{Method, StatusCode};
use metrics::{Counter, Histogram};

/// Handles for one route.
#[derive(Debug)]
pub struct RouteMetrics {
    /// `[read, write][1xx..5xx]`.
    requests: [[Counter; 5]; 2],
    duration: Histogram,
    /// Attempts sent upstream (first tries and retries).
    pub attempts: Counter,
    /// Retries sent upstream.
    pub retries: Counter,
    /// Requests refused by the open breaker.
    pub breaker_refusals: Counter,
}

impl RouteMetrics {
    /// Resolves every handle of `route`.
    pub fn new(route: &str, upstream: &str) -> Self {
        // Handles made before the recorder exists would count nothing, forever.
        souk_chassis::metrics::handle();
        let labels = |extra: &[(&'static str, &'static str)]| {
            let mut labels = vec![
                ("route", route.to_owned()),
                ("upstream", upstream.to_owned()),
            ];
            labels.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            labels
        };
        let class = |method: &'static str| {
            ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|status| {
                metrics::counter!(
                    "gateway_requests_total",
                    &labels(&[("method_class", method), ("status_class", status)])
                )
            })
        };
        Self {
            requests: [class("read"), class("write")],
            duration: metrics::histogram!("gateway_request_duration_seconds", &labels(&[])),
            attempts: metrics::counter!("gateway_upstream_attempts_total", &labels(&[])),
            retries: metrics::counter!("gateway_upstream_retries_total", &labels(&[])),
            breaker_refusals: metrics::counter!("gateway_breaker_refusals_total", &labels(&[])),
        }
    }

    /// Counts one answered request.
    pub fn record(&self, method: &Method, status: StatusCode, elapsed: Duration) {
        let write = usize::from(!matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS
        ));
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.requests[write][class].increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// Counts requests that matched no route.
pub fn record_unrouted(status: StatusCode) {
    metrics::counter!("gateway_unrouted_requests_total", "status" => status.as_str().to_owned())
        .increment(1);
}

/// The trace store's gauges (`gateway_trace_spans`, `gateway_trace_bytes`) and the count of
/// spans it dropped to stay within its bounds (`gateway_trace_spans_dropped_total`).
pub fn record_trace_store(occupancy: &crate::traces::store::Occupancy, dropped: u64) {
    #[allow(clippy::cast_precision_loss)]
    {
        metrics::gauge!("gateway_trace_spans").set(occupancy.spans as f64);
        metrics::gauge!("gateway_trace_bytes").set(occupancy.bytes as f64);
    }
    if dropped > 0 {
        metrics::counter!("gateway_trace_spans_dropped_total").increment(dropped);
    }
}
