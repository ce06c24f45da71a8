//! A run's report: results.json, the plots beside it, and the summary table on the terminal.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::histograms::{self, Sample, Summary};

/// Latency targets: every interactive endpoint, and checkout acceptance.
pub(crate) const READ_TARGET_MS: f64 = 50.0;
pub(crate) const CHECKOUT_TARGET_MS: f64 = 250.0;

/// results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) target: String,
    pub(crate) scenario: String,
    pub(crate) users: usize,
    pub(crate) duration_s: f64,
    pub(crate) intended_rate: f64,
    /// Answers per second over the measured phase.
    pub(crate) achieved_rate: f64,
    pub(crate) sent: u64,
    pub(crate) max_in_flight: usize,
    /// Requests that found every in-flight slot taken and waited for one.
    pub(crate) in_flight_limit_hits: u64,
    /// The most a request was sent after its due time.
    pub(crate) max_send_lag_ms: f64,
    pub(crate) machine: Machine,
    pub(crate) endpoints: BTreeMap<String, Summary>,
    /// Per endpoint, per second of intended send time.
    pub(crate) timeline: BTreeMap<String, Vec<Second>>,
    /// Per endpoint, latency (ms) at the percentiles of [`DISTRIBUTION`].
    pub(crate) distribution: BTreeMap<String, Vec<f64>>,
    /// Answers completed per second (all endpoints).
    pub(crate) throughput: Vec<Second>,
    pub(crate) orders: OrdersSummary,
    /// Whether every endpoint met its latency target with no error.
    pub(crate) meets_targets: bool,
}

/// One second of one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Second {
    pub(crate) second: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

/// The orders placed during the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct OrdersSummary {
    pub(crate) accepted: usize,
    pub(crate) followed: u64,
    pub(crate) confirmed: u64,
    pub(crate) cancelled: u64,
    pub(crate) unfinished: u64,
}

/// Where the figures were taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    /// The 1, 5 and 15 minute load averages when the run ended.
    pub(crate) load_average: String,
}

impl Machine {
    pub(crate) fn now() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

/// The latency target of an endpoint, in milliseconds.
pub(crate) fn target_ms(endpoint: &str) -> Option<f64> {
    match endpoint {
        "checkout" => Some(CHECKOUT_TARGET_MS),
        // Confirmation is asynchronous: reported, not held to a target.
        "order_confirmed" => None,
        _ => Some(READ_TARGET_MS),
    }
}

/// Whether every endpoint's p99 is within its target and nothing failed.
pub(crate) fn meets_targets(endpoints: &BTreeMap<String, Summary>) -> bool {
    endpoints.iter().all(|(name, s)| {
        target_ms(name).is_none_or(|target| s.p99_ms <= target && s.errors.is_empty())
    })
}

/// The percentiles of the latency distribution plot.
pub(crate) const DISTRIBUTION: [f64; 10] =
    [0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0];

/// Latency at each of [`DISTRIBUTION`], per endpoint.
pub(crate) fn distribution(samples: &[Sample]) -> BTreeMap<String, Vec<f64>> {
    histograms::by_endpoint(samples, std::time::Duration::ZERO, std::time::Duration::MAX)
        .into_iter()
        .map(|(endpoint, stats)| {
            let at = |p: f64| stats.latency.value_at_percentile(p) as f64 / 1000.0;
            (
                endpoint.to_owned(),
                DISTRIBUTION.iter().map(|&p| at(p)).collect(),
            )
        })
        .collect()
}

/// The per-second series of `samples`.
pub(crate) fn timeline(samples: &[Sample]) -> BTreeMap<String, Vec<Second>> {
    histograms::per_second(samples)
        .into_iter()
        .map(|(endpoint, seconds)| {
            let series = seconds
                .iter()
                .zip(0..)
                .map(|(stats, second)| {
                    let s = stats.summary();
                    Second {
                        second,
                        ok: s.ok,
                        errors: stats.error_count(),
                        p50_ms: s.p50_ms,
                        p99_ms: s.p99_ms,
                    }
                })
                .collect();
            (endpoint.to_owned(), series)
        })
        .collect()
}

/// Answers completed per second.
pub(crate) fn throughput(samples: &[Sample]) -> Vec<Second> {
    histograms::completions_per_second(samples)
        .into_iter()
        .zip(0..)
        .map(|((ok, errors), second)| Second {
            second,
            ok,
            errors,
            p50_ms: 0.0,
            p99_ms: 0.0,
        })
        .collect()
}

impl Report {
    /// Writes results.json and the plots into `dir` (created if missing).
    pub(crate) fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let file = dir.join("results.json");
        std::fs::write(&file, json).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        super::plots::latency_over_time(&self.timeline, None, &dir.join("latency-over-time.svg"))?;
        super::plots::distribution(&self.distribution, &dir.join("latency-distribution.svg"))?;
        super::plots::throughput(
            &self.throughput,
            self.intended_rate,
            &dir.join("throughput.svg"),
        )?;
        Ok(())
    }

    /// The summary table.
    pub(crate) fn print(&self) {
        println!();
        println!(
            "{} at {:.0}/s for {:.0} s, {} users → {}: {} sent, {:.1}/s answered",
            self.scenario,
            self.intended_rate,
            self.duration_s,
            self.users,
            self.target,
            self.sent,
            self.achieved_rate
        );
        print_table(&self.endpoints);
        if self.in_flight_limit_hits > 0 {
            println!(
                "  the in-flight limit ({}) was hit {} times: those requests waited for a slot (their latency counts the wait)",
                self.max_in_flight, self.in_flight_limit_hits
            );
        }
        let o = &self.orders;
        println!(
            "  orders: {} accepted; {} followed: {} confirmed, {} cancelled, {} unfinished",
            o.accepted, o.followed, o.confirmed, o.cancelled, o.unfinished
        );
        println!(
            "  targets (p99 < {READ_TARGET_MS} ms, checkout < {CHECKOUT_TARGET_MS} ms, no errors): {}",
            if self.meets_targets { "met" } else { "NOT met" }
        );
        println!(
            "  machine: {} cores, load average {}",
            self.machine.cores, self.machine.load_average
        );
    }
}

/// One line per endpoint: requests, errors by kind, percentiles.
pub(crate) fn print_table(endpoints: &BTreeMap<String, Summary>) {
    println!(
        "  {:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}  errors",
        "endpoint", "requests", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "target"
    );
    for (name, s) in endpoints {
        let errors = if s.errors.is_empty() {
            "-".to_owned()
        } else {
            s.errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let target = target_ms(name).map_or("-".to_owned(), |t| format!("< {t}"));
        println!(
            "  {name:<16} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {target:>9}  {errors}",
            s.requests, s.p50_ms, s.p90_ms, s.p99_ms, s.p99_9_ms, s.max_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::histograms::Outcome;

    fn samples() -> Vec<Sample> {
        (0..3000u64)
            .map(|i| Sample {
                endpoint: ["browse", "product", "checkout"][(i % 3) as usize],
                at: Duration::from_millis(i),
                latency: Duration::from_micros(500 + (i * 7919) % 40_000),
                outcome: if i % 97 == 0 {
                    Outcome::Status(503)
                } else {
                    Outcome::Ok
                },
            })
            .collect()
    }

    fn report(samples: &[Sample]) -> Report {
        let endpoints: BTreeMap<String, Summary> =
            histograms::by_endpoint(samples, Duration::ZERO, Duration::MAX)
                .into_iter()
                .map(|(e, s)| (e.to_owned(), s.summary()))
                .collect();
        Report {
            target: "http://127.0.0.1:1".into(),
            scenario: "mixed".into(),
            users: 2,
            duration_s: 3.0,
            intended_rate: 1000.0,
            achieved_rate: 1000.0,
            sent: 3000,
            max_in_flight: 10,
            in_flight_limit_hits: 0,
            max_send_lag_ms: 0.1,
            machine: Machine::now(),
            meets_targets: meets_targets(&endpoints),
            endpoints,
            timeline: timeline(samples),
            distribution: distribution(samples),
            throughput: throughput(samples),
            orders: OrdersSummary::default(),
        }
    }

    #[test]
    fn the_report_writes_json_that_reads_back_and_three_svg_plots() {
        let samples = samples();
        let report = report(&samples);
        let dir = tempfile::tempdir().unwrap();
        report.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.endpoints, report.endpoints);
        assert_eq!(back.endpoints["browse"].requests, 1000);
        assert_eq!(back.timeline["product"].len(), 3);
        assert_eq!(
            back.throughput.iter().map(|s| s.ok + s.errors).sum::<u64>(),
            3000
        );
        // 503s on every endpoint: the targets are not met.
        assert!(!back.meets_targets);
        for plot in [
            "latency-over-time.svg",
            "latency-distribution.svg",
            "throughput.svg",
        ] {
            let svg = std::fs::read_to_string(dir.path().join(plot)).unwrap();
            assert!(svg.trim_start().starts_with("<svg"), "{plot}");
            assert!(svg.trim_end().ends_with("</svg>"), "{plot}");
            assert!(svg.contains("<polyline"), "{plot} draws no line");
            // Well formed: every element that opens closes.
            assert_eq!(
                svg.matches("<text").count(),
                svg.matches("</text>").count(),
                "{plot}"
            );
        }
    }

    #[test]
    fn targets_hold_only_with_no_errors_and_p99_within_bounds() {
        let fast: Vec<Sample> = (0..100)
            .map(|i| Sample {
                endpoint: if i % 2 == 0 { "browse" } else { "checkout" },
                at: Duration::from_millis(i),
                latency: Duration::from_millis(if i % 2 == 0 { 10 } else { 200 }),
                outcome: Outcome::Ok,
            })
            .collect();
        assert!(report(&fast).meets_targets);
        let mut slow = fast.clone();
        slow[0].latency = Duration::from_millis(60);
        slow[2].latency = Duration::from_millis(60);
        assert!(!report(&slow).meets_targets);
    }
}
