//! A circuit breaker per upstream: closed → open after N consecutive failures → half-open after a
//! pause, letting a few probes through → closed when they all succeed, open again when one fails.
//!
//! All state is in atomics, shared by every proxy thread; times are milliseconds on the upstream's
//! clock, so tests can drive it with `tokio::time::pause`.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::config::BreakerConfig;

/// The breaker's state, as reported in metrics and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Requests flow.
    Closed = 0,
    /// Requests are refused at once.
    Open = 1,
    /// A few probes are let through.
    HalfOpen = 2,
}

/// Whether a request may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; `probe` when it is one of the half-open probes.
    Allowed {
        /// This request decides whether the breaker closes.
        probe: bool,
    },
    /// Refused: try again after this many milliseconds.
    Refused {
        /// Until the breaker lets probes through.
        retry_after_ms: u64,
    },
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    opened_at_ms: AtomicU64,
    probes_started: AtomicU32,
    probes_succeeded: AtomicU32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: AtomicU8::new(State::Closed as u8),
            consecutive_failures: AtomicU32::new(0),
            opened_at_ms: AtomicU64::new(0),
            probes_started: AtomicU32::new(0),
            probes_succeeded: AtomicU32::new(0),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        }
    }

    /// Asks to send one request at time `now_ms`.
    pub fn admit(&self, now_ms: u64) -> Admission {
        if self.config.consecutive_failures == 0 {
            return Admission::Allowed { probe: false };
        }
        match self.state() {
            State::Closed => Admission::Allowed { probe: false },
            State::Open => {
                let reopen_at = self.opened_at_ms.load(Ordering::Acquire) + self.config.open_ms;
                if now_ms < reopen_at {
                    return Admission::Refused {
                        retry_after_ms: reopen_at - now_ms,
                    };
                }
                // One thread moves it to half-open and resets the probe counts.
                if self
                    .state
                    .compare_exchange(
                        State::Open as u8,
                        State::HalfOpen as u8,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    self.probes_started.store(0, Ordering::Release);
                    self.probes_succeeded.store(0, Ordering::Release);
                }
                self.admit_probe()
            }
            State::HalfOpen => self.admit_probe(),
        }
    }

    fn admit_probe(&self) -> Admission {
        if self.probes_started.fetch_add(1, Ordering::AcqRel) < self.config.half_open_probes {
            Admission::Allowed { probe: true }
        } else {
            Admission::Refused {
                retry_after_ms: 1_000,
            }
        }
    }

    /// Records how an admitted request ended.
    pub fn record(&self, success: bool, probe: bool, now_ms: u64) {
        if self.config.consecutive_failures == 0 {
            return;
        }
        match (success, probe) {
            (true, false) => self.consecutive_failures.store(0, Ordering::Release),
            (true, true) => {
                if self.probes_succeeded.fetch_add(1, Ordering::AcqRel) + 1
                    >= self.config.half_open_probes
                {
                    self.consecutive_failures.store(0, Ordering::Release);
                    self.state.store(State::Closed as u8, Ordering::Release);
                }
            }
            (false, true) => self.open(now_ms),
            (false, false) => {
                let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= self.config.consecutive_failures && self.state() == State::Closed {
                    self.open(now_ms);
                }
            }
        }
    }

    fn open(&self, now_ms: u64) {
        self.opened_at_ms.store(now_ms, Ordering::Release);
        self.state.store(State::Open as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            consecutive_failures: 3,
            open_ms: 1_000,
            half_open_probes: 2,
        })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        b.record(false, false, 0);
        b.record(false, false, 0);
        b.record(true, false, 0);
        b.record(false, false, 0);
        b.record(false, false, 0);
        assert_eq!(b.state(), State::Closed);
        b.record(false, false, 10);
        assert_eq!(b.state(), State::Open);
        assert_eq!(
            b.admit(500),
            Admission::Refused {
                retry_after_ms: 510
            }
        );
    }

    #[test]
    fn half_open_lets_a_few_probes_through_and_closes_when_they_succeed() {
        let b = breaker();
        (0..3).for_each(|_| b.record(false, false, 0));
        assert_eq!(b.admit(1_000), Admission::Allowed { probe: true });
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.admit(1_000), Admission::Allowed { probe: true });
        assert!(
            matches!(b.admit(1_000), Admission::Refused { .. }),
            "only two probes"
        );
        b.record(true, true, 1_001);
        assert_eq!(b.state(), State::HalfOpen);
        b.record(true, true, 1_002);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(1_003), Admission::Allowed { probe: false });
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let b = breaker();
        (0..3).for_each(|_| b.record(false, false, 0));
        assert_eq!(b.admit(1_000), Admission::Allowed { probe: true });
        b.record(false, true, 1_000);
        assert_eq!(b.state(), State::Open);
        assert!(matches!(b.admit(1_500), Admission::Refused { .. }));
        assert_eq!(b.admit(2_000), Admission::Allowed { probe: true });
    }

    #[test]
    fn zero_threshold_disables_it() {
        let b = Breaker::new(BreakerConfig {
            consecutive_failures: 0,
            ..BreakerConfig::default()
        });
        (0..100).for_each(|_| b.record(false, false, 0));
        assert_eq!(b.admit(0), Admission::Allowed { probe: false });
    }
}
