//! Upstreams: a named pool of endpoints with its balancer, outlier ejection, circuit breaker,
//! concurrency limit, retry budget and injected faults. Shared by every proxy thread.

mod breaker;
mod budget;
mod endpoint;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;

pub use breaker::{Admission, Breaker, State as BreakerState};
pub use budget::RetryBudget;
pub use endpoint::{Endpoint, OwnedInFlight};

use crate::clock::Clock;
use crate::config::{Balance, UpstreamConfig};
use crate::fault::Faults;

/// Routers of upstreams served in this process (`souk monolith`), by upstream name: called with
/// tower `oneshot` instead of over a socket, their configured endpoints never dialled.
pub type InProcess = std::collections::BTreeMap<String, axum::Router>;

/// A named pool of endpoints.
#[derive(Debug)]
pub struct Upstream {
    /// Its name in the config.
    pub name: Arc<str>,
    /// Its settings.
    pub config: UpstreamConfig,
    /// The endpoints; replaced whole by the admin API, DNS or a reload.
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    /// Requests in flight to any endpoint, for the concurrency limit.
    in_flight: AtomicUsize,
    next: AtomicUsize,
    /// The circuit breaker.
    pub breaker: Breaker,
    /// The retry budget.
    pub budget: RetryBudget,
    /// Faults injected through the admin API.
    pub faults: Faults,
    /// The clock its times are read from.
    pub clock: Clock,
    /// When `dns` is next re-resolved (clock ms).
    pub next_dns_ms: std::sync::atomic::AtomicU64,
    /// What clients were answered, kept across reloads.
    pub traffic: Arc<Traffic>,
    metrics: UpstreamMetrics,
}

/// The answers clients got from an upstream through the gateway, whatever made them (the
/// upstream, a refusal by its breaker or concurrency limit, an injected fault): the service map
/// turns these counts into request and error rates.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Answers given.
    pub answered: AtomicU64,
    /// Of those, the 5xx ones.
    pub failed: AtomicU64,
}

impl Traffic {
    /// Counts one answer.
    pub fn record(&self, status: http::StatusCode) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if status.is_server_error() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Why no endpoint was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoEndpoint {
    /// The upstream has no endpoint at all.
    Empty,
}

impl Upstream {
    /// An upstream with `config`'s endpoints, keeping the state of any endpoint found in `previous`.
    pub fn new(
        name: &str,
        config: UpstreamConfig,
        previous: Option<&Upstream>,
        clock: Clock,
    ) -> Self {
        let addrs = config.endpoints.clone();
        let upstream = Self {
            name: Arc::from(name),
            breaker: Breaker::new(config.breaker.clone()),
            budget: RetryBudget::new(&config.retry),
            endpoints: ArcSwap::from_pointee(Vec::new()),
            in_flight: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            faults: previous.map(|p| p.faults.clone()).unwrap_or_default(),
            metrics: UpstreamMetrics::new(name),
            next_dns_ms: std::sync::atomic::AtomicU64::new(0),
            traffic: previous.map(|p| Arc::clone(&p.traffic)).unwrap_or_default(),
            clock,
            config,
        };
        let old = previous.map(|p| p.endpoints.load_full());
        upstream.set_endpoints_from(&addrs, old.as_deref().map(Vec::as_slice));
        upstream
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    /// Replaces the endpoints; those already known keep their state.
    pub fn set_endpoints(&self, addrs: &[SocketAddr]) {
        let old = self.endpoints.load_full();
        self.set_endpoints_from(addrs, Some(&old));
    }

    fn set_endpoints_from(&self, addrs: &[SocketAddr], old: Option<&[Arc<Endpoint>]>) {
        let mut seen = std::collections::HashSet::new();
        let endpoints: Vec<Arc<Endpoint>> = addrs
            .iter()
            .filter(|addr| seen.insert(**addr))
            .map(|addr| {
                old.and_then(|old| old.iter().find(|e| e.addr == *addr).cloned())
                    .unwrap_or_else(|| Arc::new(Endpoint::new(*addr)))
            })
            .collect();
        metrics::gauge!("gateway_upstream_endpoints", "upstream" => self.name.to_string())
            .set(endpoints.len() as f64);
        self.endpoints.store(Arc::new(endpoints));
    }

    /// Picks an endpoint by the configured policy among the available ones. When none is
    /// available (all ejected or failing checks) it picks among all of them — sending to a
    /// possibly-bad endpoint beats refusing everything — and counts it as a panic.
    pub fn pick(&self, exclude: Option<&Endpoint>) -> Result<Arc<Endpoint>, NoEndpoint> {
        let endpoints = self.endpoints.load();
        if endpoints.is_empty() {
            return Err(NoEndpoint::Empty);
        }
        let now = self.clock.now_ms();
        // Three tiers, without allocating: available and not just tried; available; anything.
        let tiers: [&dyn Fn(&Endpoint) -> bool; 3] = [
            &|e| e.available(now) && !exclude.is_some_and(|x| std::ptr::eq(x, e)),
            &|e| e.available(now),
            &|_| true,
        ];
        for (tier, eligible) in tiers.iter().enumerate() {
            let n = endpoints.iter().filter(|e| eligible(e)).count();
            if n == 0 {
                continue;
            }
            if tier == 2 {
                self.metrics.panic.increment(1);
            }
            let nth = |i: usize| endpoints.iter().filter(|e| eligible(e)).nth(i);
            let chosen = match (self.config.balance, n) {
                (_, 1) => nth(0),
                (Balance::RoundRobin, n) => nth(self.next.fetch_add(1, Ordering::Relaxed) % n),
                (Balance::P2c, n) => {
                    let a = fastrand::usize(..n);
                    let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                    match (nth(a), nth(b)) {
                        (Some(a), Some(b))
                            if b.in_flight.load(Ordering::Relaxed)
                                < a.in_flight.load(Ordering::Relaxed) =>
                        {
                            Some(b)
                        }
                        (a, _) => a,
                    }
                }
            };
            if let Some(chosen) = chosen {
                return Ok(Arc::clone(chosen));
            }
        }
        Err(NoEndpoint::Empty)
    }

    /// Takes a slot under the concurrency limit, or `None` when the upstream is full. The slot
    /// owns its upstream, so it can travel with a streamed response body.
    pub fn acquire(self: &Arc<Self>) -> Option<Slot> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.config.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.metrics.shed.increment(1);
            return None;
        }
        Some(Slot(Arc::clone(self)))
    }

    /// Requests in flight to this upstream.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records one attempt's outcome on `endpoint`, ejecting it after too many failures in a row.
    pub fn record(&self, endpoint: &Endpoint, success: bool) {
        endpoint.requests.fetch_add(1, Ordering::Relaxed);
        if success {
            endpoint.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        endpoint.failures.fetch_add(1, Ordering::Relaxed);
        let failures = endpoint.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let outlier = &self.config.outlier;
        if outlier.consecutive_failures == 0 || failures < outlier.consecutive_failures {
            return;
        }
        let now = self.clock.now_ms();
        if endpoint.is_ejected(now) {
            return;
        }
        if !self.may_eject(now) {
            // Ejecting would leave too few endpoints (or none): keep it in, and say so.
            self.metrics.ejections_suppressed.increment(1);
            return;
        }
        let times = endpoint.times_ejected.fetch_add(1, Ordering::AcqRel) + 1;
        let ejection = (outlier.base_ejection_ms.saturating_mul(u64::from(times)))
            .min(outlier.max_ejection_ms);
        endpoint
            .ejected_until_ms
            .store(now + ejection, Ordering::Release);
        endpoint.consecutive_failures.store(0, Ordering::Relaxed);
        self.metrics.ejections.increment(1);
        tracing::warn!(upstream = %self.name, endpoint = %endpoint.addr, ejection_ms = ejection, "endpoint ejected after {failures} failures in a row");
    }

    /// Whether one more endpoint may be ejected: at most `max_ejection_percent` (rounded down,
    /// but at least one) may be out, and at least one available endpoint must remain.
    fn may_eject(&self, now: u64) -> bool {
        let endpoints = self.endpoints.load();
        let total = endpoints.len();
        let ejected = endpoints.iter().filter(|e| e.is_ejected(now)).count();
        let available = endpoints.iter().filter(|e| e.available(now)).count();
        let allowed = (total * self.config.outlier.max_ejection_percent as usize / 100).max(1);
        ejected < allowed && available > 1
    }

    /// Publishes the breaker state as a gauge (0 closed, 1 open, 2 half-open).
    pub fn publish_breaker_state(&self) {
        self.metrics
            .breaker_state
            .set(self.breaker.state() as u8 as f64);
    }
}

/// A slot under an upstream's concurrency limit, released when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Upstream>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Metric handles resolved once per upstream, so the hot path does no label lookups.
#[derive(Debug)]
struct UpstreamMetrics {
    shed: metrics::Counter,
    ejections: metrics::Counter,
    ejections_suppressed: metrics::Counter,
    panic: metrics::Counter,
    breaker_state: metrics::Gauge,
}

impl UpstreamMetrics {
    fn new(name: &str) -> Self {
        // Handles made before the recorder exists would count nothing, forever.
        souk_chassis::metrics::handle();
        let label = || ("upstream", name.to_owned());
        Self {
            shed: metrics::counter!("gateway_upstream_shed_total", &[label()]),
            ejections: metrics::counter!("gateway_upstream_ejections_total", &[label()]),
            ejections_suppressed: metrics::counter!(
                "gateway_upstream_ejections_suppressed_total",
                &[label()]
            ),
            panic: metrics::counter!("gateway_upstream_no_healthy_endpoint_total", &[label()]),
            breaker_state: metrics::gauge!("gateway_upstream_breaker_state", &[label()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutlierConfig;

    fn upstream(n: u16, balance: Balance, clock: Clock) -> Upstream {
        let config = UpstreamConfig {
            endpoints: (1..=n)
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
                .collect(),
            balance,
            outlier: OutlierConfig {
                consecutive_failures: 5,
                base_ejection_ms: 30_000,
                max_ejection_ms: 90_000,
                max_ejection_percent: 50,
            },
            ..UpstreamConfig::default()
        };
        Upstream::new("u", config, None, clock)
    }

    #[test]
    fn round_robin_takes_turns() {
        let u = upstream(3, Balance::RoundRobin, Clock::manual());
        let ports: Vec<u16> = (0..6).map(|_| u.pick(None).unwrap().addr.port()).collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn p2c_avoids_the_busier_endpoint() {
        let u = upstream(2, Balance::P2c, Clock::manual());
        let busy = u.endpoints()[0].clone();
        let _load: Vec<_> = (0..10).map(|_| OwnedInFlight::new(busy.clone())).collect();
        for _ in 0..50 {
            assert_eq!(u.pick(None).unwrap().addr.port(), 2);
        }
    }

    #[test]
    fn ejection_grows_with_each_ejection_and_is_capped() {
        let clock = Clock::manual();
        let u = upstream(4, Balance::RoundRobin, clock.clone());
        let bad = u.endpoints()[0].clone();
        for round in 1..=4u64 {
            (0..5).for_each(|_| u.record(&bad, false));
            let expected = (30_000 * round).min(90_000);
            assert_eq!(
                bad.ejected_until_ms.load(Ordering::Relaxed),
                clock.now_ms() + expected,
                "round {round}"
            );
            assert!((0..8).all(|_| u.pick(None).unwrap().addr.port() != 1));
            clock.advance_ms(expected);
            assert!(bad.available(clock.now_ms()), "back after {expected} ms");
        }
    }

    #[test]
    fn the_last_available_endpoint_is_never_ejected() {
        let u = upstream(2, Balance::RoundRobin, Clock::manual());
        let [a, b] = [u.endpoints()[0].clone(), u.endpoints()[1].clone()];
        (0..5).for_each(|_| u.record(&a, false));
        assert!(a.is_ejected(0));
        (0..50).for_each(|_| u.record(&b, false));
        assert!(!b.is_ejected(0), "ejecting b would leave nothing");
    }

    #[test]
    fn the_concurrency_limit_sheds_beyond_max_in_flight() {
        let mut config = UpstreamConfig {
            endpoints: vec![SocketAddr::from(([127, 0, 0, 1], 1))],
            ..UpstreamConfig::default()
        };
        config.max_in_flight = 2;
        let u = Arc::new(Upstream::new("u", config, None, Clock::manual()));
        let first = u.acquire().unwrap();
        let _second = u.acquire().unwrap();
        assert!(u.acquire().is_none());
        drop(first);
        assert!(u.acquire().is_some());
    }

    #[test]
    fn replacing_endpoints_keeps_known_state() {
        let u = upstream(2, Balance::RoundRobin, Clock::manual());
        let a = u.endpoints()[0].clone();
        a.times_ejected.store(3, Ordering::Relaxed);
        u.set_endpoints(&[a.addr, SocketAddr::from(([127, 0, 0, 1], 9))]);
        let now = u.endpoints();
        assert!(Arc::ptr_eq(&now[0], &a));
        assert_eq!(now[1].addr.port(), 9);
    }
}
