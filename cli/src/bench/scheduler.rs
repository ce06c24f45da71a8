//! The open-loop scheduler: request `i` is due at `start + i / rate` and is sent then, whether
//! or not earlier ones have answered, so a slow shop cannot slow the load down and hide its own
//! slowness (coordinated omission). Latency is measured from the due time, not the send time.
//!
//! Requests run as tasks, at most `max_in_flight` at once. When that bound is reached the next
//! request waits for a slot — its latency still counts from its due time — and the wait is
//! counted and reported, never silent.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Requests per second.
    pub(crate) rate: f64,
    pub(crate) duration: Duration,
    pub(crate) max_in_flight: usize,
}

impl Plan {
    /// How many requests the plan sends.
    pub(crate) fn total(&self) -> u64 {
        // Truncation is the intent: a request due at the very end is not sent.
        (self.rate * self.duration.as_secs_f64()).floor() as u64
    }

    /// When request `i` is due.
    pub(crate) fn due(&self, start: Instant, i: u64) -> Instant {
        // Whole nanoseconds, rounded: exact for the rates people type.
        start + Duration::from_nanos((i as f64 * 1e9 / self.rate).round() as u64)
    }
}

/// Live counters, read by the progress bar while the run goes on.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) done: AtomicU64,
    /// Requests that found every in-flight slot taken.
    pub(crate) limit_hits: AtomicU64,
    /// The most any request was sent after its due time, in microseconds.
    pub(crate) max_lag_us: AtomicU64,
}

/// Sends `plan.total()` requests on schedule: `request(i, due)` makes the future of request `i`.
/// Returns once every request has ended.
pub(crate) async fn run<F, Fut>(plan: Plan, start: Instant, counters: Arc<Counters>, mut request: F)
where
    F: FnMut(u64, Instant) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(plan.max_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..plan.total() {
        let due = plan.due(start, i);
        tokio::time::sleep_until(due).await;
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                counters.limit_hits.fetch_add(1, Ordering::Relaxed);
                match Arc::clone(&slots).acquire_owned().await {
                    Ok(slot) => slot,
                    Err(_) => break,
                }
            }
        };
        let lag = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
        counters.max_lag_us.fetch_max(lag, Ordering::Relaxed);
        counters.sent.fetch_add(1, Ordering::Relaxed);
        let work = request(i, due);
        let done = Arc::clone(&counters);
        tasks.spawn(async move {
            work.await;
            done.done.fetch_add(1, Ordering::Relaxed);
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Runs `plan` with requests that each take `takes`; (request, sent after start, latency
    /// from its due time) for each.
    async fn record(
        plan: Plan,
        takes: Duration,
    ) -> (Vec<(u64, Duration, Duration)>, Arc<Counters>) {
        let start = Instant::now();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let counters = Arc::new(Counters::default());
        let log = Arc::clone(&seen);
        run(plan, start, Arc::clone(&counters), move |i, due| {
            let sent = start.elapsed();
            let log = Arc::clone(&log);
            async move {
                tokio::time::sleep(takes).await;
                log.lock().unwrap().push((i, sent, due.elapsed()));
            }
        })
        .await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_by_key(|s| s.0);
        (seen, counters)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_sent_on_schedule_even_when_answers_are_slow() {
        let plan = Plan {
            rate: 10.0,
            duration: Duration::from_secs(2),
            max_in_flight: 1000,
        };
        // Every answer takes 5 s, far longer than the 100 ms between requests.
        let (seen, counters) = record(plan, Duration::from_secs(5)).await;
        assert_eq!(seen.len(), 20);
        for (i, sent, latency) in &seen {
            assert_eq!(*sent, Duration::from_millis(100 * i), "request {i}");
            assert_eq!(*latency, Duration::from_secs(5), "request {i}");
        }
        assert_eq!(counters.limit_hits.load(Ordering::Relaxed), 0);
        assert_eq!(counters.done.load(Ordering::Relaxed), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_slot_is_counted_and_charged_to_latency() {
        let plan = Plan {
            rate: 10.0,
            duration: Duration::from_secs(1),
            max_in_flight: 2,
        };
        // Two slots, answers in 1 s: requests 2.. wait for a slot.
        let (seen, counters) = record(plan, Duration::from_secs(1)).await;
        assert_eq!(seen.len(), 10);
        assert!(counters.limit_hits.load(Ordering::Relaxed) >= 8);
        // Slots free at 1.0, 1.1, 2.0, 2.1 … s: request 9, due at 0.9 s, is sent at 4.1 s and
        // answered at 5.1 s.
        let (_, sent, latency) = seen[9];
        assert_eq!(sent, Duration::from_millis(4100));
        assert_eq!(latency, Duration::from_millis(4200));
        assert_eq!(counters.max_lag_us.load(Ordering::Relaxed), 3_200_000);
    }

    #[test]
    fn the_plan_counts_whole_requests() {
        let plan = Plan {
            rate: 7.5,
            duration: Duration::from_secs(2),
            max_in_flight: 1,
        };
        assert_eq!(plan.total(), 15);
        let start = Instant::now();
        assert_eq!(plan.due(start, 3), start + Duration::from_millis(400));
    }
}
