//! The trace page at `/waterfall`: the recent traces with a filter, and one trace drawn as a
//! waterfall.
//!
//! Server-rendered and self-contained — its style inline (`assets/waterfall.css`), nothing
//! fetched from another host — and whole without JavaScript: the filter is a GET form, a span's
//! details a `<details>`. Every link is relative, so the page works on the admin and the
//! read-only listener alike. Whoever reaches the OTLP receiver writes span names, service names
//! and attributes, so everything that comes from a span goes through `text::Esc`.

mod layout;
mod text;

use std::fmt::{self, Display, Formatter};

use super::api::{TraceList, TraceView};
use super::store::{Occupancy, Span, Status, TraceSummary};
use layout::{Axis, Lineage, Row};
use text::{Bytes, Chip, Clock, Esc, Ms, Url, Value};

/// What a page shows: the filter as asked, the list, and the trace to draw if one was asked.
#[derive(Debug)]
pub struct PageInput<'a> {
    /// The list's filter, echoed into the form.
    pub query: Echo<'a>,
    /// The traces the filter admits.
    pub list: &'a TraceList,
    /// The trace to draw (`?trace=`); its spans are empty when it is not held.
    pub trace: Option<&'a TraceView>,
}

/// The filter as the form shows it.
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a> {
    /// `service=`.
    pub service: Option<&'a str>,
    /// `route=`.
    pub route: Option<&'a str>,
    /// `min_ms=`.
    pub min_ms: Option<f64>,
    /// `status=error`.
    pub errors_only: bool,
    /// `limit=`.
    pub limit: usize,
}

/// The page.
pub fn render(input: &PageInput<'_>) -> String {
    Page(input).to_string()
}

/// The page when this gateway collects no traces.
pub fn unavailable() -> String {
    Unavailable.to_string()
}

/// What "slow" means for the quick link.
const SLOW_MS: f64 = 250.0;

/// The page's style, inline.
const STYLE: &str = include_str!("../../assets/waterfall.css");

/// A few lines that only make the page nicer: a `#span-…` link opens the span it points at.
const SCRIPT: &str = r#"<script>
"use strict";
function openTarget() {
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.tagName === "DETAILS") target.open = true;
}
addEventListener("hashchange", openTarget);
openTarget();
</script>"#;

struct Page<'a, 'b>(&'a PageInput<'b>);

impl Display for Page<'_, '_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let input = self.0;
        let title = input.trace.map(|t| t.trace_id.to_string());
        head(f, title.as_deref())?;
        header(f, Some(&input.list.store))?;
        f.write_str("<main>")?;
        if let Some(trace) = input.trace {
            waterfall(f, trace, input)?;
        }
        f.write_str(r#"<section class="traces" aria-labelledby="recent"><h2 id="recent">Recent traces</h2>"#)?;
        filters(f, input)?;
        list(f, input)?;
        f.write_str("</section></main>")?;
        footer(f, Some(&input.list.store))
    }
}

struct Unavailable;

impl Display for Unavailable {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        head(f, None)?;
        header(f, None)?;
        f.write_str(
            "<main><p class=\"notice\">This gateway collects no traces: its configuration has no \
             <code>[traces]</code> section, so it receives no spans. <code>souk up</code> and \
             <code>souk monolith</code> turn it on.</p></main>",
        )?;
        footer(f, None)
    }
}

fn head(f: &mut Formatter<'_>, trace: Option<&str>) -> fmt::Result {
    let title = trace.map_or_else(|| "traces".to_owned(), |id| format!("trace {id}"));
    write!(
        f,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>souk — {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        Esc(&title)
    )
}

fn header(f: &mut Formatter<'_>, store: Option<&Occupancy>) -> fmt::Result {
    f.write_str(
        "<header><h1>souk — traces</h1><p class=\"summary\"><a href=\"map\">← service map</a>",
    )?;
    if let Some(store) = store {
        let dropped = if store.dropped > 0 { " warn" } else { "" };
        write!(
            f,
            " · <span title=\"at most {}\">{} spans</span> · {} traces · \
             <span title=\"at most {}\">{}</span> · <span class=\"dropped{dropped}\">{} dropped</span>",
            store.max_spans,
            store.spans,
            store.traces,
            Bytes(store.max_bytes),
            Bytes(store.bytes),
            store.dropped,
        )?;
    }
    f.write_str("</p></header>\n")
}

fn footer(f: &mut Formatter<'_>, store: Option<&Occupancy>) -> fmt::Result {
    f.write_str(
        "<footer>Spans come from the services' OTLP exporters to the gateway's receiver. Times \
         are UTC; a bar spans a span's start to its end on the trace's time axis.",
    )?;
    if let Some(store) = store {
        write!(
            f,
            " The gateway keeps the most recent {} spans ({}) and drops the oldest first.",
            store.max_spans,
            Bytes(store.max_bytes)
        )?;
    }
    write!(f, "</footer>\n{SCRIPT}\n</body>\n</html>\n")
}

/// The filter form, with the quick links.
fn filters(f: &mut Formatter<'_>, input: &PageInput<'_>) -> fmt::Result {
    let query = &input.query;
    // Number fields start filled (0 ms: no bound); an emptied one reads as no bound too.
    write!(
        f,
        "<form class=\"filters\" method=\"get\" action=\"waterfall\">\
         <label>service <input name=\"service\" list=\"services\" value=\"{}\"></label>\
         <label>route <input name=\"route\" placeholder=\"/api/v1/…\" value=\"{}\"></label>\
         <label>slower than <input type=\"number\" name=\"min_ms\" min=\"0\" step=\"any\" \
         value=\"{}\"> ms</label>\
         <label><input type=\"checkbox\" name=\"status\" value=\"error\"{}> failed only</label>\
         <label>at most <input type=\"number\" name=\"limit\" min=\"1\" max=\"1000\" \
         value=\"{}\"></label>",
        Esc(query.service.unwrap_or("")),
        Esc(query.route.unwrap_or("")),
        query.min_ms.unwrap_or(0.0),
        if query.errors_only { " checked" } else { "" },
        query.limit,
    )?;
    if let Some(trace) = input.trace {
        write!(
            f,
            "<input type=\"hidden\" name=\"trace\" value=\"{}\">",
            trace.trace_id
        )?;
    }
    f.write_str("<button type=\"submit\">show</button><datalist id=\"services\">")?;
    for service in layout::shop_services() {
        write!(f, "<option value=\"{service}\">")?;
    }
    let slow = query.min_ms == Some(SLOW_MS) && !query.errors_only;
    let failed = query.errors_only && query.min_ms.is_none();
    writeln!(
        f,
        "</datalist><p class=\"quick\">quick: <a href=\"waterfall?min_ms={SLOW_MS}\"{}>slow (≥ \
         {SLOW_MS} ms)</a> · <a href=\"waterfall?status=error\"{}>failed</a> · \
         <a href=\"waterfall\">all</a></p></form>",
        current(slow && query.service.is_none() && query.route.is_none()),
        current(failed && query.service.is_none() && query.route.is_none()),
    )
}

fn current(yes: bool) -> &'static str {
    if yes { " aria-current=\"page\"" } else { "" }
}

/// The list of traces, newest first.
fn list(f: &mut Formatter<'_>, input: &PageInput<'_>) -> fmt::Result {
    let query = &input.query;
    let traces = &input.list.traces;
    if traces.is_empty() {
        let filtered = query.service.is_some()
            || query.route.is_some()
            || query.min_ms.is_some()
            || query.errors_only;
        return f.write_str(if filtered {
            "<p class=\"empty\">No trace matches this filter. <a href=\"waterfall\">Show all</a></p>\n"
        } else {
            "<p class=\"empty\">No trace yet: the gateway has received no span, or the store \
             was emptied. Send a request through the gateway and reload.</p>\n"
        });
    }
    writeln!(
        f,
        "<p class=\"count\">{} shown, newest first.</p><table class=\"list\"><thead><tr>\
         <th>start (UTC)</th><th>trace</th><th>route</th><th>status</th>\
         <th class=\"num\">duration</th><th>services</th><th class=\"num\">spans</th>\
         </tr></thead><tbody>",
        traces.len()
    )?;
    let shown = input.trace.map(|t| t.trace_id);
    for trace in traces {
        list_row(f, trace, query, shown == Some(trace.trace_id))?;
    }
    f.write_str("</tbody></table>\n")
}

fn list_row(
    f: &mut Formatter<'_>,
    trace: &TraceSummary,
    query: &Echo<'_>,
    shown: bool,
) -> fmt::Result {
    write!(
        f,
        "<tr{}{}><td><time>{}</time></td><td><a href=\"waterfall?{}\">{} {}</a>",
        if trace.error { " class=\"error\"" } else { "" },
        if shown { " aria-current=\"true\"" } else { "" },
        Clock(trace.start_unix_nano),
        Esc(&query_string(query, Some(&trace.trace_id.to_string()))),
        Chip(&trace.root_service),
        Esc(&trace.root_name),
    )?;
    if !trace.root_found {
        f.write_str(" <span class=\"note\">root not received</span>")?;
    }
    if trace.error {
        f.write_str(" <span class=\"tag\">error</span>")?;
    }
    write!(
        f,
        "</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>",
        Esc(trace.route.as_deref().unwrap_or("–")),
        trace
            .status_code
            .map_or_else(|| "–".to_owned(), |c| c.to_string()),
        Ms(trace.duration_ms),
    )?;
    for service in &trace.services {
        write!(f, "{} ", Chip(service))?;
    }
    writeln!(f, "</td><td class=\"num\">{}</td></tr>", trace.spans)
}

/// The filter as a query string (no `?`), with `trace=` when given.
fn query_string(query: &Echo<'_>, trace: Option<&str>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(service) = query.service {
        pairs.push(("service", service.to_owned()));
    }
    if let Some(route) = query.route {
        pairs.push(("route", route.to_owned()));
    }
    if let Some(ms) = query.min_ms {
        pairs.push(("min_ms", ms.to_string()));
    }
    if query.errors_only {
        pairs.push(("status", "error".to_owned()));
    }
    pairs.push(("limit", query.limit.to_string()));
    if let Some(trace) = trace {
        pairs.push(("trace", trace.to_owned()));
    }
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", Url(value)))
        .collect();
    pairs.join("&")
}

/// The trace asked for, drawn; or why it cannot be.
fn waterfall(f: &mut Formatter<'_>, trace: &TraceView, input: &PageInput<'_>) -> fmt::Result {
    let id = trace.trace_id.to_string();
    if trace.spans.is_empty() {
        return writeln!(
            f,
            "<section class=\"notice\" aria-labelledby=\"trace\"><h2 id=\"trace\">Trace \
             <code>{id}</code> is not held</h2><p>No span of it is here: it was never received, \
             or its spans were dropped to make room for newer ones (the gateway keeps the most \
             recent {} spans). <a href=\"waterfall?{}\">Back to the list</a></p></section>",
            input.list.store.max_spans,
            Esc(&query_string(&input.query, None)),
        );
    }
    let axis = Axis::of(&trace.spans);
    let rows = layout::tree_order(&trace.spans);
    let errors = trace
        .spans
        .iter()
        .filter(|s| s.status == Status::Error)
        .count();
    write!(
        f,
        "<section class=\"waterfall\" aria-labelledby=\"trace\"><h2 id=\"trace\">Trace \
         <code>{id}</code></h2><p class=\"meta\">started <time>{}</time> UTC · {} · {} spans",
        Clock(axis.start),
        Ms(axis.total_ms()),
        trace.spans.len(),
    )?;
    if errors > 0 {
        write!(f, " · <span class=\"tag\">{errors} failed</span>")?;
    }
    f.write_str(" · ")?;
    let mut services: Vec<&str> = trace.spans.iter().map(|s| &*s.service).collect();
    services.sort_unstable();
    services.dedup();
    for service in services {
        write!(f, "{} ", Chip(service))?;
    }
    writeln!(
        f,
        "· <a href=\"traces/{id}\">JSON</a> · <a href=\"waterfall?{}\">close</a></p>",
        Esc(&query_string(&input.query, None))
    )?;
    ticks(f, &axis)?;
    f.write_str("<div class=\"rows\">\n")?;
    for row in &rows {
        span_row(f, row, &axis, input)?;
    }
    f.write_str("</div></section>\n")
}

fn ticks(f: &mut Formatter<'_>, axis: &Axis) -> fmt::Result {
    f.write_str("<div class=\"axis\" aria-hidden=\"true\"><span></span><span class=\"ticks\">")?;
    for (percent, ms) in axis.ticks() {
        write!(f, "<span style=\"left:{percent}%\">{}</span>", Ms(ms))?;
    }
    f.write_str("</span><span></span></div>\n")
}

/// One span: its row (label, bar, duration) as the `<summary>` of its details.
fn span_row(
    f: &mut Formatter<'_>,
    row: &Row<'_>,
    axis: &Axis,
    input: &PageInput<'_>,
) -> fmt::Result {
    let span = row.span;
    let error = span.status == Status::Error;
    let bar = axis.bar(span);
    write!(
        f,
        "<details class=\"span{}\" id=\"span-{}\"><summary><span class=\"label\" \
         style=\"--depth:{}\">{} <span class=\"name\">{}</span>",
        if error { " error" } else { "" },
        span.span_id,
        row.depth.min(24),
        Chip(&span.service),
        Esc(&span.name),
    )?;
    match row.lineage {
        Lineage::Orphan => f.write_str(" <span class=\"note\">parent not received</span>")?,
        Lineage::Loop => f.write_str(" <span class=\"note\">parents loop</span>")?,
        Lineage::Root | Lineage::Child => {}
    }
    if error {
        write!(
            f,
            " <span class=\"tag\">error</span> <span class=\"message\">{}</span>",
            Esc(span.status_message.as_deref().unwrap_or(""))
        )?;
    }
    write!(
        f,
        "</span><span class=\"track\" title=\"+{} · {}\"><span class=\"bar\" \
         style=\"left:{:.3}%;width:{:.3}%;--c:{}\"></span>",
        Ms(axis.offset_ms(span.start_unix_nano)),
        Ms(span.duration_ms()),
        bar.left,
        bar.width,
        layout::colour(&span.service),
    )?;
    for event in &span.events {
        write!(
            f,
            "<span class=\"event\" style=\"left:{:.3}%\" title=\"{}\"></span>",
            axis.percent(event.time_unix_nano),
            Esc(&event.name)
        )?;
    }
    write!(
        f,
        "</span><span class=\"ms\">{}</span></summary>",
        Ms(span.duration_ms())
    )?;
    span_details(f, row, axis, input)?;
    f.write_str("</details>\n")
}

/// What a span's details show: its ids and times, attributes, events and links.
fn span_details(
    f: &mut Formatter<'_>,
    row: &Row<'_>,
    axis: &Axis,
    input: &PageInput<'_>,
) -> fmt::Result {
    let span = row.span;
    write!(
        f,
        "<div class=\"detail\"><dl><dt>name</dt><dd>{}</dd><dt>service</dt><dd>{}</dd>\
         <dt>kind</dt><dd>{}</dd><dt>span</dt><dd><code>{}</code></dd><dt>parent</dt><dd>",
        Esc(&span.name),
        Esc(&span.service),
        Esc(span.kind),
        span.span_id,
    )?;
    match (span.parent_span_id, row.lineage) {
        (None, _) => f.write_str("none: a root")?,
        (Some(parent), Lineage::Orphan) => write!(f, "<code>{parent}</code> (not received)")?,
        (Some(parent), _) => write!(f, "<a href=\"#span-{parent}\"><code>{parent}</code></a>")?,
    }
    write!(
        f,
        "</dd><dt>start</dt><dd>+{} (<time>{}</time> UTC)</dd><dt>duration</dt><dd>{}</dd>\
         <dt>status</dt><dd>{}",
        Ms(axis.offset_ms(span.start_unix_nano)),
        Clock(span.start_unix_nano),
        Ms(span.duration_ms()),
        match span.status {
            Status::Unset => "unset",
            Status::Ok => "ok",
            Status::Error => "<span class=\"tag\">error</span>",
        },
    )?;
    if let Some(message) = &span.status_message {
        write!(f, ": {}", Esc(message))?;
    }
    f.write_str("</dd></dl>")?;
    attributes(f, &span.attributes)?;
    events(f, span)?;
    links(f, span, input)?;
    f.write_str("</div>")
}

fn attributes(f: &mut Formatter<'_>, attributes: &[(String, serde_json::Value)]) -> fmt::Result {
    if attributes.is_empty() {
        return f.write_str("<p class=\"none\">No attributes.</p>");
    }
    f.write_str("<table class=\"kv\"><caption>attributes</caption><tbody>")?;
    for (key, value) in attributes {
        write!(f, "<tr><th>{}</th><td>{}</td></tr>", Esc(key), Value(value))?;
    }
    f.write_str("</tbody></table>")
}

fn events(f: &mut Formatter<'_>, span: &Span) -> fmt::Result {
    if span.events.is_empty() {
        return Ok(());
    }
    f.write_str(
        "<table class=\"kv\"><caption>events</caption><thead><tr><th>at</th><th>event</th>\
         <th>attributes</th></tr></thead><tbody>",
    )?;
    for event in &span.events {
        write!(
            f,
            "<tr><td class=\"num\">{}{}</td><td>{}</td><td>",
            if event.time_unix_nano < span.start_unix_nano {
                "−"
            } else {
                "+"
            },
            Ms(layout::gap_ms(span.start_unix_nano, event.time_unix_nano)),
            Esc(&event.name),
        )?;
        inline_attributes(f, &event.attributes)?;
        f.write_str("</td></tr>")?;
    }
    f.write_str("</tbody></table>")
}

fn links(f: &mut Formatter<'_>, span: &Span, input: &PageInput<'_>) -> fmt::Result {
    if span.links.is_empty() {
        return Ok(());
    }
    f.write_str("<p class=\"links\">links:</p><ul class=\"links\">")?;
    for link in &span.links {
        if link.trace_id == span.trace_id {
            write!(
                f,
                "<li><a href=\"#span-{}\">span <code>{}</code> of this trace</a> ",
                link.span_id, link.span_id
            )?;
        } else {
            let trace = link.trace_id.to_string();
            write!(
                f,
                "<li><a href=\"waterfall?{}\">trace <code>{trace}</code>, span <code>{}</code></a> ",
                Esc(&query_string(&input.query, Some(&trace))),
                link.span_id,
            )?;
        }
        inline_attributes(f, &link.attributes)?;
        f.write_str("</li>")?;
    }
    f.write_str("</ul>")
}

fn inline_attributes(
    f: &mut Formatter<'_>,
    attributes: &[(String, serde_json::Value)],
) -> fmt::Result {
    for (key, value) in attributes {
        write!(
            f,
            "<span class=\"attr\"><b>{}</b>={}</span> ",
            Esc(key),
            Value(value)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::traces::store::{SpanEvent, SpanId, SpanLink, TraceId, summarize};

    const ECHO: Echo<'static> = Echo {
        service: None,
        route: None,
        min_ms: None,
        errors_only: false,
        limit: 50,
    };

    fn span(id: u8, parent: Option<u8>, service: &str, start_ms: u64, end_ms: u64) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: Arc::from(service),
            name: format!("span {id}"),
            kind: "server",
            // 12:34:56.789 UTC on 1 Jan 2025, plus the offset.
            start_unix_nano: (1_735_734_896_789 + start_ms) * 1_000_000,
            end_unix_nano: (1_735_734_896_789 + end_ms) * 1_000_000,
            status: Status::Unset,
            status_message: None,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    fn occupancy(spans: usize) -> Occupancy {
        Occupancy {
            spans,
            traces: usize::from(spans > 0),
            bytes: spans * 700,
            dropped: 0,
            max_spans: 50_000,
            max_bytes: 64 << 20,
        }
    }

    fn view(spans: Vec<Span>) -> TraceView {
        let mut spans: Vec<Arc<Span>> = spans.into_iter().map(Arc::new).collect();
        spans.sort_by_key(|s| s.start_unix_nano);
        TraceView {
            trace_id: TraceId([1; 16]),
            spans,
        }
    }

    fn page(trace: &TraceView, query: Echo<'_>) -> String {
        let list = TraceList {
            traces: summarize(&trace.spans).into_iter().collect(),
            store: occupancy(trace.spans.len()),
        };
        render(&PageInput {
            query,
            list: &list,
            trace: Some(trace),
        })
    }

    /// The small trace of the tests: gateway -> catalog (-> inventory), and a payments span
    /// whose parent never arrived.
    fn small_trace() -> TraceView {
        let mut failed = span(4, Some(9), "payments", 120, 150);
        failed.status = Status::Error;
        failed.status_message = Some("card declined".into());
        view(vec![
            span(1, None, "gateway", 0, 200),
            span(2, Some(1), "catalog", 50, 100),
            span(3, Some(2), "inventory", 60, 70),
            failed,
        ])
    }

    #[test]
    fn whatever_a_span_says_is_shown_as_text() {
        let mut hostile = span(1, None, "<b>evil</b>", 0, 10);
        hostile.name = "<script>alert(1)</script>".into();
        hostile.status = Status::Error;
        hostile.status_message = Some("</details><iframe>".into());
        hostile.attributes = vec![
            (
                "http.route".into(),
                "\"><img src=x onerror=alert(2)>".into(),
            ),
            (
                "<k>".into(),
                serde_json::json!({"a": "<svg onload=alert(3)>"}),
            ),
        ];
        hostile.events = vec![SpanEvent {
            name: "\" onmouseover=\"alert(4)".into(),
            time_unix_nano: hostile.start_unix_nano,
            attributes: vec![("'q'".into(), "<u>".into())],
        }];
        let trace = view(vec![hostile]);
        let query = Echo {
            service: Some("\"><script>"),
            route: Some("a&b"),
            ..ECHO
        };
        let html = page(&trace, query);
        assert_eq!(
            html.matches("<script").count(),
            1,
            "only the page's own script"
        );
        for tag in ["<img", "<svg", "<iframe", "<b>evil", "<k>", "<u>"] {
            assert!(!html.contains(tag), "{tag} got through");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
        assert!(html.contains("title=\"&quot; onmouseover=&quot;alert(4)\""));
        assert!(html.contains("<b>&#39;q&#39;</b>=&lt;u&gt;"));
        assert!(
            html.contains("value=\"&quot;&gt;&lt;script&gt;\""),
            "the form's echo"
        );
        assert!(
            html.contains("service=%22%3E%3Cscript%3E&amp;route=a%26b&amp;limit=50&amp;trace="),
            "the links' query"
        );
    }

    #[test]
    fn spans_are_drawn_in_tree_order_indented_with_the_orphan_as_a_root() {
        let html = page(&small_trace(), ECHO);
        let rows: Vec<(&str, &str)> = html
            .split("<details class=\"span")
            .skip(1)
            .map(|row| {
                let depth = row
                    .split("--depth:")
                    .nth(1)
                    .and_then(|r| r.split('"').next());
                let name = row
                    .split("<span class=\"name\">")
                    .nth(1)
                    .and_then(|r| r.split('<').next());
                (name.unwrap_or("?"), depth.unwrap_or("?"))
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("span 1", "0"),
                ("span 2", "1"),
                ("span 3", "2"),
                ("span 4", "0")
            ]
        );
        let orphan = html
            .split("id=\"span-0404040404040404\"")
            .nth(1)
            .unwrap_or("");
        let orphan = orphan.split("</summary>").next().unwrap_or("");
        assert!(orphan.contains("parent not received"));
        assert!(orphan.contains(
            "<span class=\"tag\">error</span> <span class=\"message\">card declined</span>"
        ));
        assert_eq!(html.matches("parent not received").count(), 1);
        assert!(html.contains("<details class=\"span error\" id=\"span-0404040404040404\">"));
        assert!(
            html.contains("<a href=\"#span-0101010101010101\"><code>0101010101010101</code></a>")
        );
    }

    #[test]
    fn bars_axis_and_times_have_the_numbers_of_the_trace() {
        let html = page(&small_trace(), ECHO);
        for bar in [
            "left:0.000%;width:100.000%;--c:#6b7280",
            "left:25.000%;width:25.000%;--c:#4e79a7",
            "left:30.000%;width:5.000%;--c:#76b7b2",
            "left:60.000%;width:15.000%;--c:#d4a72c",
        ] {
            assert!(html.contains(bar), "{bar}");
        }
        let ticks: Vec<&str> = html
            .split("<span style=\"left:")
            .skip(1)
            .filter_map(|t| t.split("</span>").next())
            .collect();
        assert_eq!(
            ticks,
            [
                "0%\">0 ms",
                "25%\">50.0 ms",
                "50%\">100 ms",
                "75%\">150 ms",
                "100%\">200 ms"
            ]
        );
        assert!(html.contains("started <time>12:34:56.789</time> UTC · 200 ms · 4 spans"));
        assert!(html.contains("<dd>+60.0 ms (<time>12:34:56.849</time> UTC)</dd>"));
        assert!(
            html.contains("<td><time>12:34:56.789</time></td>"),
            "the list's start"
        );
    }

    #[test]
    fn links_go_to_the_other_trace_or_to_the_span_s_row() {
        let mut consumer = span(2, Some(1), "history", 10, 20);
        consumer.links = vec![
            SpanLink {
                trace_id: TraceId([2; 16]),
                span_id: SpanId([5; 8]),
                attributes: Vec::new(),
            },
            SpanLink {
                trace_id: TraceId([1; 16]),
                span_id: SpanId([1; 8]),
                attributes: Vec::new(),
            },
        ];
        let query = Echo {
            errors_only: true,
            ..ECHO
        };
        let html = page(&view(vec![span(1, None, "orders", 0, 30), consumer]), query);
        assert!(html.contains(&format!(
            "<a href=\"waterfall?status=error&amp;limit=50&amp;trace={}\">trace",
            "02".repeat(16)
        )));
        assert!(html.contains("<a href=\"#span-0101010101010101\">span <code>0101010101010101</code> of this trace</a>"));
        assert!(html.contains("name=\"status\" value=\"error\" checked"));
    }

    #[test]
    fn an_empty_store_an_unknown_trace_and_no_store_say_so() {
        let empty = TraceList {
            traces: Vec::new(),
            store: occupancy(0),
        };
        let unknown = TraceView {
            trace_id: TraceId([0xab; 16]),
            spans: Vec::new(),
        };
        let html = render(&PageInput {
            query: ECHO,
            list: &empty,
            trace: Some(&unknown),
        });
        assert!(html.contains(&format!(
            "Trace <code>{}</code> is not held",
            "ab".repeat(16)
        )));
        assert!(html.contains("No trace yet"));
        assert!(html.contains("0 spans") && html.contains("0 dropped"));
        let filtered = render(&PageInput {
            query: Echo {
                min_ms: Some(SLOW_MS),
                ..ECHO
            },
            list: &empty,
            trace: None,
        });
        assert!(filtered.contains("No trace matches this filter"));
        assert!(filtered.contains("<a href=\"waterfall?min_ms=250\" aria-current=\"page\">"));
        assert!(unavailable().contains("collects no traces"));
        for html in [html, filtered, unavailable()] {
            assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
            assert!(html.contains("<a href=\"map\">"), "the way back to the map");
        }
    }
}
