//! The cart's configuration: section `[cart]` of the shared file, `SOUK_CART__*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use souk_chassis::auth::AuthConfig;
use souk_chassis::client::{ClientConfig, ServiceTokenConfig};
use souk_chassis::events::EventsConfig;
use souk_chassis::{DatabaseConfig, HttpConfig, Secret};

/// Everything the cart can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`SOUK_CART__LISTEN`).
    pub listen: SocketAddr,
    /// HTTP limits and timeouts (`SOUK_CART__HTTP__*`).
    pub http: HttpConfig,
    /// Where carts are kept (`SOUK_CART__STORE__*`): SQLite or Redis, chosen by the URL's scheme.
    pub store: StoreConfig,
    /// Where callers' tokens are verified against (`SOUK_CART__AUTH__*`).
    pub auth: AuthConfig,
    /// Where the catalog answers for prices (`SOUK_CART__CATALOG__URL`, `…__TIMEOUT_MS`).
    pub catalog: ClientConfig,
    /// How long a catalog answer about one product (found or not) is reused, in milliseconds
    /// (`SOUK_CART__PRICE_CACHE_MS`). An outage is never cached.
    pub price_cache_ms: u64,
    /// Days after its last change that a cart is forgotten (`SOUK_CART__ABANDONED_AFTER_DAYS`):
    /// a TTL on Redis, a periodic purge on SQLite.
    pub abandoned_after_days: u32,
    /// How orders' events arrive: their feed (default) or NATS (`SOUK_CART__EVENTS__*`).
    pub events: EventsConfig,
    /// Where the cart keeps its event bookkeeping (offset, inbox, dead letters): SQL, whichever
    /// store holds the carts (`SOUK_CART__EVENTS_DATABASE__URL`, SQLite or PostgreSQL).
    pub events_database: DatabaseConfig,
    /// Where orders serves its event feed (`SOUK_CART__ORDERS__URL`).
    pub orders: ClientConfig,
    /// The cart's credentials at identity, for the service token orders' feed asks for
    /// (`SOUK_CART__SERVICE_TOKEN__CLIENT_SECRET`, …).
    pub service_token: ServiceTokenConfig,
    /// How the consumer of orders' events retries and parks (`SOUK_CART__CONSUMERS__*`).
    pub consumers: ConsumerConfig,
}

/// How the cart's event consumer behaves (`[cart.consumers]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// How many times an event that fails for a reason that may pass is tried before it is
    /// parked as a dead letter. A cart store that cannot be reached is waited out instead,
    /// however long: it never parks an event.
    pub max_attempts: u32,
    /// The wait after the first failure, doubled per failure.
    pub retry_base_ms: u64,
    /// The longest wait between two tries.
    pub retry_max_ms: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            retry_base_ms: 100,
            retry_max_ms: 30_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8104)),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            auth: AuthConfig {
                service_audience: crate::NAME.to_owned(),
                ..AuthConfig::default()
            },
            catalog: ClientConfig::default(),
            price_cache_ms: 5_000,
            abandoned_after_days: 30,
            events: EventsConfig::default(),
            events_database: DatabaseConfig::with_url("sqlite://.souk/cart-events.db"),
            orders: ClientConfig::with_url("http://127.0.0.1:8105"),
            service_token: ServiceTokenConfig {
                client_id: crate::NAME.into(),
                identity: ClientConfig::with_url("http://127.0.0.1:8102"),
                ..ServiceTokenConfig::default()
            },
            consumers: ConsumerConfig::default(),
        }
    }
}

impl Config {
    /// How long a catalog answer is reused.
    pub fn price_cache(&self) -> Duration {
        Duration::from_millis(self.price_cache_ms)
    }

    /// How long an untouched cart is kept.
    pub fn abandoned_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.abandoned_after_days) * 24 * 60 * 60)
    }
}

/// The cart store (`[cart.store]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/to/cart.db` (created if missing) or `redis://host:port/db`.
    pub url: Secret,
    /// SQLite only: upper bound on pooled connections.
    pub max_connections: u32,
    /// SQLite only: how long a request waits for a pooled connection before failing.
    pub acquire_timeout_ms: u64,
    /// Redis only: prefix of every key, followed by the user id (`souk:cart:<user id>`).
    pub key_prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let database = DatabaseConfig::default();
        Self {
            url: Secret::new("sqlite://.souk/cart.db"),
            max_connections: database.max_connections,
            acquire_timeout_ms: database.acquire_timeout_ms,
            key_prefix: "souk:cart:".to_owned(),
        }
    }
}

impl StoreConfig {
    /// A config for `url` with the other settings at their defaults.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url),
            ..Self::default()
        }
    }

    /// The SQLite pool settings these stand for.
    pub fn database(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.url.clone(),
            max_connections: self.max_connections,
            acquire_timeout_ms: self.acquire_timeout_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use souk_chassis::Env;
    use souk_chassis::service::Service as _;

    #[test]
    fn defaults_then_environment() {
        let config = crate::Service::load(&Env::from_pairs([] as [(&str, &str); 0])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.port(), 8104);
        assert_eq!(config.auth.service_audience, "cart");
        assert_eq!(config.catalog.url, "http://127.0.0.1:8080/api");
        let env = Env::from_pairs([
            ("SOUK_CART__STORE__URL", "redis://127.0.0.1:6379/0"),
            ("SOUK_CART__STORE__KEY_PREFIX", "shop:cart:"),
            ("SOUK_CART__CATALOG__URL", "http://127.0.0.1:8101"),
            ("SOUK_CART__PRICE_CACHE_MS", "250"),
            ("SOUK_CART__ABANDONED_AFTER_DAYS", "7"),
        ]);
        let config = crate::Service::load(&env).unwrap();
        assert_eq!(config.store.url.expose(), "redis://127.0.0.1:6379/0");
        assert_eq!(config.store.key_prefix, "shop:cart:");
        assert_eq!(config.catalog.url, "http://127.0.0.1:8101");
        assert_eq!(config.price_cache(), Duration::from_millis(250));
        assert_eq!(config.abandoned_after(), Duration::from_secs(7 * 86_400));
    }
}
