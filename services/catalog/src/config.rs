//! The catalog's configuration: section `[catalog]` of the shared file, `SOUK_CATALOG__*` variables.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
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
    /// Where administrators' tokens are verified against (`SOUK_CATALOG__AUTH__JWKS_URL`, …).
    pub auth: souk_chassis::auth::AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8101)),
            http: HttpConfig::default(),
            database: DatabaseConfig::with_url("sqlite://.souk/catalog.db"),
            demo_data: true,
            auth: souk_chassis::auth::AuthConfig::default(),
        }
    }
}
