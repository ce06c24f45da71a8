//! Telemetry: one init function for logs and traces.
//!
//! Logs go to stderr as text (or JSON with `SOUK_LOG_FORMAT=json`), filtered by `SOUK_LOG`
//! (`RUST_LOG` syntax, default `info`). Spans always carry W3C trace context, so a `traceparent`
//! received from a caller is continued and passed on; they are exported over OTLP/HTTP only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::io::IsTerminal;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Env;

/// Where log lines go and how they look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Settings for [`init`], usually read from the environment with [`TelemetryConfig::from_env`].
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` of exported spans.
    pub service_name: String,
    /// Log filter in `RUST_LOG` syntax.
    pub filter: String,
    /// Log line format.
    pub format: LogFormat,
    /// Export spans over OTLP/HTTP (the exporter reads its endpoint from `OTEL_EXPORTER_OTLP_*`).
    pub otlp: bool,
}

impl TelemetryConfig {
    /// Reads `SOUK_LOG`, `SOUK_LOG_FORMAT` and `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(service_name: &str, env: &Env) -> Self {
        Self {
            service_name: service_name.to_owned(),
            filter: env.get("SOUK_LOG").unwrap_or("info").to_owned(),
            format: match env.get("SOUK_LOG_FORMAT") {
                Some("json") => LogFormat::Json,
                _ => LogFormat::Text,
            },
            otlp: env.get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some(),
        }
    }
}

/// Flushes exported spans when dropped: keep it alive until `main` returns.
#[must_use = "dropping the guard stops span export"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            // The subscriber may already be gone; stderr is the last resort.
            eprintln!("souk: flushing traces failed: {err}");
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `SOUK_LOG` is not a valid filter.
    #[error("SOUK_LOG is not a valid log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber is already installed.
    #[error("telemetry is already initialised: {0}")]
    AlreadyInitialised(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber and the trace-context propagator. Call once, at start-up.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::builder().parse(&config.filter)?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let mut provider = SdkTracerProvider::builder().with_resource(resource);
    if config.otlp {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let tracer = provider.tracer("souk");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let fmt = match config.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

/// Makes `span` a child of the W3C trace context in `headers`, if any.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // An error only means no subscriber is there to take the parent; nothing to do about it.
    let _ = span.set_parent(parent);
}

/// Writes the current span's trace context into outgoing `headers` (service calls, events).
pub fn inject_trace(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(key),
            http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}
