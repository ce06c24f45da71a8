//! A retry budget: retries may add at most a percentage of extra load, plus a small floor per
//! second, so that retries never turn an upstream's trouble into an overload (Finagle's and
//! linkerd's model). Every request deposits a fraction of a token; every retry withdraws one.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::config::RetryConfig;

/// Tokens are counted in thousandths.
const TOKEN: i64 = 1_000;
/// The balance never holds more than this many seconds' worth of floor and deposits, so that a
/// long quiet spell cannot be spent at once.
const MAX_SAVED_SECONDS: i64 = 10;

/// One upstream's retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    deposit: i64,
    floor_per_second: i64,
    cap: i64,
    balance: AtomicI64,
    refilled_at_ms: AtomicU64,
}

impl RetryBudget {
    /// A budget that starts with one second of floor.
    pub fn new(config: &RetryConfig) -> Self {
        let floor_per_second = i64::from(config.min_retries_per_second) * TOKEN;
        Self {
            deposit: i64::from(config.budget_percent) * TOKEN / 100,
            floor_per_second,
            cap: (floor_per_second * MAX_SAVED_SECONDS).max(100 * TOKEN),
            balance: AtomicI64::new(floor_per_second),
            refilled_at_ms: AtomicU64::new(0),
        }
    }

    /// Counts one original request.
    pub fn deposit(&self) {
        if self.balance.fetch_add(self.deposit, Ordering::Relaxed) > self.cap {
            self.balance.fetch_sub(self.deposit, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the budget, if there is one.
    pub fn withdraw(&self, now_ms: u64) -> bool {
        self.refill(now_ms);
        let mut current = self.balance.load(Ordering::Relaxed);
        while current >= TOKEN {
            match self.balance.compare_exchange_weak(
                current,
                current - TOKEN,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
        false
    }

    fn refill(&self, now_ms: u64) {
        let last = self.refilled_at_ms.load(Ordering::Relaxed);
        if now_ms <= last
            || self
                .refilled_at_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let earned = self.floor_per_second
            * i64::try_from(now_ms - last).unwrap_or(i64::MAX / TOKEN)
            / 1_000;
        let current = self.balance.load(Ordering::Relaxed);
        let target = current.saturating_add(earned).min(self.cap.max(current));
        self.balance.fetch_add(target - current, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(percent: u32, floor: u32) -> RetryConfig {
        RetryConfig {
            budget_percent: percent,
            min_retries_per_second: floor,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn retries_stay_within_the_percentage_of_requests() {
        let budget = RetryBudget::new(&config(20, 0));
        let mut retries = 0;
        for _ in 0..1_000 {
            budget.deposit();
            if budget.withdraw(0) {
                retries += 1;
            }
        }
        assert_eq!(retries, 200);
    }

    #[test]
    fn the_floor_refills_with_time_and_is_capped() {
        let budget = RetryBudget::new(&config(0, 3));
        assert_eq!(
            (0..10).filter(|_| budget.withdraw(0)).count(),
            3,
            "one second's floor to start"
        );
        assert_eq!((0..10).filter(|_| budget.withdraw(1_000)).count(), 3);
        let after_a_long_quiet = (0..1_000).filter(|_| budget.withdraw(3_600_000)).count();
        assert_eq!(after_a_long_quiet, 100, "capped");
    }
}
