//! Rate limits per route: a token bucket per client address and one per signed-in user
//! (governor's GCRA, lock-free), answered with 429, `Retry-After` and `RateLimit-*` headers.
//!
//! The per-address check runs before token verification, so a flood from one address costs a
//! bucket lookup, not a signature check. Keyed buckets are pruned by the admin thread
//! (`retain_recent`), or they would grow with every address ever seen.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitConfig;

/// A route's limiters.
#[derive(Debug)]
pub struct Limits {
    client: Option<(DefaultKeyedRateLimiter<IpAddr>, u32)>,
    user: Option<(DefaultKeyedRateLimiter<String>, u32)>,
}

/// A refused request: how long to wait, and the limit it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// Until a request would be allowed.
    pub retry_after: Duration,
    /// The burst size of the bucket.
    pub limit: u32,
}

fn quota(per_minute: u32, burst: u32) -> Option<Quota> {
    let per_minute = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst.max(1))?;
    Some(Quota::per_minute(per_minute).allow_burst(burst))
}

impl Limits {
    /// Limiters for `config` (none when absent or zero).
    pub fn new(config: Option<&RateLimitConfig>) -> Self {
        let config = config.copied().unwrap_or_default();
        Self {
            client: quota(config.client_per_minute, config.client_burst)
                .map(|q| (RateLimiter::keyed(q), config.client_burst.max(1))),
            user: quota(config.user_per_minute, config.user_burst)
                .map(|q| (RateLimiter::keyed(q), config.user_burst.max(1))),
        }
    }

    /// Takes a token from `client`'s bucket.
    pub fn check_client(&self, client: IpAddr) -> Result<(), Exceeded> {
        let Some((limiter, limit)) = &self.client else {
            return Ok(());
        };
        limiter
            .check_key(&client)
            .map_err(|until| exceeded(&until, *limit))
    }

    /// Takes a token from `user`'s bucket.
    pub fn check_user(&self, user: &str) -> Result<(), Exceeded> {
        let Some((limiter, limit)) = &self.user else {
            return Ok(());
        };
        limiter
            .check_key(&user.to_owned())
            .map_err(|until| exceeded(&until, *limit))
    }

    /// Forgets buckets that are full again (their keys have been quiet).
    pub fn prune(&self) {
        if let Some((limiter, _)) = &self.client {
            limiter.retain_recent();
        }
        if let Some((limiter, _)) = &self.user {
            limiter.retain_recent();
        }
    }
}

fn exceeded(until: &governor::NotUntil<<DefaultClock as Clock>::Instant>, limit: u32) -> Exceeded {
    Exceeded {
        retry_after: until.wait_time_from(DefaultClock::default().now()),
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_bucket() {
        let limits = Limits::new(Some(&RateLimitConfig {
            client_per_minute: 60,
            client_burst: 3,
            ..RateLimitConfig::default()
        }));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limits.check_client(a).is_ok()));
        let refused = limits.check_client(a).unwrap_err();
        assert_eq!(refused.limit, 3);
        assert!(refused.retry_after <= Duration::from_secs(1));
        assert!(limits.check_client(b).is_ok());
        assert!(
            limits.check_user("anyone").is_ok(),
            "no user limit configured"
        );
    }
}
