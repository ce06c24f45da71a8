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
    /// Set when the buckets live in Redis instead (shared by every gateway).
    shared: Option<Shared>,
}

/// Buckets in Redis: the same GCRA, run as one atomic script on Redis's clock.
#[derive(Debug)]
struct Shared {
    route: String,
    config: RateLimitConfig,
}

/// GCRA in one round trip: KEYS[1] the bucket, ARGV[1] the emission interval in ms, ARGV[2] the
/// burst. Answers 0 when allowed, else the milliseconds to wait. Buckets expire once full again.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then return tat - tolerance - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now + interval))
return 0
";

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
    pub fn new(route: &str, config: Option<&RateLimitConfig>) -> Self {
        let config = config.copied().unwrap_or_default();
        if config.shared {
            return Self {
                client: None,
                user: None,
                shared: Some(Shared {
                    route: route.to_owned(),
                    config,
                }),
            };
        }
        Self {
            shared: None,
            client: quota(config.client_per_minute, config.client_burst)
                .map(|q| (RateLimiter::keyed(q), config.client_burst.max(1))),
            user: quota(config.user_per_minute, config.user_burst)
                .map(|q| (RateLimiter::keyed(q), config.user_burst.max(1))),
        }
    }

    /// Whether any bucket limits the route (so it may answer 429).
    pub fn is_limited(&self) -> bool {
        self.client.is_some() || self.user.is_some() || self.shared.is_some()
    }

    /// Whether the buckets live in Redis.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Takes a token from `client`'s bucket in Redis. Redis being down lets the request through
    /// (and says so in the log): a limiter must not take the shop down with it.
    pub async fn check_client_shared(
        &self,
        redis: &mut redis::aio::ConnectionManager,
        client: IpAddr,
    ) -> Result<(), Exceeded> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let (per_minute, burst) = (shared.config.client_per_minute, shared.config.client_burst);
        gcra(
            redis,
            &format!("souk:rl:{}:client:{}", shared.route, bucket_of(client)),
            per_minute,
            burst,
        )
        .await
    }

    /// Takes a token from `user`'s bucket in Redis.
    pub async fn check_user_shared(
        &self,
        redis: &mut redis::aio::ConnectionManager,
        user: &str,
    ) -> Result<(), Exceeded> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let (per_minute, burst) = (shared.config.user_per_minute, shared.config.user_burst);
        gcra(
            redis,
            &format!("souk:rl:{}:user:{user}", shared.route),
            per_minute,
            burst,
        )
        .await
    }

    /// Takes a token from `client`'s bucket (its /64 for IPv6).
    pub fn check_client(&self, client: IpAddr) -> Result<(), Exceeded> {
        let Some((limiter, limit)) = &self.client else {
            return Ok(());
        };
        limiter
            .check_key(&bucket_of(client))
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

/// The address a client's bucket is kept under: an IPv4 address as it is (an IPv4-mapped IPv6
/// one as IPv4), an IPv6 address as its /64 — one host is usually given a whole /64, and would
/// otherwise have 2^64 buckets to choose from.
pub fn bucket_of(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

async fn gcra(
    redis: &mut redis::aio::ConnectionManager,
    key: &str,
    per_minute: u32,
    burst: u32,
) -> Result<(), Exceeded> {
    if per_minute == 0 {
        return Ok(());
    }
    let interval_ms = 60_000 / u64::from(per_minute);
    let burst = burst.max(1);
    let wait_ms: Result<u64, redis::RedisError> = redis::Script::new(GCRA)
        .key(key)
        .arg(interval_ms)
        .arg(burst)
        .invoke_async(redis)
        .await;
    match wait_ms {
        Ok(0) => Ok(()),
        Ok(ms) => Err(Exceeded {
            retry_after: Duration::from_millis(ms),
            limit: burst,
        }),
        Err(err) => {
            tracing::warn!(%err, "shared rate limit unavailable; letting the request through");
            Ok(())
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
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        let limits = Limits::new(
            "r",
            Some(&RateLimitConfig {
                client_per_minute: 60,
                client_burst: 2,
                ..RateLimitConfig::default()
            }),
        );
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:fffe".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limits.check_client(one).is_ok());
        assert!(limits.check_client(same_64).is_ok());
        assert!(limits.check_client(one).is_err(), "one /64, one bucket");
        assert!(limits.check_client(same_64).is_err());
        assert!(limits.check_client(other_64).is_ok());
        assert_eq!(
            bucket_of("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let limits = Limits::new(
            "r",
            Some(&RateLimitConfig {
                client_per_minute: 60,
                client_burst: 3,
                ..RateLimitConfig::default()
            }),
        );
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
