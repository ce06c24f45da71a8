//! Orders' configuration: section `[orders]` of the shared file, `SOUK_ORDERS__*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use souk_chassis::auth::AuthConfig;
use souk_chassis::client::{ClientConfig, ServiceTokenConfig};
use souk_chassis::events::EventsConfig;
use souk_chassis::{DatabaseConfig, HttpConfig};

/// Everything orders can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`SOUK_ORDERS__LISTEN`).
    pub listen: SocketAddr,
    /// HTTP limits and timeouts (`SOUK_ORDERS__HTTP__*`).
    pub http: HttpConfig,
    /// Database (`SOUK_ORDERS__DATABASE__URL`): `sqlite://…` or `postgres://…`.
    pub database: DatabaseConfig,
    /// Where users' tokens are verified against (`SOUK_ORDERS__AUTH__*`).
    pub auth: AuthConfig,
    /// Orders' credentials at identity, for service tokens to inventory and payments
    /// (`SOUK_ORDERS__SERVICE_TOKEN__CLIENT_SECRET`, …).
    pub service_token: ServiceTokenConfig,
    /// The cart: the caller's cart is read with the caller's own token.
    pub cart: ClientConfig,
    /// The catalog: every line is priced here, never from the cart or the client.
    pub catalog: ClientConfig,
    /// Inventory's internal reservation endpoints (service tokens).
    pub inventory: ClientConfig,
    /// Payments: the caller's payment method (their token), charges and refunds (service tokens).
    pub payments: ClientConfig,
    /// How events leave the outbox (`SOUK_ORDERS__EVENTS__*`).
    pub events: EventsConfig,
    /// The checkout saga's timing (`SOUK_ORDERS__SAGA__*`).
    pub saga: SagaConfig,
    /// How long an `Idempotency-Key` is remembered, in hours (at least 24).
    pub idempotency_keep_hours: u64,
    /// The prefix under which clients reach orders through the gateway, for `Location` headers.
    pub public_prefix: String,
}

/// The checkout saga's timing (`[orders.saga]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SagaConfig {
    /// How long reserving and charging may keep failing before the order is given up and
    /// compensated (counted from the order's placement).
    pub deadline_secs: u64,
    /// First retry delay of a failed step; doubled per attempt, with full jitter.
    pub retry_base_ms: u64,
    /// Largest retry delay.
    pub retry_max_ms: u64,
    /// How often unfinished sagas are looked for (new orders wake the loop at once).
    pub recovery_interval_ms: u64,
    /// How long an instance owns a saga it works on; another instance takes over after it lapses.
    pub lease_ms: u64,
    /// Most sagas one instance advances at once.
    pub concurrency: usize,
}

impl Default for SagaConfig {
    fn default() -> Self {
        Self {
            deadline_secs: 60,
            retry_base_ms: 100,
            retry_max_ms: 5000,
            recovery_interval_ms: 500,
            lease_ms: 10_000,
            concurrency: 32,
        }
    }
}

impl SagaConfig {
    /// The deadline of reserving and charging.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.deadline_secs)
    }

    /// How long a claim on a saga lasts.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// How often the recovery loop looks for sagas.
    pub fn recovery_interval(&self) -> Duration {
        Duration::from_millis(self.recovery_interval_ms)
    }
}

impl Default for Config {
    fn default() -> Self {
        let local = |port: u16| ClientConfig::with_url(format!("http://127.0.0.1:{port}"));
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8105)),
            http: HttpConfig::default(),
            database: DatabaseConfig::with_url("sqlite://.souk/orders.db"),
            auth: AuthConfig {
                service_audience: "orders".into(),
                ..AuthConfig::default()
            },
            service_token: ServiceTokenConfig {
                client_id: "orders".into(),
                identity: local(8102),
                ..ServiceTokenConfig::default()
            },
            cart: local(8104),
            catalog: local(8101),
            inventory: local(8103),
            payments: local(8106),
            events: EventsConfig::default(),
            saga: SagaConfig::default(),
            idempotency_keep_hours: 24,
            public_prefix: "/api".into(),
        }
    }
}

impl Config {
    /// Checks what serde cannot: a message naming the key, or `Ok`.
    pub fn validate(&self) -> Result<(), String> {
        self.events.validate().map_err(|e| format!("orders.{e}"))?;
        let saga = &self.saga;
        let positive = [
            ("saga.deadline_secs", saga.deadline_secs),
            ("saga.retry_base_ms", saga.retry_base_ms),
            ("saga.recovery_interval_ms", saga.recovery_interval_ms),
            ("saga.concurrency", saga.concurrency as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("orders.{key} must be at least 1"));
        }
        if saga.retry_max_ms < saga.retry_base_ms {
            return Err("orders.saga.retry_max_ms must be at least saga.retry_base_ms".into());
        }
        // A step's remote call (a service token from identity, then the call itself) must end
        // while its lease holds, or another instance could run the same step at the same time.
        let call = self.saga_call_ms();
        if saga.lease_ms <= call {
            return Err(format!(
                "orders.saga.lease_ms must exceed the longest saga call ({call} ms: identity's timeout plus inventory's or payments')"
            ));
        }
        if self.idempotency_keep_hours < 24 {
            return Err("orders.idempotency_keep_hours must be at least 24".into());
        }
        let prefix = &self.public_prefix;
        if !prefix.is_empty() && (!prefix.starts_with('/') || prefix.ends_with('/')) {
            return Err(
                "orders.public_prefix must be empty or start with / and not end with one".into(),
            );
        }
        Ok(())
    }

    /// The longest a saga step's remote call can take, in milliseconds: a service token from
    /// identity, then the call to inventory or payments, each at its client's timeout.
    pub fn saga_call_ms(&self) -> u64 {
        self.service_token.identity.timeout_ms
            + self.inventory.timeout_ms.max(self.payments.timeout_ms)
    }

    /// How long idempotency keys are kept.
    pub fn idempotency_keep(&self) -> Duration {
        Duration::from_secs(self.idempotency_keep_hours.saturating_mul(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.listen.port(), 8105);
        assert_eq!(config.auth.service_audience, "orders");
        assert_eq!(config.service_token.client_id, "orders");
        assert_eq!(config.service_token.identity.url, "http://127.0.0.1:8102");
        assert_eq!(config.cart.url, "http://127.0.0.1:8104");
        assert_eq!(config.catalog.url, "http://127.0.0.1:8101");
        assert_eq!(config.inventory.url, "http://127.0.0.1:8103");
        assert_eq!(config.payments.url, "http://127.0.0.1:8106");
        assert_eq!(config.database.url.expose(), "sqlite://.souk/orders.db");
        assert_eq!(config.saga.deadline_secs, 60);
        assert_eq!(config.public_prefix, "/api");
        assert!(config.validate().is_ok());
    }

    #[test]
    fn nonsense_is_refused_naming_the_key() {
        type Tweak = fn(&mut Config);
        let cases: [(Tweak, &str); 5] = [
            (|c| c.saga.retry_base_ms = 0, "retry_base_ms"),
            (|c| c.saga.retry_max_ms = 10, "retry_max_ms"),
            (|c| c.saga.lease_ms = 3000, "lease_ms"),
            (|c| c.idempotency_keep_hours = 1, "idempotency_keep_hours"),
            (|c| c.public_prefix = "api/".into(), "public_prefix"),
        ];
        for (tweak, key) in cases {
            let mut config = Config::default();
            tweak(&mut config);
            let err = config.validate().unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }
}
