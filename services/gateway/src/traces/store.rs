//! The span store: the spans received, oldest dropped first once there are more than
//! `max_spans` of them or they weigh more than `max_bytes`, and the traces they make.
//!
//! Spans are kept in arrival order in one ring; each trace lists its spans' sequence numbers, so
//! dropping the oldest span is O(1) and a trace's spans are found without a scan. The weight of
//! a span is an estimate of what it holds (its strings and a fixed part), close enough to bound
//! the store's memory, not an exact count of allocator bytes.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

/// A trace id: 16 bytes, written as 32 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// A span id: 8 bytes, written as 16 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

macro_rules! hex_id {
    ($ty:ident, $len:literal) => {
        impl $ty {
            /// The id in `bytes`, when it has the right length and is not all zeroes (the
            /// "invalid" id of the W3C and OTLP specifications).
            pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
                let id: [u8; $len] = bytes.try_into().ok()?;
                id.iter().any(|b| *b != 0).then_some(Self(id))
            }

            /// Parses the hex form (either case).
            pub fn parse(text: &str) -> Option<Self> {
                // `from_str_radix` takes a sign: check the digits first.
                if text.len() != $len * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let mut id = [0u8; $len];
                for (i, byte) in id.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
                }
                Self::from_bytes(&id)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

hex_id!(TraceId, 16);
hex_id!(SpanId, 8);

/// How a span ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing said.
    Unset,
    /// Marked as succeeded.
    Ok,
    /// Marked as failed.
    Error,
}

/// One span as the store keeps it and the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// Its parent's, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    /// The service that made it (`service.name`).
    pub service: Arc<str>,
    /// What it did.
    pub name: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: &'static str,
    /// When it started, in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// When it ended.
    pub end_unix_nano: u64,
    /// How it ended.
    pub status: Status,
    /// The status' message, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Its attributes, in the order received.
    #[serde(serialize_with = "as_map")]
    pub attributes: Vec<(String, serde_json::Value)>,
    /// What happened during it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SpanEvent>,
    /// Spans it is linked to (a consumer's span to the span that published the event).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<SpanLink>,
}

/// Something that happened during a span.
#[derive(Debug, Clone, Serialize)]
pub struct SpanEvent {
    /// What.
    pub name: String,
    /// When, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// Its attributes.
    #[serde(serialize_with = "as_map")]
    pub attributes: Vec<(String, serde_json::Value)>,
}

/// A link to a span of this or another trace.
#[derive(Debug, Clone, Serialize)]
pub struct SpanLink {
    /// The linked span's trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// Its attributes.
    #[serde(serialize_with = "as_map", skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, serde_json::Value)>,
}

fn as_map<S: serde::Serializer>(
    attributes: &[(String, serde_json::Value)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(attributes.iter().map(|(k, v)| (k, v)))
}

impl Span {
    /// The span's duration in milliseconds (0 for a span that ends before it starts).
    pub fn duration_ms(&self) -> f64 {
        nanos_to_ms(self.end_unix_nano.saturating_sub(self.start_unix_nano))
    }

    /// The attribute named `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&serde_json::Value> {
        self.attributes
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// An estimate of the bytes the span holds, for the store's bound.
    fn weight(&self) -> usize {
        fn attributes(attributes: &[(String, serde_json::Value)]) -> usize {
            attributes
                .iter()
                .map(|(k, v)| 48 + k.len() + value_weight(v))
                .sum()
        }
        let events: usize = self
            .events
            .iter()
            .map(|e| 64 + e.name.len() + attributes(&e.attributes))
            .sum();
        let links: usize = self
            .links
            .iter()
            .map(|l| 48 + attributes(&l.attributes))
            .sum();
        // The service's name is shared by the spans of one export, but counted in full for
        // each: over-counting keeps the bound a bound.
        std::mem::size_of::<Self>()
            + self.service.len()
            + self.name.len()
            + self.status_message.as_ref().map_or(0, String::len)
            + attributes(&self.attributes)
            + events
            + links
    }
}

fn value_weight(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(s) => s.len(),
        serde_json::Value::Array(items) => items.iter().map(|v| 16 + value_weight(v)).sum(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| 48 + k.len() + value_weight(v))
            .sum(),
        _ => 0,
    }
}

/// Nanoseconds as fractional milliseconds.
pub fn nanos_to_ms(nanos: u64) -> f64 {
    // A span longer than 2^53 ns (104 days) loses precision it never needed.
    #[allow(clippy::cast_precision_loss)]
    let nanos = nanos as f64;
    nanos / 1_000_000.0
}

/// How much the store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Spans at most.
    pub max_spans: usize,
    /// Estimated bytes at most.
    pub max_bytes: usize,
}

/// What the store holds now, and what it had to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Occupancy {
    /// Spans held.
    pub spans: usize,
    /// Traces they make.
    pub traces: usize,
    /// Their estimated weight.
    pub bytes: usize,
    /// Spans dropped since start to stay within the limits (oldest first).
    pub dropped: u64,
    /// The limits.
    pub max_spans: usize,
    /// The limits.
    pub max_bytes: usize,
}

/// One trace as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    /// Its id.
    pub trace_id: TraceId,
    /// The root span's service (the earliest span's, when the root has not arrived or was
    /// dropped).
    pub root_service: Arc<str>,
    /// The root span's name.
    pub root_name: String,
    /// Whether the root span itself is here.
    pub root_found: bool,
    /// The route the root served (`http.route`), when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The root's HTTP status, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    /// When the earliest span started, in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// From the earliest start to the latest end.
    pub duration_ms: f64,
    /// The services with a span in it, sorted.
    pub services: Vec<Arc<str>>,
    /// How many spans it has here.
    pub spans: usize,
    /// Whether any span failed.
    pub error: bool,
}

/// Which traces a list wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only traces with a span of this service.
    pub service: Option<String>,
    /// Only traces whose route (or root span's name) contains this.
    pub route: Option<String>,
    /// Only traces at least this long.
    pub min_ms: Option<f64>,
    /// Only failed traces.
    pub errors_only: bool,
    /// At most this many, newest first.
    pub limit: usize,
}

impl Filter {
    fn admits(&self, summary: &TraceSummary) -> bool {
        self.service
            .as_deref()
            .is_none_or(|service| summary.services.iter().any(|s| &**s == service))
            && self.route.as_deref().is_none_or(|route| {
                summary.route.as_deref().is_some_and(|r| r.contains(route))
                    || summary.root_name.contains(route)
            })
            && self.min_ms.is_none_or(|min| summary.duration_ms >= min)
            && (!self.errors_only || summary.error)
    }
}

/// The bounded span store, shared by the receiver and the readers.
#[derive(Debug)]
pub struct TraceStore {
    limits: Limits,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Spans in arrival order; `spans[i]` has the sequence number `first_seq + i`.
    spans: VecDeque<(Arc<Span>, usize)>,
    first_seq: u64,
    /// Each trace's spans, by sequence number, oldest first.
    traces: HashMap<TraceId, VecDeque<u64>>,
    bytes: usize,
    dropped: u64,
}

impl TraceStore {
    /// An empty store holding at most `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent ring (every method finishes each
        // span's bookkeeping before the next); keep serving it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `spans`, dropping the oldest ones as the limits require. A span heavier than
    /// `max_bytes` on its own is dropped at once (and counted).
    pub fn insert(&self, spans: impl IntoIterator<Item = Span>) {
        let mut inner = self.inner();
        let before = inner.dropped;
        for span in spans {
            let weight = span.weight();
            if weight > self.limits.max_bytes || self.limits.max_spans == 0 {
                inner.dropped += 1;
                continue;
            }
            while !inner.spans.is_empty()
                && (inner.spans.len() >= self.limits.max_spans
                    || inner.bytes + weight > self.limits.max_bytes)
            {
                inner.drop_oldest();
            }
            let seq = inner.first_seq + inner.spans.len() as u64;
            inner
                .traces
                .entry(span.trace_id)
                .or_default()
                .push_back(seq);
            inner.bytes += weight;
            inner.spans.push_back((Arc::new(span), weight));
        }
        let dropped = inner.dropped - before;
        let occupancy = inner.occupancy(self.limits);
        drop(inner);
        crate::metrics::record_trace_store(&occupancy, dropped);
    }

    /// What the store holds.
    pub fn occupancy(&self) -> Occupancy {
        self.inner().occupancy(self.limits)
    }

    /// Every span of `trace` held, by start time.
    pub fn trace(&self, trace: TraceId) -> Vec<Arc<Span>> {
        let mut spans: Vec<Arc<Span>> = {
            let inner = self.inner();
            inner.traces.get(&trace).map_or_else(Vec::new, |seqs| {
                seqs.iter().filter_map(|seq| inner.span(*seq)).collect()
            })
        };
        spans.sort_by_key(|s| (s.start_unix_nano, s.end_unix_nano));
        // Only the spans whose service changes are copied, and only this trace's.
        let services = services_of(&spans);
        for (span, service) in spans.iter_mut().zip(services) {
            if span.service != service {
                let mut named = Span::clone(span);
                named.service = service;
                *span = Arc::new(named);
            }
        }
        spans
    }

    /// The traces `filter` admits, newest (latest start) first.
    pub fn list(&self, filter: &Filter) -> Vec<TraceSummary> {
        let traces: Vec<Vec<Arc<Span>>> = {
            let inner = self.inner();
            inner
                .traces
                .values()
                .map(|seqs| seqs.iter().filter_map(|seq| inner.span(*seq)).collect())
                .collect()
        };
        let mut summaries: Vec<TraceSummary> = traces
            .iter()
            .filter_map(|spans| summarize(spans))
            .filter(|summary| filter.admits(summary))
            .collect();
        summaries.sort_by(|a, b| {
            b.start_unix_nano
                .cmp(&a.start_unix_nano)
                .then(a.trace_id.cmp(&b.trace_id))
        });
        summaries.truncate(filter.limit);
        summaries
    }
}

impl Inner {
    fn span(&self, seq: u64) -> Option<Arc<Span>> {
        let index = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.spans.get(index).map(|(span, _)| Arc::clone(span))
    }

    fn drop_oldest(&mut self) {
        let Some((span, weight)) = self.spans.pop_front() else {
            return;
        };
        if let Some(seqs) = self.traces.get_mut(&span.trace_id) {
            seqs.pop_front();
            if seqs.is_empty() {
                self.traces.remove(&span.trace_id);
            }
        }
        self.first_seq += 1;
        self.bytes -= weight;
        self.dropped += 1;
    }

    fn occupancy(&self, limits: Limits) -> Occupancy {
        Occupancy {
            spans: self.spans.len(),
            traces: self.traces.len(),
            bytes: self.bytes,
            dropped: self.dropped,
            max_spans: limits.max_spans,
            max_bytes: limits.max_bytes,
        }
    }
}

/// The process name of `souk monolith`, whose spans name their service with `souk.service`.
pub const SHARED_PROCESS: &str = "monolith";

/// Each span's service, a span of the monolith that names none (an SQL statement, say) given
/// its nearest ancestor's that does: in one process running every service, the parent knows
/// whose work it was. Resolved through the parent links, whatever the order of `spans`, and
/// never more than 64 links up (a loop of parents ends there).
fn services_of(spans: &[Arc<Span>]) -> Vec<Arc<str>> {
    let inherits =
        |span: &Span| &*span.service == SHARED_PROCESS && span.attribute("souk.service").is_none();
    let by_id: HashMap<SpanId, &Span> = spans.iter().map(|s| (s.span_id, &**s)).collect();
    spans
        .iter()
        .map(|span| {
            let mut at: &Span = span;
            for _ in 0..64 {
                if !inherits(at) {
                    break;
                }
                match at.parent_span_id.and_then(|p| by_id.get(&p)) {
                    Some(parent) => at = parent,
                    None => break,
                }
            }
            Arc::clone(&at.service)
        })
        .collect()
}

/// A trace's summary from its spans (`None` for no spans), with the monolith's spans counted
/// under the service they were for.
pub fn summarize(spans: &[Arc<Span>]) -> Option<TraceSummary> {
    let first = spans.first()?;
    let start = spans.iter().map(|s| s.start_unix_nano).min()?;
    let end = spans.iter().map(|s| s.end_unix_nano).max()?;
    let root = spans.iter().find(|s| s.parent_span_id.is_none());
    let shown = root.unwrap_or_else(|| {
        spans
            .iter()
            .min_by_key(|s| s.start_unix_nano)
            .unwrap_or(first)
    });
    let resolved = if spans.iter().any(|s| &*s.service == SHARED_PROCESS) {
        services_of(spans)
    } else {
        spans.iter().map(|s| Arc::clone(&s.service)).collect()
    };
    let shown_service = spans
        .iter()
        .position(|s| std::ptr::eq(&**s, &**shown))
        .map_or_else(|| Arc::clone(&shown.service), |i| Arc::clone(&resolved[i]));
    let services: BTreeSet<Arc<str>> = resolved.into_iter().collect();
    Some(TraceSummary {
        trace_id: first.trace_id,
        root_service: shown_service,
        root_name: shown.name.clone(),
        root_found: root.is_some(),
        route: shown
            .attribute("http.route")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        status_code: shown
            .attribute("http.response.status_code")
            .and_then(serde_json::Value::as_i64),
        start_unix_nano: start,
        duration_ms: nanos_to_ms(end.saturating_sub(start)),
        services: services.into_iter().collect(),
        spans: spans.len(),
        error: spans.iter().any(|s| s.status == Status::Error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn span(trace: u8, id: u8, parent: Option<u8>, start_ms: u64, ms: u64) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: Arc::from("catalog"),
            name: format!("span {id}"),
            kind: "internal",
            start_unix_nano: start_ms * 1_000_000,
            end_unix_nano: (start_ms + ms) * 1_000_000,
            status: Status::Unset,
            status_message: None,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    #[test]
    fn ids_read_and_write_hex_and_refuse_the_invalid_id() {
        let id = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid");
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            TraceId::parse("4BF92F3577B34DA6A3CE929D0E0E4736"),
            Some(id),
            "either case"
        );
        assert_eq!(TraceId::parse("00000000000000000000000000000000"), None);
        assert_eq!(TraceId::parse("4bf92f3577b34da6a3ce929d0e0e473"), None);
        assert_eq!(TraceId::parse("4bf92f3577b34da6a3ce929d0e0e473g"), None);
        assert_eq!(TraceId::parse("+bf92f3577b34da6a3ce929d0e0e4736"), None);
        assert_eq!(SpanId::from_bytes(&[1; 7]), None);
        assert_eq!(SpanId::from_bytes(&[0; 8]), None);
    }

    #[test]
    fn the_oldest_spans_go_first_when_the_count_is_reached() {
        let store = TraceStore::new(Limits {
            max_spans: 3,
            max_bytes: usize::MAX,
        });
        store.insert([span(1, 1, None, 0, 10), span(1, 2, Some(1), 1, 5)]);
        store.insert([span(2, 3, None, 20, 1), span(2, 4, Some(3), 21, 1)]);
        let occupancy = store.occupancy();
        assert_eq!(
            (occupancy.spans, occupancy.traces, occupancy.dropped),
            (3, 2, 1)
        );
        let first: Vec<_> = store
            .trace(TraceId([1; 16]))
            .iter()
            .map(|s| s.span_id)
            .collect();
        assert_eq!(first, [SpanId([2; 8])], "the trace's oldest span went");
        store.insert([span(3, 5, None, 30, 1)]);
        assert!(
            store.trace(TraceId([1; 16])).is_empty(),
            "the whole trace went"
        );
        assert_eq!(store.occupancy().traces, 2);
    }

    #[test]
    fn the_bytes_bound_holds_under_a_flood() {
        let max_bytes = 64 * 1024;
        let store = TraceStore::new(Limits {
            max_spans: usize::MAX,
            max_bytes,
        });
        for n in 0..10_000u32 {
            let mut s = span((n % 251) as u8 + 1, (n % 13) as u8 + 1, None, n.into(), 1);
            s.attributes.push((
                "db.query.text".into(),
                "x".repeat((n % 700) as usize).into(),
            ));
            store.insert([s]);
            assert!(store.occupancy().bytes <= max_bytes);
        }
        let occupancy = store.occupancy();
        assert!(
            occupancy.spans > 10 && occupancy.dropped > 9_000,
            "{occupancy:?}"
        );
        let mut huge = span(9, 9, None, 0, 1);
        huge.name = "y".repeat(max_bytes);
        store.insert([huge]);
        assert_eq!(store.occupancy().dropped, occupancy.dropped + 1);
        assert!(store.trace(TraceId([9; 16])).is_empty());
    }

    #[test]
    fn the_monolith_s_spans_take_their_service_from_the_nearest_ancestor_that_names_one() {
        let store = TraceStore::new(Limits {
            max_spans: 100,
            max_bytes: usize::MAX,
        });
        let monolith = |mut s: Span| {
            s.service = Arc::from(SHARED_PROCESS);
            s
        };
        let mut request = monolith(span(4, 1, None, 0, 10));
        request
            .attributes
            .push(("souk.service".into(), "orders".into()));
        request.service = Arc::from("orders");
        // The statement starts at the same instant as its parent, and arrives first.
        let statement = monolith(span(4, 3, Some(2), 0, 1));
        let call = monolith(span(4, 2, Some(1), 0, 5));
        let stray = monolith(span(4, 5, Some(9), 3, 1));
        store.insert([statement, call, request, stray]);
        let services: Vec<(u8, String)> = store
            .trace(TraceId([4; 16]))
            .iter()
            .map(|s| (s.span_id.0[0], s.service.to_string()))
            .collect();
        assert!(services.contains(&(3, "orders".to_owned())), "{services:?}");
        assert!(services.contains(&(2, "orders".to_owned())), "{services:?}");
        assert!(
            services.contains(&(5, SHARED_PROCESS.to_owned())),
            "no ancestor held: {services:?}"
        );
        let listed = store.list(&Filter {
            limit: 1,
            ..Filter::default()
        });
        assert_eq!(listed[0].root_service.as_ref(), "orders");
        assert!(listed[0].services.iter().any(|s| &**s == "orders"));
    }

    #[test]
    fn a_list_is_newest_first_and_filtered() {
        let store = TraceStore::new(Limits {
            max_spans: 100,
            max_bytes: usize::MAX,
        });
        let mut slow = span(1, 1, None, 0, 900);
        slow.attributes
            .push(("http.route".into(), "/api/v1/orders".into()));
        let mut failed = span(2, 2, Some(7), 100, 3);
        failed.status = Status::Error;
        failed.service = Arc::from("payments");
        store.insert([slow, failed, span(3, 3, None, 200, 1)]);
        let all = store.list(&Filter {
            limit: 10,
            ..Filter::default()
        });
        let ids: Vec<_> = all.iter().map(|t| t.trace_id.0[0]).collect();
        assert_eq!(ids, [3, 2, 1]);
        assert!(
            !all[1].root_found,
            "the failed trace's root has not arrived"
        );
        let only = |filter: Filter| -> Vec<u8> {
            store
                .list(&filter)
                .iter()
                .map(|t| t.trace_id.0[0])
                .collect()
        };
        let base = Filter {
            limit: 10,
            ..Filter::default()
        };
        assert_eq!(
            only(Filter {
                min_ms: Some(500.0),
                ..base.clone()
            }),
            [1]
        );
        assert_eq!(
            only(Filter {
                errors_only: true,
                ..base.clone()
            }),
            [2]
        );
        assert_eq!(
            only(Filter {
                service: Some("payments".into()),
                ..base.clone()
            }),
            [2]
        );
        assert_eq!(
            only(Filter {
                route: Some("orders".into()),
                ..base.clone()
            }),
            [1]
        );
        assert_eq!(only(Filter { limit: 1, ..base }), [3]);
    }
}
