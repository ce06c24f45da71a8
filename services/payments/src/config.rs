//! Payments' configuration: section `[payments]` of the shared file, `SOUK_PAYMENTS__*` variables.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use souk_chassis::auth::AuthConfig;
use souk_chassis::events::EventsConfig;
use souk_chassis::{DatabaseConfig, HttpConfig};

use crate::processor::ProcessorConfig;

/// Everything payments can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`SOUK_PAYMENTS__LISTEN`).
    pub listen: SocketAddr,
    /// HTTP limits and timeouts (`SOUK_PAYMENTS__HTTP__*`).
    pub http: HttpConfig,
    /// Database (`SOUK_PAYMENTS__DATABASE__URL`): `sqlite://…` or `postgres://…`.
    pub database: DatabaseConfig,
    /// Where users' and services' tokens are verified against (`SOUK_PAYMENTS__AUTH__*`). Service
    /// tokens must be addressed to `service_audience`, `payments` by default.
    pub auth: AuthConfig,
    /// How the simulated card processor behaves (`SOUK_PAYMENTS__PROCESSOR__*`).
    pub processor: ProcessorConfig,
    /// How events leave the outbox (`SOUK_PAYMENTS__EVENTS__*`): the feed, or a relay to NATS.
    pub events: EventsConfig,
    /// How long a pending charge belongs to the attempt that started it, by the database's clock
    /// (`SOUK_PAYMENTS__CHARGE_LEASE_MS`); then another request may take it over. At least one
    /// request timeout: the standard stack drops a handler after that.
    pub charge_lease_ms: u64,
    /// How often cancelled orders are checked for a capture that landed after they were
    /// cancelled (`SOUK_PAYMENTS__LATE_CAPTURE_SWEEP_MS`); 0 turns the sweep off.
    pub late_capture_sweep_ms: u64,
    /// For how long after it was cancelled an order is checked so
    /// (`SOUK_PAYMENTS__LATE_CAPTURE_WINDOW_HOURS`).
    pub late_capture_window_hours: u64,
    /// How long a cancelled order's payment (a tombstone: refused any later charge) is kept, in
    /// days (`SOUK_PAYMENTS__TOMBSTONES_KEEP_DAYS`); at least the late-capture window. Captured,
    /// declined and refunded payments are records, and stay.
    pub tombstones_keep_days: u64,
    /// The services that may charge, refund and read payments (`/v1/payments…`), by client id;
    /// from the environment as a comma-separated list (`SOUK_PAYMENTS__CALLERS=orders`). Any
    /// other service's token is a 403 there, whatever its audience. Event feed readers need
    /// only a token narrowed to `events:read`.
    #[serde(deserialize_with = "souk_chassis::config::list_or_commas")]
    pub callers: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8106)),
            http: HttpConfig::default(),
            database: DatabaseConfig::with_url("sqlite://.souk/payments.db"),
            auth: AuthConfig {
                service_audience: "payments".into(),
                ..AuthConfig::default()
            },
            processor: ProcessorConfig::default(),
            events: EventsConfig::default(),
            charge_lease_ms: 30_000,
            late_capture_sweep_ms: 60_000,
            late_capture_window_hours: 24,
            tombstones_keep_days: 30,
            callers: vec!["orders".into()],
        }
    }
}

impl Config {
    /// Checks what serde cannot: a message naming the key, or `Ok`.
    pub fn validate(&self) -> Result<(), String> {
        if self.processor.failure_percent > 100 {
            return Err(format!(
                "payments.processor.failure_percent must be 0 to 100 (got {})",
                self.processor.failure_percent
            ));
        }
        if self.charge_lease_ms < self.http.request_timeout_ms {
            return Err(format!(
                "payments.charge_lease_ms ({}) must be at least http.request_timeout_ms ({})",
                self.charge_lease_ms, self.http.request_timeout_ms
            ));
        }
        if self.late_capture_window_hours == 0 {
            return Err("payments.late_capture_window_hours must be at least 1".into());
        }
        if self.tombstones_keep_days.saturating_mul(24) < self.late_capture_window_hours {
            return Err(
                "payments.tombstones_keep_days must cover late_capture_window_hours".into(),
            );
        }
        self.events.validate().map_err(|e| format!("payments.{e}"))
    }

    /// How long a pending charge belongs to the attempt that started it.
    pub fn charge_lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.charge_lease_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_ones() {
        let config = Config::default();
        assert_eq!(config.listen.port(), 8106);
        assert_eq!(config.auth.service_audience, "payments");
        assert_eq!(config.database.url.expose(), "sqlite://.souk/payments.db");
        assert_eq!(config.processor, ProcessorConfig::default());
        assert_eq!(
            config.events.transport,
            souk_chassis::events::Transport::Feed
        );
        assert!(config.validate().is_ok());
    }

    #[test]
    fn failure_percent_above_100_is_refused() {
        let mut config = Config::default();
        config.processor.failure_percent = 101;
        assert!(config.validate().unwrap_err().contains("failure_percent"));
    }
}
