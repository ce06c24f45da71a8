//! What a run measured: every response as a sample (its endpoint, intended send time, latency
//! and outcome), and per-endpoint HDR histograms built from any window of them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A 2xx or 3xx answer.
    Ok,
    /// Any other status.
    Status(u16),
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made (or was reset before an answer).
    Connect,
    /// Anything else (a body that could not be read, a protocol error).
    Other,
}

impl Outcome {
    /// The error kind it counts under, or none for a success.
    pub(crate) fn error_kind(self) -> Option<String> {
        match self {
            Self::Ok => None,
            Self::Status(status) => Some(format!("{}xx", status / 100)),
            Self::Timeout => Some("timeout".to_owned()),
            Self::Connect => Some("connect".to_owned()),
            Self::Other => Some("other".to_owned()),
        }
    }
}

/// One response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) endpoint: &'static str,
    /// When it was meant to be sent, since the start of the measured phase.
    pub(crate) at: Duration,
    /// From the intended send time to the end of the answer.
    pub(crate) latency: Duration,
    pub(crate) outcome: Outcome,
}

/// Collects samples from every request task.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    samples: Mutex<Vec<Sample>>,
}

impl Recorder {
    pub(crate) fn record(&self, sample: Sample) {
        if let Ok(mut samples) = self.samples.lock() {
            samples.push(sample);
        }
    }

    /// Every sample so far, in the order they were recorded.
    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Latencies in microseconds, 1 µs to 10 minutes, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|e| unreachable!("constant bounds are valid: {e}"))
}

/// The numbers of one endpoint over one window.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    /// Latencies of the successful answers.
    pub(crate) latency: Histogram<u64>,
    pub(crate) requests: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency: histogram(),
            requests: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub(crate) fn add(&mut self, sample: &Sample) {
        self.requests += 1;
        match sample.outcome.error_kind() {
            None => {
                let micros = u64::try_from(sample.latency.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.max(1));
            }
            Some(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    /// Adds another window's numbers to these (histograms of equal bounds never fail to add).
    pub(crate) fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The summary written to results.json, latencies in milliseconds.
    pub(crate) fn summary(&self) -> Summary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let empty = self.latency.is_empty();
        let at = |q: f64| {
            if empty {
                0.0
            } else {
                ms(self.latency.value_at_quantile(q))
            }
        };
        Summary {
            requests: self.requests,
            ok: self.latency.len(),
            errors: self.errors.clone(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p99_9_ms: at(0.999),
            max_ms: if empty { 0.0 } else { ms(self.latency.max()) },
            mean_ms: if empty {
                0.0
            } else {
                self.latency.mean() / 1000.0
            },
        }
    }
}

/// One endpoint's figures, as reported.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct Summary {
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p99_9_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
}

/// Stats per endpoint of the samples sent (intended) within `from..until`.
pub(crate) fn by_endpoint(
    samples: &[Sample],
    from: Duration,
    until: Duration,
) -> BTreeMap<&'static str, Stats> {
    let mut out: BTreeMap<&'static str, Stats> = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.at >= from && s.at < until) {
        out.entry(sample.endpoint).or_default().add(sample);
    }
    out
}

/// Stats per endpoint and per second of intended send time.
pub(crate) fn per_second(samples: &[Sample]) -> BTreeMap<&'static str, Vec<Stats>> {
    let seconds = samples
        .iter()
        .map(|s| s.at.as_secs())
        .max()
        .map_or(0, |s| s + 1);
    let mut out: BTreeMap<&'static str, Vec<Stats>> = BTreeMap::new();
    for sample in samples {
        let series = out
            .entry(sample.endpoint)
            .or_insert_with(|| vec![Stats::default(); usize::try_from(seconds).unwrap_or(0)]);
        if let Some(stats) = usize::try_from(sample.at.as_secs())
            .ok()
            .and_then(|s| series.get_mut(s))
        {
            stats.add(sample);
        }
    }
    out
}

/// Answers (of every endpoint) completed in each second since the start: (ok, errors).
pub(crate) fn completions_per_second(samples: &[Sample]) -> Vec<(u64, u64)> {
    let end = |s: &Sample| (s.at + s.latency).as_secs();
    let seconds = samples.iter().map(end).max().map_or(0, |s| s + 1);
    let mut out = vec![(0, 0); usize::try_from(seconds).unwrap_or(0)];
    for sample in samples {
        if let Some(slot) = usize::try_from(end(sample))
            .ok()
            .and_then(|s| out.get_mut(s))
        {
            match sample.outcome {
                Outcome::Ok => slot.0 += 1,
                _ => slot.1 += 1,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(endpoint: &'static str, at_ms: u64, latency_ms: u64, outcome: Outcome) -> Sample {
        Sample {
            endpoint,
            at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(latency_ms),
            outcome,
        }
    }

    #[test]
    fn merging_two_windows_equals_one_window_of_both() {
        let samples: Vec<Sample> = (0..2000)
            .map(|i| {
                let outcome = match i % 50 {
                    0 => Outcome::Status(503),
                    1 => Outcome::Timeout,
                    _ => Outcome::Ok,
                };
                sample("product", i, 1 + (i * 7919) % 300, outcome)
            })
            .collect();
        let whole = by_endpoint(&samples, Duration::ZERO, Duration::from_secs(10));
        let mut merged = by_endpoint(&samples, Duration::ZERO, Duration::from_millis(700));
        let later = by_endpoint(
            &samples,
            Duration::from_millis(700),
            Duration::from_secs(10),
        );
        merged.get_mut("product").unwrap().merge(&later["product"]);
        let (whole, merged) = (whole["product"].summary(), merged["product"].summary());
        assert_eq!(whole, merged);
        assert_eq!(whole.requests, 2000);
        assert_eq!(whole.errors["5xx"], 40);
        assert_eq!(whole.errors["timeout"], 40);
        assert_eq!(whole.ok, 1920);
        assert!(whole.p50_ms > 100.0 && whole.p50_ms < 200.0, "{whole:?}");
        assert!(whole.max_ms >= 299.0 && whole.max_ms <= 301.0, "{whole:?}");
    }

    #[test]
    fn percentiles_come_from_successes_and_errors_are_counted_by_kind() {
        let samples = [
            sample("browse", 0, 10, Outcome::Ok),
            sample("browse", 1, 20, Outcome::Ok),
            sample("browse", 2, 5000, Outcome::Status(404)),
            sample("browse", 3, 1, Outcome::Connect),
        ];
        let stats = &by_endpoint(&samples, Duration::ZERO, Duration::from_secs(1))["browse"];
        let summary = stats.summary();
        assert_eq!(summary.requests, 4);
        assert_eq!(summary.ok, 2);
        assert_eq!(summary.errors.get("4xx"), Some(&1));
        assert_eq!(summary.errors.get("connect"), Some(&1));
        assert!(summary.max_ms < 21.0, "{summary:?}");
    }

    #[test]
    fn seconds_are_bucketed_by_intended_time_and_completions_by_end() {
        let samples = [
            sample("search", 100, 50, Outcome::Ok),
            sample("search", 900, 200, Outcome::Ok),
            sample("search", 1500, 10, Outcome::Timeout),
        ];
        let series = &per_second(&samples)["search"];
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].requests, 2);
        assert_eq!(series[1].error_count(), 1);
        assert_eq!(completions_per_second(&samples), vec![(1, 0), (1, 1)]);
    }
}
