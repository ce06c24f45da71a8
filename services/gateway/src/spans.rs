//! The gateway's own spans, made with OpenTelemetry directly (the proxy path has no `tracing`
//! spans): one server span per routed request — route, upstream, endpoint, attempts, status,
//! and an event for each retry or refusal — and a client span per attempt sent upstream,
//! whose context is what the upstream continues. The response carries the request span's
//! `traceparent`, so a client can open the trace of any answer.
//!
//! Only when this process exports spans ([`souk_chassis::telemetry::exporting`]): otherwise no
//! span is made and a client's `traceparent` passes through untouched, as before. The request
//! span ends when the answer's head is ready; a streamed body's time is not in it.

use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, Tracer as _,
};
use opentelemetry::{Context, KeyValue, global};

/// The name the gateway's spans are made under.
const TRACER: &str = "souk-gateway";

/// How many more traces a second than it begins itself the gateway keeps for untrusted callers
/// that ask (`traceparent` sampled): services calling through it, and clients.
pub(crate) const CONTINUED_FACTOR: f64 = 4.0;

/// The budget of traces continued for untrusted callers, made on first use (after start-up has
/// set the process' own budget).
fn continued() -> &'static souk_chassis::telemetry::TraceBudget {
    static BUDGET: std::sync::OnceLock<souk_chassis::telemetry::TraceBudget> =
        std::sync::OnceLock::new();
    BUDGET.get_or_init(|| {
        souk_chassis::telemetry::TraceBudget::new(
            CONTINUED_FACTOR * souk_chassis::telemetry::roots_per_second(),
        )
    })
}

/// A routed request's span, in the context its attempts are children of.
#[derive(Debug)]
pub(crate) struct RequestSpan {
    context: Context,
}

/// The request span's context, kept in the request's extensions so that every stage (attempts,
/// aggregate parts, in-process calls) finds it without another parameter.
#[derive(Debug, Clone)]
pub(crate) struct InTrace(Context);

impl RequestSpan {
    /// Starts the span of a request routed to `route` and puts its context in `parts`
    /// (extensions, and `traceparent` for the upstream), continuing the caller's `traceparent`
    /// if it sent one. A caller's "sampled" flag is followed from a trusted peer (the
    /// storefront) always, and from anyone else within a budget of [`CONTINUED_FACTOR`] times
    /// the process' own: past it the trace goes on unsampled, so a client whose every
    /// `traceparent` says "sampled" cannot have all its requests traced (services calling
    /// through the gateway stay in their traces, which the budget leaves room for). `None` when
    /// spans are not exported.
    pub(crate) fn start(
        parts: &mut Parts,
        route: &str,
        upstream: &str,
        trusted: impl FnOnce() -> bool,
    ) -> Option<Self> {
        if !souk_chassis::telemetry::exporting() {
            return None;
        }
        let mut parent = souk_chassis::telemetry::extract(&parts.headers);
        let asked = parent.span().span_context().clone();
        if asked.is_sampled() && !trusted() && !continued().take() {
            let unsampled = SpanContext::new(
                asked.trace_id(),
                asked.span_id(),
                TraceFlags::default(),
                true,
                asked.trace_state().clone(),
            );
            parent = Context::new().with_remote_span_context(unsampled);
        }
        let tracer = global::tracer(TRACER);
        let span = tracer
            .span_builder(format!("{} {route}", parts.method))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("souk.service", "gateway"),
                KeyValue::new("http.request.method", parts.method.to_string()),
                KeyValue::new("url.path", parts.uri.path().to_owned()),
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("souk.upstream", upstream.to_owned()),
                KeyValue::new(
                    "souk.request_id",
                    parts
                        .headers
                        .get(souk_chassis::http::REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                ),
            ])
            .start_with_context(&tracer, &parent);
        let context = parent.with_span(span);
        souk_chassis::telemetry::inject_context(&context, &mut parts.headers);
        parts.extensions.insert(InTrace(context.clone()));
        Some(Self { context })
    }

    /// Ends the span with the answer's status, the attempts sent and the endpoint that answered
    /// last, and puts its `traceparent` on the answer.
    pub(crate) fn end<B>(
        self,
        response: &mut Response<B>,
        attempts: u32,
        endpoint: Option<std::net::SocketAddr>,
    ) {
        let span = self.context.span();
        let status = response.status();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        span.set_attribute(KeyValue::new("souk.attempts", i64::from(attempts)));
        if let Some(endpoint) = endpoint {
            span.set_attribute(KeyValue::new("server.address", endpoint.to_string()));
        }
        if status.is_server_error() {
            span.set_status(Status::error(status.to_string()));
        }
        let traceparent = souk_chassis::telemetry::traceparent_of(&self.context);
        span.end();
        if let Some(value) = traceparent.and_then(|v| HeaderValue::try_from(v).ok()) {
            response
                .headers_mut()
                .insert(souk_chassis::http::TRACEPARENT, value);
        }
    }
}

/// Records `name` with `attributes` on the request span of `parts`, if it has one.
pub(crate) fn event(parts: &Parts, name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) {
    if let Some(InTrace(context)) = parts.extensions.get::<InTrace>() {
        context.span().add_event(name, attributes());
    }
}

/// An internal span named `name` under the request span of `parts` (an injected delay, say).
pub(crate) fn child(
    parts: &Parts,
    name: &'static str,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Option<Context> {
    let InTrace(parent) = parts.extensions.get::<InTrace>()?;
    let tracer = global::tracer(TRACER);
    let mut all = attributes();
    all.push(KeyValue::new("souk.service", "gateway"));
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_attributes(all)
        .start_with_context(&tracer, parent);
    Some(parent.with_span(span))
}

/// Ends a span [`child`] made, failed with `failure` if it says so.
pub(crate) fn end_child(context: Option<Context>, failure: Option<&str>) {
    end_attempt(context, None, failure);
}

/// A client span for one attempt sent to `endpoint`, a child of the request span of `parts`;
/// `headers` get its `traceparent`.
pub(crate) fn attempt(
    parts: &Parts,
    upstream: &str,
    endpoint: std::net::SocketAddr,
    attempt: u32,
    headers: &mut http::HeaderMap,
) -> Option<Context> {
    let InTrace(parent) = parts.extensions.get::<InTrace>()?;
    let tracer = global::tracer(TRACER);
    let span = tracer
        .span_builder(format!("{} {upstream}", parts.method))
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("souk.service", "gateway"),
            KeyValue::new("peer.service", upstream.to_owned()),
            KeyValue::new("server.address", endpoint.to_string()),
            KeyValue::new("souk.attempt", i64::from(attempt)),
        ])
        .start_with_context(&tracer, parent);
    let context = parent.with_span(span);
    souk_chassis::telemetry::inject_context(&context, headers);
    Some(context)
}

/// Ends an attempt's span with how it went.
pub(crate) fn end_attempt(
    context: Option<Context>,
    status: Option<StatusCode>,
    failure: Option<&str>,
) {
    let Some(context) = context else { return };
    let span = context.span();
    if let Some(status) = status {
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.set_status(Status::error(status.to_string()));
        }
    }
    if let Some(failure) = failure {
        span.set_status(Status::error(failure.to_owned()));
    }
    span.end();
}
