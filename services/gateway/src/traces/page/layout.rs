//! The waterfall's geometry, apart from its HTML: the spans in tree order with their depth, each
//! span's bar on the trace's time axis, and each service's colour.

use std::collections::HashMap;
use std::sync::Arc;

use crate::traces::store::{Span, SpanId, nanos_to_ms};

/// The narrowest bar drawn, in percent of the axis: a span of a few microseconds in a trace of
/// seconds stays visible.
pub(super) const MIN_WIDTH: f64 = 0.3;

/// How a span came to be where it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lineage {
    /// It has no parent.
    Root,
    /// Drawn under its parent.
    Child,
    /// Its parent is not held (not received yet, or dropped): drawn as a root.
    Orphan,
    /// Its parents make a loop (malformed input): drawn as a root where the loop was cut.
    Loop,
}

/// One row of the waterfall.
#[derive(Debug, Clone, Copy)]
pub(super) struct Row<'a> {
    /// The span.
    pub(super) span: &'a Span,
    /// How deep it sits under its root (0 for a root).
    pub(super) depth: usize,
    /// Why it sits there.
    pub(super) lineage: Lineage,
}

/// The spans depth-first from the roots, roots and siblings by start time. Every span appears
/// exactly once, whatever the ids say: a span whose parent is not held is a root, and a loop of
/// parents is cut at its earliest span.
pub(super) fn tree_order(spans: &[Arc<Span>]) -> Vec<Row<'_>> {
    let mut spans: Vec<&Span> = spans.iter().map(AsRef::as_ref).collect();
    spans.sort_by_key(|s| (s.start_unix_nano, s.end_unix_nano));
    let mut index: HashMap<SpanId, usize> = HashMap::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        index.entry(span.span_id).or_insert(i);
    }
    let mut children = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match span.parent_span_id.map(|p| index.get(&p)) {
            None => roots.push((i, Lineage::Root)),
            Some(None) => roots.push((i, Lineage::Orphan)),
            Some(Some(&parent)) => children[parent].push(i),
        }
    }
    // Whatever the roots do not reach is in (or under) a loop of parents.
    let starts = roots
        .into_iter()
        .chain((0..spans.len()).map(|i| (i, Lineage::Loop)));
    let mut seen = vec![false; spans.len()];
    let mut rows = Vec::with_capacity(spans.len());
    let mut stack = Vec::new();
    for (root, lineage) in starts {
        stack.push((root, 0, lineage));
        while let Some((i, depth, lineage)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            rows.push(Row {
                span: spans[i],
                depth,
                lineage,
            });
            // Reversed, so that the earliest child is taken first.
            let next = children[i].iter().rev().filter(|c| !seen[**c]);
            stack.extend(next.map(|c| (*c, depth + 1, Lineage::Child)));
        }
    }
    rows
}

/// A trace's time axis: from its earliest start to its latest end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Axis {
    /// The earliest start, in nanoseconds since the Unix epoch.
    pub(super) start: u64,
    /// Its length in nanoseconds, at least 1.
    total: u64,
}

/// Where a bar sits, in percent of the axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Bar {
    /// From the axis' start.
    pub(super) left: f64,
    /// Its width, at least [`MIN_WIDTH`].
    pub(super) width: f64,
}

impl Axis {
    /// The axis of `spans`.
    pub(super) fn of(spans: &[Arc<Span>]) -> Self {
        let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let end = spans.iter().map(|s| end_of(s)).max().unwrap_or(start);
        Self {
            start,
            total: end.saturating_sub(start).max(1),
        }
    }

    /// Its length in milliseconds.
    pub(super) fn total_ms(&self) -> f64 {
        nanos_to_ms(self.total)
    }

    /// Milliseconds from the axis' start to `time`.
    pub(super) fn offset_ms(&self, time: u64) -> f64 {
        nanos_to_ms(time.saturating_sub(self.start))
    }

    /// Where `time` falls, in percent of the axis (clamped to it).
    pub(super) fn percent(&self, time: u64) -> f64 {
        (self.offset_ms(time) / self.total_ms() * 100.0).min(100.0)
    }

    /// The bar of `span`: never narrower than [`MIN_WIDTH`], never past the axis' end.
    pub(super) fn bar(&self, span: &Span) -> Bar {
        let left = self.percent(span.start_unix_nano);
        let width = (self.percent(end_of(span)) - left).max(MIN_WIDTH);
        Bar {
            left: left.min(100.0 - width),
            width,
        }
    }

    /// Five ticks, at 0, ¼, ½, ¾ and all of the axis: (percent, milliseconds).
    pub(super) fn ticks(&self) -> [(f64, f64); 5] {
        [0.0, 25.0, 50.0, 75.0, 100.0].map(|p| (p, self.total_ms() * p / 100.0))
    }
}

/// Milliseconds between two instants, either way round.
pub(super) fn gap_ms(a: u64, b: u64) -> f64 {
    nanos_to_ms(a.abs_diff(b))
}

/// A span's end, never before its start.
fn end_of(span: &Span) -> u64 {
    span.end_unix_nano.max(span.start_unix_nano)
}

/// The services of the shop, each with its colour, then spare colours for other names.
const PALETTE: [(&str, &str); 12] = [
    ("gateway", "#6b7280"),
    ("identity", "#b07aa1"),
    ("catalog", "#4e79a7"),
    ("inventory", "#76b7b2"),
    ("cart", "#f28e2b"),
    ("payments", "#d4a72c"),
    ("orders", "#59a14f"),
    ("history", "#9c755f"),
    ("storefront", "#ff9da7"),
    ("", "#17becf"),
    ("", "#a0a31a"),
    ("", "#7b68c8"),
];

/// The shop's services, for the form's suggestions.
pub(super) fn shop_services() -> impl Iterator<Item = &'static str> {
    PALETTE
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !name.is_empty())
}

/// The colour of `service`: the shop's services have their own, and any other name hashes into
/// the palette (FNV-1a, so a name keeps its colour across pages and builds). No colour is red:
/// red marks errors.
pub(super) fn colour(service: &str) -> &'static str {
    if let Some((_, colour)) = PALETTE.iter().find(|(name, _)| *name == service) {
        return colour;
    }
    let hash = service
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    // The remainder is below the palette's length, so it fits any usize.
    let i = usize::try_from(hash % PALETTE.len() as u64).unwrap_or(0);
    PALETTE[i].1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::store::{Status, TraceId};

    fn span(id: u8, parent: Option<u8>, start_us: u64, end_us: u64) -> Arc<Span> {
        Arc::new(Span {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: Arc::from("catalog"),
            name: format!("s{id}"),
            kind: "internal",
            start_unix_nano: start_us * 1_000,
            end_unix_nano: end_us * 1_000,
            status: Status::Unset,
            status_message: None,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
        })
    }

    fn order(spans: &[Arc<Span>]) -> Vec<(String, usize, Lineage)> {
        tree_order(spans)
            .iter()
            .map(|r| (r.span.name.clone(), r.depth, r.lineage))
            .collect()
    }

    #[test]
    fn rows_are_depth_first_by_start_with_orphans_as_roots() {
        use Lineage::{Child, Orphan, Root};
        // Given out of order: the tree is 1 -> (2 -> 4, 3), and 5 whose parent (9) is not held.
        let spans = [
            span(3, Some(1), 50, 60),
            span(5, Some(9), 20, 30),
            span(1, None, 0, 100),
            span(4, Some(2), 15, 18),
            span(2, Some(1), 10, 40),
        ];
        let expected = [
            ("s1", 0, Root),
            ("s2", 1, Child),
            ("s4", 2, Child),
            ("s3", 1, Child),
            ("s5", 0, Orphan),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(n, d, l)| ((*n).to_owned(), *d, *l))
            .collect();
        assert_eq!(order(&spans), expected);
    }

    #[test]
    fn a_loop_of_parents_is_cut_and_every_span_is_drawn_once() {
        // 1 and 2 are each other's parent, 3 is its own.
        let spans = [
            span(1, Some(2), 0, 10),
            span(2, Some(1), 5, 10),
            span(3, Some(3), 7, 8),
        ];
        let rows = order(&spans);
        assert_eq!(
            rows,
            [
                ("s1".to_owned(), 0, Lineage::Loop),
                ("s2".to_owned(), 1, Lineage::Child),
                ("s3".to_owned(), 0, Lineage::Loop),
            ]
        );
        assert!(tree_order(&[]).is_empty());
    }

    #[test]
    fn bars_sit_on_the_shared_axis() {
        // A 200 ms trace that starts at 1 s.
        let base = 1_000_000;
        let spans = [
            span(1, None, base, base + 200_000),
            span(2, Some(1), base + 50_000, base + 100_000),
            span(3, Some(2), base + 60_000, base + 60_001),
            span(4, Some(1), base + 200_000, base + 200_000),
        ];
        let axis = Axis::of(&spans);
        assert_eq!(axis.start, base * 1_000);
        assert!((axis.total_ms() - 200.0).abs() < 1e-9);
        let bars: Vec<Bar> = spans.iter().map(|s| axis.bar(s)).collect();
        let expected = [
            (0.0, 100.0),
            (25.0, 25.0),
            (30.0, MIN_WIDTH),
            (100.0 - MIN_WIDTH, MIN_WIDTH),
        ];
        for (bar, (left, width)) in bars.iter().zip(expected) {
            assert!(
                (bar.left - left).abs() < 1e-9 && (bar.width - width).abs() < 1e-9,
                "{bar:?}"
            );
        }
        let ticks = axis.ticks().map(|(p, ms)| (p, ms.round()));
        assert_eq!(
            ticks,
            [
                (0.0, 0.0),
                (25.0, 50.0),
                (50.0, 100.0),
                (75.0, 150.0),
                (100.0, 200.0)
            ]
        );
        assert!((axis.offset_ms(base * 1_000 + 60_000_000) - 60.0).abs() < 1e-9);
    }

    #[test]
    fn a_trace_of_one_instant_still_has_an_axis() {
        let spans = [span(1, None, 5, 5)];
        let axis = Axis::of(&spans);
        let bar = axis.bar(&spans[0]);
        assert!(bar.left.is_finite() && bar.left >= 0.0 && bar.width >= MIN_WIDTH);
    }

    #[test]
    fn each_service_of_the_shop_has_its_own_colour_and_others_keep_theirs() {
        let shop = [
            "gateway",
            "identity",
            "catalog",
            "inventory",
            "cart",
            "payments",
            "orders",
            "history",
            "storefront",
        ];
        let colours: std::collections::HashSet<_> = shop.iter().map(|s| colour(s)).collect();
        assert_eq!(colours.len(), shop.len());
        assert_eq!(colour("recommendations"), colour("recommendations"));
        assert!(PALETTE.iter().any(|(_, c)| *c == colour("<script>")));
    }
}
