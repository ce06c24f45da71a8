//! Fault injection for chaos runs: a fixed delay and an abort with a status, each for a
//! percentage of requests, set per route or per upstream through the admin API.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde::{Deserialize, Serialize};

/// A fault, as the admin API takes and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Delay added before forwarding, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Share of requests delayed, 0 to 100.
    #[serde(default)]
    pub delay_percent: u8,
    /// Status answered instead of forwarding (400 to 599).
    #[serde(default)]
    pub abort_status: Option<u16>,
    /// Share of requests aborted, 0 to 100.
    #[serde(default)]
    pub abort_percent: u8,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Wait this long first.
    pub delay: Option<Duration>,
    /// Then answer this status instead of forwarding.
    pub abort: Option<http::StatusCode>,
}

impl Fault {
    /// Checks the percentages and status.
    pub fn validate(&self) -> Result<(), String> {
        if self.delay_percent > 100 || self.abort_percent > 100 {
            return Err("percentages must be 0 to 100".into());
        }
        if let Some(status) = self.abort_status
            && !(400..=599).contains(&status)
        {
            return Err("abort_status must be 400 to 599".into());
        }
        if self.abort_percent > 0 && self.abort_status.is_none() {
            return Err("abort_percent needs an abort_status".into());
        }
        if self.delay_ms > 600_000 {
            return Err("delay_ms must be at most 600000".into());
        }
        Ok(())
    }

    fn decide(&self) -> Decision {
        let hit = |percent: u8| percent > 0 && fastrand::u8(0..100) < percent;
        Decision {
            delay: (self.delay_ms > 0 && hit(self.delay_percent))
                .then(|| Duration::from_millis(self.delay_ms)),
            abort: self
                .abort_status
                .filter(|_| hit(self.abort_percent))
                .and_then(|s| http::StatusCode::from_u16(s).ok()),
        }
    }
}

/// The fault currently set on one route or upstream, if any. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<ArcSwapOption<Fault>>);

impl Faults {
    /// Sets or clears the fault.
    pub fn set(&self, fault: Option<Fault>) {
        self.0.store(fault.map(Arc::new));
    }

    /// The fault, if any.
    pub fn get(&self) -> Option<Fault> {
        self.0.load_full().map(|f| (*f).clone())
    }

    /// Decides for one request (nothing to do when no fault is set).
    pub fn decide(&self) -> Decision {
        self.0
            .load()
            .as_ref()
            .map(|f| f.decide())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_hold_roughly() {
        let faults = Faults::default();
        faults.set(Some(Fault {
            delay_ms: 5,
            delay_percent: 100,
            abort_status: Some(503),
            abort_percent: 30,
        }));
        let decisions: Vec<_> = (0..10_000).map(|_| faults.decide()).collect();
        assert!(
            decisions
                .iter()
                .all(|d| d.delay == Some(Duration::from_millis(5)))
        );
        let aborted = decisions.iter().filter(|d| d.abort.is_some()).count();
        assert!((2_500..3_500).contains(&aborted), "{aborted}");
        faults.set(None);
        assert_eq!(faults.decide(), Decision::default());
    }

    #[test]
    fn invalid_faults_are_refused() {
        let bad = Fault {
            delay_ms: 0,
            delay_percent: 0,
            abort_status: Some(200),
            abort_percent: 10,
        };
        assert!(bad.validate().is_err());
        let no_status = Fault {
            delay_ms: 0,
            delay_percent: 0,
            abort_status: None,
            abort_percent: 10,
        };
        assert!(no_status.validate().is_err());
    }
}
