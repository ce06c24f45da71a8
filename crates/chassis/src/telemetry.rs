//! Telemetry: one init function for logs and traces.
//!
//! Logs go to stderr as text (or JSON with `SOUK_LOG_FORMAT=json`), filtered by `SOUK_LOG`
//! (`RUST_LOG` syntax, default `info`). Spans always carry W3C trace context, so a `traceparent`
//! received from a caller is continued and passed on; they are exported over OTLP/HTTP only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`souk up` and `souk monolith` set it to the gateway's
//! trace receiver).
//!
//! What is exported is sampled where a trace begins: a span that continues a trace follows its
//! parent's decision (the `sampled` flag of `traceparent`), and a new trace is kept while this
//! process has begun fewer than `SOUK_TRACE_ROOTS_PER_SECOND` kept traces in the last second
//! (default 50, a token bucket). Everything a person does by hand is kept; a load test's
//! thousands of requests a second cost a bounded export, whatever the rate.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    /// New traces kept a second, at most (`SOUK_TRACE_ROOTS_PER_SECOND`).
    pub roots_per_second: f64,
    /// Which spans are exported, in `RUST_LOG` syntax (`SOUK_TRACE_FILTER`, default `info`).
    pub trace_filter: String,
    /// Where to export, overriding `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL: `/v1/traces`
    /// is added); setting it turns export on (`souk monolith`, which picks the port itself).
    pub endpoint: Option<String>,
}

/// The default of [`TelemetryConfig::roots_per_second`].
pub const DEFAULT_ROOTS_PER_SECOND: f64 = 50.0;

static EXPORTING: AtomicBool = AtomicBool::new(false);
/// [`TelemetryConfig::roots_per_second`] of this process, as `f64` bits.
static ROOTS_PER_SECOND: AtomicU64 = AtomicU64::new(0);

/// New traces this process keeps a second at most (`SOUK_TRACE_ROOTS_PER_SECOND`).
pub fn roots_per_second() -> f64 {
    f64::from_bits(ROOTS_PER_SECOND.load(Ordering::Relaxed))
}

/// Whether this process exports spans: code that makes spans by hand (the gateway's) makes none
/// when nothing would receive them.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
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
            otlp: env
                .get("OTEL_EXPORTER_OTLP_ENDPOINT")
                .is_some_and(|v| !v.is_empty()),
            roots_per_second: env
                .get("SOUK_TRACE_ROOTS_PER_SECOND")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(DEFAULT_ROOTS_PER_SECOND),
            trace_filter: env.get("SOUK_TRACE_FILTER").unwrap_or("info").to_owned(),
            endpoint: None,
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
    let mut provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            TraceBudget::new(config.roots_per_second),
        )));
    let otlp = config.otlp || config.endpoint.is_some();
    if otlp {
        use opentelemetry_otlp::WithExportConfig;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
        if let Some(endpoint) = &config.endpoint {
            exporter =
                exporter.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
        }
        let exporter = exporter.build()?;
        provider = match config.endpoint {
            // Set by the command that runs the receiver: batches every half second, so a
            // shopper's trace shows at once (the SDK's default is 5 s).
            Some(_) => provider.with_span_processor(
                opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                    .with_batch_config(
                        opentelemetry_sdk::trace::BatchConfigBuilder::default()
                            .with_scheduled_delay(std::time::Duration::from_millis(500))
                            .build(),
                    )
                    .build(),
            ),
            None => provider.with_batch_exporter(exporter),
        };
    }
    let provider = provider.build();
    let tracer = provider.tracer("souk");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    EXPORTING.store(otlp, Ordering::Relaxed);
    ROOTS_PER_SECOND.store(config.roots_per_second.to_bits(), Ordering::Relaxed);

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
    // Each layer has its filter: the statements' debug events reach the SQL layer (when
    // exporting) without reaching the log. Exported spans are not the log's business: a shop
    // quietened to warnings still has its request spans (`SOUK_TRACE_FILTER`, default `info`);
    // with nothing exported, the spans are what the log keeps, as before (the trace context
    // still passes from service to service with them).
    let spans_filter = EnvFilter::builder().parse(match otlp {
        true => &config.trace_filter,
        false => &config.filter,
    })?;
    let sql = otlp.then(|| {
        sql::StatementSpans.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(sql::TARGET, tracing::Level::DEBUG),
        )
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans_filter),
        )
        .with(sql)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

/// Which service a request in this process is for, set as a request extension by whoever
/// calls a service's router in-process (the monolith's gateway and clients), so its spans name
/// it (`souk.service`) although every service shares the process' `service.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedBy(pub Arc<str>);

/// Keeps a new trace while fewer than `per_second` were kept in the last second: a token bucket
/// that holds one second's worth. The sampler of new traces, and the gateway's bound on the
/// traces clients ask to have kept.
#[derive(Debug, Clone)]
pub struct TraceBudget {
    per_second: f64,
    bucket: Arc<Mutex<(f64, Instant)>>,
}

impl TraceBudget {
    /// A budget of `per_second` traces a second (0: none).
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second,
            bucket: Arc::new(Mutex::new((per_second, Instant::now()))),
        }
    }

    /// Whether one more trace may be kept now (and counts it).
    pub fn take(&self) -> bool {
        if self.per_second <= 0.0 {
            return false;
        }
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = &mut *bucket;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second)
            .min(self.per_second.max(1.0));
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl opentelemetry_sdk::trace::ShouldSample for TraceBudget {
    fn should_sample(
        &self,
        _parent: Option<&opentelemetry::Context>,
        _trace_id: opentelemetry::trace::TraceId,
        _name: &str,
        _kind: &opentelemetry::trace::SpanKind,
        _attributes: &[opentelemetry::KeyValue],
        _links: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        use opentelemetry::trace::TraceState;
        use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult};
        SamplingResult {
            decision: if self.take() {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        }
    }
}

/// The W3C `traceparent` of `span` (`00-<trace id>-<span id>-<flags>`), when it is in a trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    traceparent_of(&span.context())
}

/// The W3C `traceparent` of `context`'s span, when it is valid.
pub fn traceparent_of(context: &opentelemetry::Context) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// Makes `span` a child of the span a stored `traceparent` names (an event's, a saga's), and,
/// with `link`, links it to that span too (as a consumer's span is to its publisher's).
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>, link: bool) {
    let Some(value) = traceparent.and_then(|v| http::HeaderValue::try_from(v).ok()) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", value);
    continue_trace(span, &headers);
    if link {
        link_to(span, &headers);
    }
}

/// SQL statements as spans: sqlx reports each statement it ran (its text, with placeholders,
/// never the values bound, and how long it took) as a `sqlx::query` event once it is done; this
/// layer turns each such event inside a sampled span into a child span that began `elapsed`
/// before the event. Statements outside a sampled trace cost the event and nothing more.
pub(crate) mod sql {
    use std::time::{Duration, SystemTime};

    use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
    use opentelemetry::{KeyValue, global};
    use tracing::field::{Field, Visit};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::Context;

    /// sqlx's target for statement events.
    pub(super) const TARGET: &str = "sqlx::query";

    pub(super) struct StatementSpans;

    #[derive(Default)]
    struct Statement {
        summary: String,
        text: String,
        elapsed: Option<f64>,
        rows: Option<u64>,
    }

    impl Visit for Statement {
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "summary" => value.clone_into(&mut self.summary),
                "db.statement" => value.trim().clone_into(&mut self.text),
                _ => {}
            }
        }

        fn record_f64(&mut self, field: &Field, value: f64) {
            if field.name() == "elapsed_secs" {
                self.elapsed = Some(value);
            }
        }

        fn record_u64(&mut self, field: &Field, value: u64) {
            if field.name() == "rows_returned" {
                self.rows = Some(value);
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "summary" {
                self.summary = format!("{value:?}");
            }
        }
    }

    /// A span for one statement that took `elapsed` and has just ended, a child of `parent`
    /// (sampled): its text (placeholders, never values) and what it touched in its name.
    pub(crate) fn statement_span(
        parent: &opentelemetry::Context,
        text: &str,
        elapsed: Duration,
        rows: Option<u64>,
    ) {
        let end = SystemTime::now();
        let start = end.checked_sub(elapsed).unwrap_or(end);
        let tracer = global::tracer("souk-sql");
        let mut attributes = vec![KeyValue::new("db.query.text", text.trim().to_owned())];
        if let Some(rows) = rows.and_then(|r| i64::try_from(r).ok()) {
            attributes.push(KeyValue::new("db.response.returned_rows", rows));
        }
        let mut span = tracer
            .span_builder(summary(text))
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&tracer, parent);
        span.end_with_timestamp(end);
    }

    /// A statement's name as spans show it: its verb and the table it names first
    /// (`SELECT products`, `INSERT INTO order_lines`, `UPDATE sagas`).
    pub(crate) fn summary(text: &str) -> String {
        let mut words = text.split_whitespace();
        let Some(verb) = words.next() else {
            return "SQL".to_owned();
        };
        let verb = verb.to_ascii_uppercase();
        let mut previous = verb.clone();
        for word in words {
            let upper = previous.to_ascii_uppercase();
            if matches!(upper.as_str(), "FROM" | "INTO" | "UPDATE" | "TABLE") {
                let table = word.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_'));
                if !table.is_empty() {
                    return format!("{verb} {table}");
                }
            }
            word.clone_into(&mut previous);
        }
        verb
    }

    /// Makes a span of every statement `connection` runs (when spans are exported), for the
    /// chassis' own SQLite connections, which sqlx does not see. SQLite's own profile time has
    /// a millisecond's grain (its VFS clock), so a statement is timed here instead: from its
    /// first step (`SQLITE_TRACE_STMT`) to its end (`SQLITE_TRACE_PROFILE`), both on the
    /// calling thread, as these connections run there.
    pub(crate) fn trace_sqlite(connection: &rusqlite::Connection) {
        use rusqlite::trace::TraceEventCodes;
        if super::exporting() {
            connection.trace_v2(
                TraceEventCodes::SQLITE_TRACE_STMT | TraceEventCodes::SQLITE_TRACE_PROFILE,
                Some(sqlite_traced),
            );
        }
    }

    /// Statements begun on this thread in a sampled trace and not yet ended: the address of
    /// their text (theirs for as long as they are prepared), when they began, and the span
    /// that ran them. A handful at most (a read still stepping while another runs).
    type Started = Vec<(usize, std::time::Instant, opentelemetry::Context)>;

    thread_local! {
        static STARTED: std::cell::RefCell<Started> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// The most statements remembered per thread: one that began but never ended (its
    /// connection dropped mid-way) is forgotten once this many more have begun.
    const MOST_STARTED: usize = 16;

    fn sqlite_traced(event: rusqlite::trace::TraceEvent<'_>) {
        use rusqlite::trace::TraceEvent;
        match event {
            // A trigger's program announces itself as a comment: not a statement of ours.
            TraceEvent::Stmt(_, text) if text.starts_with("--") => {}
            TraceEvent::Stmt(statement, _) => {
                let sql = statement.sql();
                // A transaction's BEGIN IMMEDIATE waits for nothing (the writer took its turn
                // first): a row of noise in every write. COMMIT stays, as it can take time.
                if sql.trim_start().starts_with("BEGIN") {
                    return;
                }
                let parent = tracing::Span::current().context();
                if !parent.span().span_context().is_sampled() {
                    return;
                }
                let key = sql.as_ptr() as usize;
                STARTED.with_borrow_mut(|started| {
                    started.retain(|(k, _, _)| *k != key);
                    if started.len() >= MOST_STARTED {
                        started.remove(0);
                    }
                    started.push((key, std::time::Instant::now(), parent));
                });
            }
            TraceEvent::Profile(statement, _) => {
                let sql = statement.sql();
                let key = sql.as_ptr() as usize;
                let begun = STARTED.with_borrow_mut(|started| {
                    let at = started.iter().position(|(k, _, _)| *k == key)?;
                    Some(started.swap_remove(at))
                });
                if let Some((_, at, parent)) = begun {
                    statement_span(&parent, &sql, at.elapsed(), None);
                }
            }
            _ => {}
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for StatementSpans {
        fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
            let parent = tracing::Span::current().context();
            if !parent.span().span_context().is_sampled() {
                return;
            }
            let mut statement = Statement::default();
            event.record(&mut statement);
            let Some(elapsed) = statement
                .elapsed
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            else {
                return;
            };
            let text = if statement.text.is_empty() {
                &statement.summary
            } else {
                &statement.text
            };
            statement_span(&parent, text, elapsed, statement.rows);
        }
    }
}

/// Makes `span` a child of the W3C trace context in `headers`, if any.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // An error only means no subscriber is there to take the parent; nothing to do about it.
    let _ = span.set_parent(parent);
}

/// The W3C trace context in `headers` (an empty context when there is none), for code that
/// makes OpenTelemetry spans by hand.
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `context`'s span into `headers` as `traceparent` (nothing for a context without one).
pub fn inject_context(context: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
}

/// Links `span` to the span whose W3C trace context is in `headers`, if any.
fn link_to(span: &tracing::Span, headers: &http::HeaderMap) {
    use opentelemetry::trace::TraceContextExt;
    let linked = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let linked = linked.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_named_by_verb_and_first_table() {
        for (text, name) in [
            (
                "SELECT id, name FROM products WHERE id = $1",
                "SELECT products",
            ),
            (
                "insert into order_lines (a) values ($1)",
                "INSERT order_lines",
            ),
            ("UPDATE sagas SET step = $1", "UPDATE sagas"),
            (
                "DELETE FROM cart_items WHERE user_id = ?1",
                "DELETE cart_items",
            ),
            ("\n  SELECT 1", "SELECT"),
            ("", "SQL"),
            ("SELECT n FROM \"quoted\"", "SELECT quoted"),
        ] {
            assert_eq!(sql::summary(text), name, "{text}");
        }
    }

    #[test]
    fn new_traces_are_kept_within_the_budget() {
        let budget = TraceBudget::new(5.0);
        let kept = (0..100).filter(|_| budget.take()).count();
        assert!((5..=6).contains(&kept), "{kept} of 100 at once");
        assert!(!TraceBudget::new(0.0).take(), "0 keeps none");
    }
}
