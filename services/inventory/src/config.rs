//! Inventory's configuration: section `[inventory]` of the shared file, `SOUK_INVENTORY__*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use souk_chassis::auth::AuthConfig;
use souk_chassis::client::{ClientConfig, ServiceTokenConfig};
use souk_chassis::events::EventsConfig;
use souk_chassis::{DatabaseConfig, HttpConfig};

/// Everything inventory can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`SOUK_INVENTORY__LISTEN`).
    pub listen: SocketAddr,
    /// HTTP limits and timeouts (`SOUK_INVENTORY__HTTP__*`).
    pub http: HttpConfig,
    /// Database (`SOUK_INVENTORY__DATABASE__URL`): `sqlite://…` or `postgres://…`.
    pub database: DatabaseConfig,
    /// Where administrators' and services' tokens are verified against (`SOUK_INVENTORY__AUTH__*`).
    /// `service_audience` is what service tokens for inventory's internal endpoints must carry.
    pub auth: AuthConfig,
    /// Give products found in the catalog their demo quantity (`data/demo-stock.json`) instead of
    /// 0 (`SOUK_INVENTORY__DEMO_STOCK`).
    pub demo_stock: bool,
    /// How long a reservation holds its units before the expiry loop gives them back
    /// (`SOUK_INVENTORY__RESERVATION_TTL_SECS`).
    pub reservation_ttl_secs: u64,
    /// How often the expiry loop looks for lapsed reservations; 0 turns it off
    /// (`SOUK_INVENTORY__EXPIRY_INTERVAL_MS`).
    pub expiry_interval_ms: u64,
    /// Where the catalog is: its product list and its product events' feed, an internal endpoint
    /// (`SOUK_INVENTORY__CATALOG__URL`, `…__TIMEOUT_MS`).
    pub catalog: ClientConfig,
    /// How often the whole product list is reconciled with what inventory knows; 0 turns the
    /// background sync off, the one at start included, and inventory is then not ready until
    /// [`crate::Inventory::sync_catalog`] is called (`SOUK_INVENTORY__CATALOG_SYNC_SECS`).
    pub catalog_sync_secs: u64,
    /// How orders' and the catalog's events arrive: their feeds (default) or NATS
    /// (`SOUK_INVENTORY__EVENTS__*`).
    pub events: EventsConfig,
    /// Where orders serves its event feed (`SOUK_INVENTORY__ORDERS__URL`).
    pub orders: ClientConfig,
    /// Inventory's credentials at identity, for the service tokens orders' and the catalog's feeds
    /// ask for
    /// (`SOUK_INVENTORY__SERVICE_TOKEN__CLIENT_SECRET`, …).
    pub service_token: ServiceTokenConfig,
    /// How long a reservation that reached its end (committed, released, expired — tombstones
    /// too) is kept, in days (`SOUK_INVENTORY__RESERVATIONS_KEEP_DAYS`): only the checkout saga
    /// reads it, and no saga calls that late. At least 1.
    pub reservations_keep_days: u64,
}

impl Config {
    /// How long a finished reservation is kept.
    pub fn reservations_keep(&self) -> Duration {
        Duration::from_secs(self.reservations_keep_days.saturating_mul(24 * 3600))
    }

    /// Checks what serde cannot: a message naming the key, or `Ok`.
    pub fn validate(&self) -> Result<(), String> {
        if self.reservations_keep_days == 0 {
            return Err("inventory.reservations_keep_days must be at least 1".into());
        }
        if self.reservations_keep() <= self.reservation_ttl() {
            return Err(
                "inventory.reservations_keep_days must outlast reservation_ttl_secs".into(),
            );
        }
        self.events.validate().map_err(|e| format!("inventory.{e}"))
    }

    /// How long a reservation holds its units.
    pub fn reservation_ttl(&self) -> Duration {
        Duration::from_secs(self.reservation_ttl_secs)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8103)),
            http: HttpConfig::default(),
            database: DatabaseConfig::with_url("sqlite://.souk/inventory.db"),
            auth: AuthConfig {
                service_audience: crate::NAME.into(),
                ..AuthConfig::default()
            },
            demo_stock: true,
            reservation_ttl_secs: 900,
            expiry_interval_ms: 1000,
            catalog: ClientConfig::with_url("http://127.0.0.1:8101"),
            catalog_sync_secs: 30,
            events: EventsConfig::default(),
            orders: ClientConfig::with_url("http://127.0.0.1:8105"),
            service_token: ServiceTokenConfig {
                client_id: crate::NAME.into(),
                identity: ClientConfig::with_url("http://127.0.0.1:8102"),
                ..ServiceTokenConfig::default()
            },
            reservations_keep_days: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use souk_chassis::Env;
    use souk_chassis::service::Service as _;

    #[test]
    fn defaults_and_environment_layer() {
        let config = crate::Service::load(&Env::from_pairs([
            ("SOUK_INVENTORY__CATALOG__URL", "http://127.0.0.1:8101"),
            ("SOUK_INVENTORY__RESERVATION_TTL_SECS", "60"),
            ("SOUK_INVENTORY__DEMO_STOCK", "false"),
        ]))
        .unwrap();
        assert_eq!(config.catalog.url, "http://127.0.0.1:8101");
        assert_eq!(config.reservation_ttl(), Duration::from_secs(60));
        assert!(!config.demo_stock);
        assert_eq!(config.auth.service_audience, "inventory");
        assert_eq!(config.listen.port(), 8103);
        assert_eq!(config.catalog_sync_secs, 30);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = crate::Service::load(&Env::from_pairs([("SOUK_INVENTORY__STOK", "1")]));
        assert!(err.is_err());
    }
}
