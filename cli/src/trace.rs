//! `souk trace`: the traces the gateway of a running shop collected, in the terminal — one drawn
//! as a waterfall (`souk trace <id>`), or the recent ones (`souk trace`, `souk trace --list`).
//!
//! It reads the gateway's `/traces` API on the admin listener into types of its own that name
//! only the fields it shows: the gateway owns the wire types. Span names and service names are
//! whatever the services sent, so control characters are replaced before they reach the terminal.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;

use crate::state::State;

/// Prints one trace as a waterfall, or the recent traces when no id is given.
pub(crate) fn trace(data_dir: &Path, trace_id: Option<&str>) -> ExitCode {
    crate::status::run(async {
        let id = trace_id.map(parse_id).transpose()?;
        let state = State::read(data_dir)?;
        let client = state.client(Duration::from_secs(5))?;
        let lines = match id {
            Some(id) => {
                let url = format!("http://{}/traces/{id}", state.admin);
                waterfall(&get(&client, &url).await?)?
            }
            None => {
                let url = format!("http://{}/traces?limit={LIST_LIMIT}", state.admin);
                list(&get(&client, &url).await?)?
            }
        };
        for line in lines {
            println!("{line}");
        }
        Ok(())
    })
}

/// The columns of a waterfall's time axis.
const COLUMNS: usize = 40;
/// The widest label (indentation, service and name); a longer one is cut.
const MAX_LABEL: usize = 56;
/// How many traces the list shows.
const LIST_LIMIT: usize = 20;

/// `GET /traces/{id}`: the fields drawn.
#[derive(Debug, Deserialize)]
struct Trace {
    trace_id: String,
    spans: Vec<Span>,
}

#[derive(Debug, Deserialize)]
struct Span {
    span_id: String,
    #[serde(default)]
    parent_span_id: Option<String>,
    service: String,
    name: String,
    start_unix_nano: u64,
    end_unix_nano: u64,
    #[serde(default)]
    status: String,
    #[serde(default)]
    status_message: Option<String>,
}

/// `GET /traces`: the fields listed.
#[derive(Debug, Deserialize)]
struct List {
    traces: Vec<Summary>,
    store: Store,
}

#[derive(Debug, Deserialize)]
struct Summary {
    trace_id: String,
    root_service: String,
    root_name: String,
    #[serde(default = "yes")]
    root_found: bool,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    status_code: Option<i64>,
    start_unix_nano: u64,
    duration_ms: f64,
    spans: usize,
    #[serde(default)]
    error: bool,
}

#[derive(Debug, Deserialize)]
struct Store {
    spans: usize,
    traces: usize,
    bytes: usize,
    dropped: u64,
}

fn yes() -> bool {
    true
}

/// A trace id as the gateway wants it: 32 hex digits, not all zero.
fn parse_id(text: &str) -> Result<String, String> {
    let valid = text.len() == 32
        && text.bytes().all(|b| b.is_ascii_hexdigit())
        && text.bytes().any(|b| b != b'0');
    if !valid {
        return Err(format!(
            "{text:?} is not a trace id (32 hex digits): `souk trace` lists the recent ones"
        ));
    }
    Ok(text.to_ascii_lowercase())
}

/// GETs `url` from the admin API; a refusal becomes a message saying what it means.
async fn get(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach the gateway at {url}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{url} answered {status}, then broke off: {e}"))?;
    let body = serde_json::from_str(&text);
    if !status.is_success() {
        return Err(refusal(status, &body.unwrap_or_default()));
    }
    body.map_err(|e| format!("{url} answered something unreadable: {e}"))
}

/// What a refusal of the traces API means, from its problem document.
fn refusal(status: reqwest::StatusCode, problem: &serde_json::Value) -> String {
    let detail = problem["detail"].as_str().map(clean).unwrap_or_default();
    match problem["type"].as_str() {
        Some("urn:souk:problem:traces-off") => {
            format!("this shop's gateway collects no traces ({detail})")
        }
        Some("urn:souk:problem:trace-not-found") => {
            format!("the gateway holds no such trace: {detail}")
        }
        _ if detail.is_empty() => format!("the gateway answered {status}"),
        _ => format!("the gateway answered {status}: {detail}"),
    }
}

/// A trace from `GET /traces/{id}` as lines: a header, the time axis, then one line per span in
/// tree order — `!` before a failed span, its service and name indented by depth, its bar on
/// the trace's axis, its duration, and its status message.
fn waterfall(json: &serde_json::Value) -> Result<Vec<String>, String> {
    let trace = Trace::deserialize(json).map_err(|e| format!("the trace is unreadable: {e}"))?;
    let Some(start) = trace.spans.iter().map(|s| s.start_unix_nano).min() else {
        return Ok(vec![format!("trace {}: no spans", clean(&trace.trace_id))]);
    };
    let end = trace.spans.iter().map(end_of).max().unwrap_or(start);
    let total = end.saturating_sub(start).max(1);
    let rows = tree_order(&trace.spans);
    let labels: Vec<String> = rows
        .iter()
        .map(|row| {
            let span = &trace.spans[row.index];
            let indent = "  ".repeat(row.depth.min(16));
            cut(&format!(
                "{indent}{}  {}",
                clean(&span.service),
                clean(&span.name)
            ))
        })
        .collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut lines = vec![header(&trace, total), axis(width, total)];
    for (row, label) in rows.iter().zip(&labels) {
        let span = &trace.spans[row.index];
        let failed = span.status == "error";
        let from = span.start_unix_nano - start;
        let mut line = format!(
            "{} {label:<width$} │{}│ {:>10}",
            if failed { '!' } else { ' ' },
            bar(from, end_of(span) - start, total),
            ms(span.end_unix_nano.saturating_sub(span.start_unix_nano)),
        );
        if row.orphan {
            line.push_str("  (parent not received)");
        }
        if failed {
            line.push_str("  ! ");
            line.push_str(&clean(span.status_message.as_deref().unwrap_or("error")));
        }
        lines.push(line);
    }
    Ok(lines)
}

fn header(trace: &Trace, total: u64) -> String {
    let mut services: Vec<String> = trace.spans.iter().map(|s| clean(&s.service)).collect();
    services.sort_unstable();
    services.dedup();
    let failed = trace.spans.iter().filter(|s| s.status == "error").count();
    let mut header = format!(
        "trace {}  {}  {} spans  {}",
        clean(&trace.trace_id),
        ms(total),
        trace.spans.len(),
        services.join(", ")
    );
    if failed > 0 {
        header.push_str(&format!("  ({failed} failed)"));
    }
    header
}

/// The time axis above the bars: 0, the middle and the end.
fn axis(width: usize, total: u64) -> String {
    let mut ticks: Vec<char> = vec![' '; COLUMNS];
    let place = |ticks: &mut [char], label: String, at: usize| {
        for (i, c) in label.chars().enumerate() {
            if let Some(slot) = ticks.get_mut(at + i) {
                *slot = c;
            }
        }
    };
    let end = ms(total);
    let middle = ms(total / 2);
    place(&mut ticks, end.clone(), COLUMNS.saturating_sub(end.len()));
    place(&mut ticks, middle.clone(), (COLUMNS - middle.len()) / 2);
    place(&mut ticks, "0".to_owned(), 0);
    format!(
        "  {:width$} │{}│",
        "",
        ticks.into_iter().collect::<String>()
    )
}

/// A bar from `from` to `to` nanoseconds into a trace `total` long, `COLUMNS` wide: full blocks
/// over the columns it covers, or one thin stroke where it is too short to fill half of one.
fn bar(from: u64, to: u64, total: u64) -> String {
    let columns = COLUMNS as u128;
    let column = |t: u64, round_up: bool| {
        let scaled = u128::from(t.min(total)) * columns;
        let column = if round_up {
            (2 * scaled + u128::from(total)) / (2 * u128::from(total))
        } else {
            scaled / u128::from(total)
        };
        usize::try_from(column).unwrap_or(COLUMNS)
    };
    let first = column(from, false).min(COLUMNS - 1);
    let (fill, len) = if 2 * u128::from(to.saturating_sub(from)) * columns < u128::from(total) {
        ('▏', 1)
    } else {
        ('█', column(to, true).max(first + 1).min(COLUMNS) - first)
    };
    let mut bar = " ".repeat(first);
    bar.extend(std::iter::repeat_n(fill, len));
    bar.push_str(&" ".repeat(COLUMNS - first - len));
    bar
}

/// The recent traces from `GET /traces` as a table, newest first, and what the store holds.
fn list(json: &serde_json::Value) -> Result<Vec<String>, String> {
    let list = List::deserialize(json).map_err(|e| format!("the list is unreadable: {e}"))?;
    let store = &list.store;
    let held = format!(
        "the gateway holds {} spans of {} traces ({} KiB); {} dropped to make room",
        store.spans,
        store.traces,
        store.bytes / 1024,
        store.dropped
    );
    if list.traces.is_empty() {
        return Ok(vec![
            "no traces yet: send a request through the gateway".to_owned(),
            held,
        ]);
    }
    let mut lines = vec![format!(
        "  {:<12}  {:<32}  {:>10}  {:>5}  {:>6}  root",
        "start (UTC)", "trace", "duration", "spans", "status"
    )];
    for trace in &list.traces {
        let mut root = format!(
            "{}  {}",
            clean(&trace.root_service),
            clean(&trace.root_name)
        );
        if let Some(route) = trace
            .route
            .as_deref()
            .filter(|r| !trace.root_name.contains(r))
        {
            root.push_str(&format!("  {}", clean(route)));
        }
        if !trace.root_found {
            root.push_str("  (root not received)");
        }
        lines.push(format!(
            "{} {:<12}  {:<32}  {:>10}  {:>5}  {:>6}  {root}",
            if trace.error { '!' } else { ' ' },
            clock(trace.start_unix_nano),
            clean(&trace.trace_id),
            format!("{:.1} ms", trace.duration_ms),
            trace.spans,
            trace
                .status_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        ));
    }
    lines.push(String::new());
    lines.push(held);
    lines.push("`souk trace <trace>` draws one; `!` marks a failed trace".to_owned());
    Ok(lines)
}

/// A row of the waterfall: the span (an index into the trace's spans) and its depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    index: usize,
    depth: usize,
    /// Drawn as a root though it has a parent: the parent is not held (or the parents loop).
    orphan: bool,
}

/// The spans depth-first from the roots, roots and siblings by start time; a span whose parent
/// is not held is a root, and a loop of parents is cut, so every span is drawn once.
fn tree_order(spans: &[Span]) -> Vec<Row> {
    let mut by_start: Vec<usize> = (0..spans.len()).collect();
    by_start.sort_by_key(|&i| (spans[i].start_unix_nano, spans[i].end_unix_nano));
    let mut index: HashMap<&str, usize> = HashMap::new();
    for &i in &by_start {
        index.entry(spans[i].span_id.as_str()).or_insert(i);
    }
    let mut children = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for &i in &by_start {
        match spans[i].parent_span_id.as_deref().map(|p| index.get(p)) {
            None => roots.push((i, false)),
            Some(None) => roots.push((i, true)),
            Some(Some(&parent)) => children[parent].push(i),
        }
    }
    let starts = roots.into_iter().chain(by_start.iter().map(|&i| (i, true)));
    let mut seen = vec![false; spans.len()];
    let mut rows = Vec::with_capacity(spans.len());
    let mut stack = Vec::new();
    for (root, orphan) in starts {
        stack.push((root, 0, orphan));
        while let Some((i, depth, orphan)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            rows.push(Row {
                index: i,
                depth,
                orphan,
            });
            let next = children[i].iter().rev().filter(|c| !seen[**c]);
            stack.extend(next.map(|c| (*c, depth + 1, false)));
        }
    }
    rows
}

/// A span's end, never before its start.
fn end_of(span: &Span) -> u64 {
    span.end_unix_nano.max(span.start_unix_nano)
}

/// Nanoseconds as milliseconds, with fewer decimals the longer they are.
fn ms(nanos: u64) -> String {
    // Durations far below 2^53 ns: the precision lost is none.
    #[allow(clippy::cast_precision_loss)]
    let ms = nanos as f64 / 1e6;
    match ms {
        _ if ms < 1.0 => format!("{ms:.3} ms"),
        _ if ms < 10.0 => format!("{ms:.2} ms"),
        _ if ms < 100.0 => format!("{ms:.1} ms"),
        _ => format!("{ms:.0} ms"),
    }
}

/// A time of day, UTC, to the millisecond.
fn clock(nanos: u64) -> String {
    let millis = nanos / 1_000_000;
    let seconds = millis / 1_000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        millis % 1_000
    )
}

/// Text from a span, safe for a terminal: control characters (escape sequences among them)
/// become `?`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A label cut to [`MAX_LABEL`] characters.
fn cut(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL {
        return label.to_owned();
    }
    let mut cut: String = label.chars().take(MAX_LABEL - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 12:34:56.789 UTC on 1 Jan 2025, in nanoseconds.
    const T0: u64 = 1_735_734_896_789_000_000;

    fn span(
        id: &str,
        parent: Option<&str>,
        service: &str,
        name: &str,
        ms: (u64, u64),
    ) -> serde_json::Value {
        let mut span = serde_json::json!({
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": id,
            "service": service,
            "name": name,
            "kind": "server",
            "start_unix_nano": T0 + ms.0 * 1_000_000,
            "end_unix_nano": T0 + ms.1 * 1_000_000,
            "status": "unset",
            "attributes": {"http.route": "/api/v1/orders"},
        });
        if let Some(parent) = parent {
            span["parent_span_id"] = parent.into();
        }
        span
    }

    #[test]
    fn a_trace_is_drawn_in_tree_order_on_a_shared_axis() {
        let mut failed = span("44", Some("99"), "payments", "charge", (120, 150));
        failed["status"] = "error".into();
        failed["status_message"] = "card declined".into();
        let trace = serde_json::json!({
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "spans": [
                span("11", None, "gateway", "POST /api/v1/orders", (0, 200)),
                span("22", Some("11"), "orders", "create order", (50, 100)),
                failed,
                span("33", Some("22"), "inventory", "reserve", (60, 70)),
            ],
        });
        let lines = waterfall(&trace).unwrap();
        let expected = [
            "trace 0af7651916cd43dd8448eb211c80319c  200 ms  4 spans  gateway, inventory, orders, payments  (1 failed)",
            "                               │0                100 ms           200 ms│",
            "  gateway  POST /api/v1/orders │████████████████████████████████████████│     200 ms",
            "    orders  create order       │          ██████████                    │    50.0 ms",
            "      inventory  reserve       │            ██                          │    10.0 ms",
            "! payments  charge             │                        ██████          │    30.0 ms  (parent not received)  ! card declined",
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn a_short_span_is_a_stroke_and_a_late_one_stays_on_the_axis() {
        let total = 200_000_000;
        assert_eq!(
            bar(60_000_000, 60_000_001, total).trim_end(),
            format!("{}▏", " ".repeat(12))
        );
        assert_eq!(
            bar(total, total, total),
            format!("{}▏", " ".repeat(COLUMNS - 1))
        );
        assert_eq!(bar(0, 1, 1), "█".repeat(COLUMNS));
        assert_eq!(bar(0, total, total).chars().count(), COLUMNS);
    }

    #[test]
    fn hostile_text_is_cleaned_and_long_names_are_cut() {
        let trace = serde_json::json!({
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "spans": [span("11", Some("11"), "cat\u{1b}[2Jalog", &"x".repeat(80), (0, 1))],
        });
        let lines = waterfall(&trace).unwrap();
        assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "{lines:?}");
        assert!(
            lines[2].starts_with("  cat?[2Jalog  xxx") && lines[2].contains("x… │"),
            "{lines:?}"
        );
        assert!(
            lines[2].ends_with("(parent not received)"),
            "a loop is cut: {lines:?}"
        );
    }

    #[test]
    fn the_list_is_a_table_with_failed_traces_marked() {
        let json = serde_json::json!({
            "traces": [{
                "trace_id": "0af7651916cd43dd8448eb211c80319c", "root_service": "gateway",
                "root_name": "POST /api/v1/orders", "root_found": true, "route": "/api/v1/orders",
                "status_code": 502, "start_unix_nano": T0, "duration_ms": 200.04,
                "services": ["gateway", "payments"], "spans": 4, "error": true,
            }],
            "store": {"spans": 4, "traces": 1, "bytes": 4096, "dropped": 0, "max_spans": 10, "max_bytes": 65536},
        });
        let lines = list(&json).unwrap();
        assert_eq!(
            lines[1],
            "! 12:34:56.789  0af7651916cd43dd8448eb211c80319c    200.0 ms      4     502  gateway  POST /api/v1/orders"
        );
        assert_eq!(
            lines[3],
            "the gateway holds 4 spans of 1 traces (4 KiB); 0 dropped to make room"
        );
        let empty = serde_json::json!({"traces": [], "store": {"spans": 0, "traces": 0, "bytes": 0, "dropped": 0}});
        assert!(list(&empty).unwrap()[0].starts_with("no traces yet"));
    }

    #[test]
    fn ids_and_refusals_say_what_is_wrong() {
        assert_eq!(
            parse_id("0AF7651916CD43DD8448EB211C80319C").unwrap(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(parse_id("0af765").is_err() && parse_id(&"0".repeat(32)).is_err());
        let off =
            serde_json::json!({"type": "urn:souk:problem:traces-off", "detail": "no [traces]"});
        assert!(refusal(reqwest::StatusCode::NOT_FOUND, &off).contains("collects no traces"));
        let gone =
            serde_json::json!({"type": "urn:souk:problem:trace-not-found", "detail": "too old"});
        assert_eq!(
            refusal(reqwest::StatusCode::NOT_FOUND, &gone),
            "the gateway holds no such trace: too old"
        );
        assert_eq!(
            refusal(reqwest::StatusCode::UNAUTHORIZED, &serde_json::Value::Null),
            "the gateway answered 401 Unauthorized"
        );
    }
}
