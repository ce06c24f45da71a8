//! The catalog's configuration: section `[catalog]` of the shared file, `SOUK_CATALOG__*` variables.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use souk_chassis::events::EventsConfig;
use souk_chassis::{DatabaseConfig, HttpConfig};

/// Everything the catalog can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`SOUK_CATALOG__LISTEN`).
    pub listen: SocketAddr,
    /// HTTP limits and timeouts (`SOUK_CATALOG__HTTP__*`).
    pub http: HttpConfig,
    /// Database (`SOUK_CATALOG__DATABASE__URL`): `sqlite://…` or `postgres://…`.
    pub database: DatabaseConfig,
    /// Load the demo catalog on start when the store holds no product (`SOUK_CATALOG__DEMO_DATA`).
    pub demo_data: bool,
    /// Where administrators' and services' tokens are verified against
    /// (`SOUK_CATALOG__AUTH__JWKS_URL`, …); the event feed wants service tokens addressed to
    /// `service_audience`, `catalog` by default.
    pub auth: souk_chassis::auth::AuthConfig,
    /// How product events leave the outbox (`SOUK_CATALOG__EVENTS__*`): the feed, or a relay to
    /// NATS.
    pub events: EventsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8101)),
            http: HttpConfig::default(),
            database: DatabaseConfig::with_url("sqlite://.souk/catalog.db"),
            demo_data: true,
            auth: souk_chassis::auth::AuthConfig {
                service_audience: crate::NAME.into(),
                ..souk_chassis::auth::AuthConfig::default()
            },
            events: EventsConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use souk_chassis::Env;
    use souk_chassis::events::Transport;
    use souk_chassis::service::Service as _;

    #[test]
    fn the_feed_is_the_default_and_nats_is_chosen_by_environment() {
        let config =
            crate::Service::load(&Env::from_pairs([("SOUK_CATALOG__DEMO_DATA", "true")])).unwrap();
        assert_eq!(config.events.transport, Transport::Feed);
        assert_eq!(config.auth.service_audience, "catalog");
        let config = crate::Service::load(&Env::from_pairs([
            ("SOUK_CATALOG__EVENTS__TRANSPORT", "nats"),
            ("SOUK_CATALOG__EVENTS__NATS__URL", "nats://n:4222"),
        ]))
        .unwrap();
        assert_eq!(config.events.transport, Transport::Nats);
        assert_eq!(config.events.nats.url, "nats://n:4222");
    }
}
