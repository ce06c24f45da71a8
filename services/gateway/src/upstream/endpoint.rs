//! One endpoint of an upstream: its address, load and health, shared by every proxy thread.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use http::uri::Authority;

/// An endpoint and what the gateway knows of it.
#[derive(Debug)]
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `addr` as a URI authority.
    pub authority: Authority,
    /// `addr` as a `Host` header value.
    pub host: http::HeaderValue,
    /// Requests sent to it and not yet answered (the p2c load signal).
    pub in_flight: AtomicUsize,
    /// Failures in a row (5xx or no answer), for outlier ejection.
    pub consecutive_failures: AtomicU32,
    /// Ejected until this time (upstream clock, ms); 0 when not ejected.
    pub ejected_until_ms: AtomicU64,
    /// How often it was ejected: the next ejection lasts this many times the base.
    pub times_ejected: AtomicU32,
    /// Whether active health checks pass (true until a check says otherwise).
    pub healthy: AtomicBool,
    /// Checks failed in a row.
    pub check_failures: AtomicU32,
    /// Checks passed in a row.
    pub check_successes: AtomicU32,
    /// When the next active health check is due (upstream clock, ms).
    pub next_check_ms: AtomicU64,
    /// Requests answered, for the admin API.
    pub requests: AtomicU64,
    /// Failed requests, for the admin API.
    pub failures: AtomicU64,
}

impl Endpoint {
    /// A new, healthy endpoint.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            // A socket address always parses as an authority.
            host: http::HeaderValue::try_from(addr.to_string())
                .unwrap_or_else(|_| http::HeaderValue::from_static("upstream")),
            authority: Authority::try_from(addr.to_string())
                .unwrap_or_else(|_| Authority::from_static("upstream")),
            in_flight: AtomicUsize::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            times_ejected: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            check_failures: AtomicU32::new(0),
            check_successes: AtomicU32::new(0),
            next_check_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether it may be sent requests at `now_ms`.
    pub fn available(&self, now_ms: u64) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.is_ejected(now_ms)
    }

    /// Whether passive ejection holds it out at `now_ms`.
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until_ms.load(Ordering::Relaxed)
    }
}

/// Counts a request as in flight on an endpoint until dropped; owns its endpoint, so it can
/// travel with a streamed response body.
#[derive(Debug)]
pub struct OwnedInFlight(std::sync::Arc<Endpoint>);

impl OwnedInFlight {
    /// Marks a request as started on `endpoint`.
    pub fn new(endpoint: std::sync::Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(endpoint)
    }
}

impl Drop for OwnedInFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
