//! History's configuration: section `[history]` of the shared file, `SOUK_HISTORY__*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use souk_chassis::auth::AuthConfig;
use souk_chassis::client::{ClientConfig, ServiceTokenConfig};
use souk_chassis::events::EventsConfig;
use souk_chassis::{DatabaseConfig, HttpConfig};

/// Everything history can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`SOUK_HISTORY__LISTEN`).
    pub listen: SocketAddr,
    /// HTTP limits and timeouts (`SOUK_HISTORY__HTTP__*`).
    pub http: HttpConfig,
    /// Database (`SOUK_HISTORY__DATABASE__URL`): `sqlite://…` or `postgres://…`.
    pub database: DatabaseConfig,
    /// Where users' (and administrators') tokens are verified against (`SOUK_HISTORY__AUTH__*`).
    pub auth: AuthConfig,
    /// How events arrive (`SOUK_HISTORY__EVENTS__*`): the producers' feeds, or NATS.
    pub events: EventsConfig,
    /// Orders, whose feed (`GET /v1/events`) history reads with the feed transport.
    pub orders: ClientConfig,
    /// Payments, whose feed history reads with the feed transport.
    pub payments: ClientConfig,
    /// History's credentials at identity, for the service tokens the feeds want
    /// (`SOUK_HISTORY__SERVICE_TOKEN__CLIENT_SECRET`, …).
    pub service_token: ServiceTokenConfig,
    /// How the consumers retry and park events (`SOUK_HISTORY__CONSUMERS__*`).
    pub consumers: ConsumerConfig,
}

/// How history's event consumers behave (`[history.consumers]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// How many times an event that fails for a transient reason (the database away) is tried
    /// before it is parked as a dead letter.
    pub max_attempts: u32,
    /// The wait after the first failure, doubled per failure.
    pub retry_base_ms: u64,
    /// The longest wait between two tries.
    pub retry_max_ms: u64,
    /// How long one feed request waits for new events (keep it under the producers' request
    /// timeout).
    pub long_poll_ms: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            retry_base_ms: 100,
            retry_max_ms: 30_000,
            long_poll_ms: 5_000,
        }
    }
}

impl ConsumerConfig {
    /// The first wait after a failure.
    pub fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry_base_ms)
    }

    /// The longest wait after a failure.
    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms)
    }

    /// How long a feed request waits.
    pub fn long_poll(&self) -> Duration {
        Duration::from_millis(self.long_poll_ms)
    }
}

impl Default for Config {
    fn default() -> Self {
        let local = |port: u16| ClientConfig::with_url(format!("http://127.0.0.1:{port}"));
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8107)),
            http: HttpConfig::default(),
            database: DatabaseConfig::with_url("sqlite://.souk/history.db"),
            auth: AuthConfig {
                service_audience: "history".into(),
                ..AuthConfig::default()
            },
            events: EventsConfig::default(),
            orders: local(8105),
            payments: local(8106),
            service_token: ServiceTokenConfig {
                client_id: "history".into(),
                identity: local(8102),
                ..ServiceTokenConfig::default()
            },
            consumers: ConsumerConfig::default(),
        }
    }
}

impl Config {
    /// Checks what serde cannot: a message naming the key, or `Ok`.
    pub fn validate(&self) -> Result<(), String> {
        self.events.validate().map_err(|e| format!("history.{e}"))?;
        let consumers = &self.consumers;
        if consumers.max_attempts == 0 {
            return Err("history.consumers.max_attempts must be at least 1".into());
        }
        if consumers.retry_base_ms == 0 {
            return Err("history.consumers.retry_base_ms must be at least 1".into());
        }
        if consumers.retry_max_ms < consumers.retry_base_ms {
            return Err(
                "history.consumers.retry_max_ms must be at least consumers.retry_base_ms".into(),
            );
        }
        if !(1..=30_000).contains(&consumers.long_poll_ms) {
            return Err("history.consumers.long_poll_ms must be 1 to 30000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.listen.port(), 8107);
        assert_eq!(config.database.url.expose(), "sqlite://.souk/history.db");
        assert_eq!(config.auth.service_audience, "history");
        assert_eq!(config.orders.url, "http://127.0.0.1:8105");
        assert_eq!(config.payments.url, "http://127.0.0.1:8106");
        assert_eq!(config.service_token.client_id, "history");
        assert_eq!(config.service_token.identity.url, "http://127.0.0.1:8102");
        assert_eq!(config.consumers.max_attempts, 10);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn nonsense_is_refused_naming_the_key() {
        type Tweak = fn(&mut Config);
        let cases: [(Tweak, &str); 4] = [
            (|c| c.consumers.max_attempts = 0, "max_attempts"),
            (|c| c.consumers.retry_base_ms = 0, "retry_base_ms"),
            (|c| c.consumers.retry_max_ms = 1, "retry_max_ms"),
            (|c| c.consumers.long_poll_ms = 60_000, "long_poll_ms"),
        ];
        for (tweak, key) in cases {
            let mut config = Config::default();
            tweak(&mut config);
            let err = config.validate().unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }
}
