//! Milliseconds since the gateway started: the one time base for ejections and breakers, which
//! unit tests can move by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A monotonic millisecond clock.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Source>);

#[derive(Debug)]
enum Source {
    Real(Instant),
    Manual(AtomicU64),
}

impl Clock {
    /// Real time, counted from now. Starts at 1 so that 0 can mean "never".
    pub fn real() -> Self {
        Self(Arc::new(Source::Real(Instant::now())))
    }

    /// A clock that only moves when told to (tests).
    pub fn manual() -> Self {
        Self(Arc::new(Source::Manual(AtomicU64::new(1))))
    }

    /// Milliseconds since the clock was made.
    pub fn now_ms(&self) -> u64 {
        match &*self.0 {
            Source::Real(start) => {
                1 + u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
            }
            Source::Manual(now) => now.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; does nothing to a real one.
    pub fn advance_ms(&self, ms: u64) {
        if let Source::Manual(now) = &*self.0 {
            now.fetch_add(ms, Ordering::Relaxed);
        }
    }
}
