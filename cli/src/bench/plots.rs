//! The report's plots, as SVG (plotters' SVG backend: no fonts or bitmaps to link).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::report::{DISTRIBUTION, Second};

const SIZE: (u32, u32) = (960, 540);

/// A named, coloured line of points.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn color(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[index % PALETTE.len()]
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("cannot draw {what} into {}: {e}", path.display())
}

/// p99 per second of each endpoint (log scale), with a fault's window (seconds) shaded.
pub(crate) fn latency_over_time(
    timeline: &BTreeMap<String, Vec<Second>>,
    fault: Option<(f64, f64)>,
    path: &Path,
) -> Result<(), String> {
    let seconds = timeline.values().map(Vec::len).max().unwrap_or(1).max(1) as f64;
    let top = timeline
        .values()
        .flatten()
        .map(|s| s.p99_ms)
        .fold(1.0_f64, f64::max)
        * 1.5;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| failed("latency over time", path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("p99 latency per second (ms, log scale)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..seconds, (0.1..top).log_scale())
        .map_err(|e| failed("latency over time", path, e))?;
    chart
        .configure_mesh()
        .x_desc("second of the run (intended send time)")
        .y_desc("p99 ms")
        .draw()
        .map_err(|e| failed("latency over time", path, e))?;
    if let Some((from, until)) = fault {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(from, 0.1), (until, top)],
                RGBColor(214, 39, 40).mix(0.12).filled(),
            )))
            .map_err(|e| failed("latency over time", path, e))?
            .label("fault")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 20, y + 5)],
                    RGBColor(214, 39, 40).mix(0.3).filled(),
                )
            });
    }
    for (index, (endpoint, series)) in timeline.iter().enumerate() {
        let points = series
            .iter()
            .filter(|s| s.ok > 0)
            .map(|s| (s.second as f64, s.p99_ms.max(0.1)));
        chart
            .draw_series(LineSeries::new(points, color(index).stroke_width(2)))
            .map_err(|e| failed("latency over time", path, e))?
            .label(endpoint.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(index)));
    }
    legend(&mut chart).map_err(|e| failed("latency over time", path, e))?;
    root.present()
        .map_err(|e| failed("latency over time", path, e))
}

/// Latency by percentile, per endpoint (x: the percentile on a "nines" scale).
pub(crate) fn distribution(
    distribution: &BTreeMap<String, Vec<f64>>,
    path: &Path,
) -> Result<(), String> {
    // 0 → 0, 90 → 1, 99 → 2, 99.9 → 3 …; 100 is drawn at 4.5.
    let nines = |p: f64| {
        if p >= 100.0 {
            4.5
        } else {
            -(1.0 - p / 100.0).log10()
        }
    };
    let top = distribution
        .values()
        .flatten()
        .copied()
        .fold(1.0_f64, f64::max)
        * 1.5;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| failed("the latency distribution", path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("latency by percentile (ms, log scale)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..4.6, (0.1..top).log_scale())
        .map_err(|e| failed("the latency distribution", path, e))?;
    chart
        .configure_mesh()
        .x_desc("percentile (1 = p90, 2 = p99, 3 = p99.9, 4 = p99.99, 4.5 = max)")
        .y_desc("ms")
        .draw()
        .map_err(|e| failed("the latency distribution", path, e))?;
    for (index, (endpoint, values)) in distribution.iter().enumerate() {
        let points = DISTRIBUTION
            .iter()
            .zip(values)
            .map(|(&p, &ms)| (nines(p), ms.max(0.1)));
        chart
            .draw_series(LineSeries::new(points, color(index).stroke_width(2)))
            .map_err(|e| failed("the latency distribution", path, e))?
            .label(endpoint.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(index)));
    }
    legend(&mut chart).map_err(|e| failed("the latency distribution", path, e))?;
    root.present()
        .map_err(|e| failed("the latency distribution", path, e))
}

/// Answers per second (ok and errors) against the intended rate.
pub(crate) fn throughput(series: &[Second], intended: f64, path: &Path) -> Result<(), String> {
    let seconds = series.len().max(1) as f64;
    let top = series
        .iter()
        .map(|s| (s.ok + s.errors) as f64)
        .fold(intended, f64::max)
        * 1.2
        + 1.0;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| failed("the throughput", path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("answers per second", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..seconds, 0.0..top)
        .map_err(|e| failed("the throughput", path, e))?;
    chart
        .configure_mesh()
        .x_desc("second of the run (answer time)")
        .y_desc("answers/s")
        .draw()
        .map_err(|e| failed("the throughput", path, e))?;
    let lines: [Line<'_>; 3] = [
        (
            "intended",
            color(7),
            vec![(0.0, intended), (seconds, intended)],
        ),
        (
            "ok",
            color(2),
            series
                .iter()
                .map(|s| (s.second as f64, s.ok as f64))
                .collect(),
        ),
        (
            "errors",
            color(3),
            series
                .iter()
                .map(|s| (s.second as f64, s.errors as f64))
                .collect(),
        ),
    ];
    for (name, c, points) in lines {
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(|e| failed("the throughput", path, e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
    }
    legend(&mut chart).map_err(|e| failed("the throughput", path, e))?;
    root.present()
        .map_err(|e| failed("the throughput", path, e))
}

/// The worst interactive p99 at each rate, one line per series, with the target.
pub(crate) fn p99_by_rate(
    series: &BTreeMap<String, Vec<(f64, f64)>>,
    path: &Path,
) -> Result<(), String> {
    let what = "p99 by rate";
    let right = series
        .values()
        .flatten()
        .map(|p| p.0)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let top = series
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(super::report::READ_TARGET_MS, f64::max)
        * 1.5;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(what, path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "worst p99 of reads and cart (ms, log scale) by arrival rate",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..right, (0.1..top).log_scale())
        .map_err(|e| failed(what, path, e))?;
    chart
        .configure_mesh()
        .x_desc("requests per second")
        .y_desc("p99 ms")
        .draw()
        .map_err(|e| failed(what, path, e))?;
    let target = super::report::READ_TARGET_MS;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, target), (right, target)],
            color(7),
        ))
        .map_err(|e| failed(what, path, e))?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(7)));
    for (index, (name, points)) in series.iter().enumerate() {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(r, p)| (r, p.max(0.1))),
                color(index).stroke_width(2),
            ))
            .map_err(|e| failed(what, path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(index)));
    }
    legend(&mut chart).map_err(|e| failed(what, path, e))?;
    root.present().map_err(|e| failed(what, path, e))
}

fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
}
