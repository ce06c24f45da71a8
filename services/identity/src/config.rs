//! Identity's configuration: section `[identity]` of the shared file, `SOUK_IDENTITY__*` variables.
//! The first administrator comes from `SOUK_ADMIN_EMAIL` and `SOUK_ADMIN_PASSWORD`; the secret
//! that seals the signing keys from `key_secret` or `key_file`, never from the database.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use souk_chassis::{DatabaseConfig, HttpConfig};

/// Everything identity can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// HTTP limits and timeouts.
    pub http: HttpConfig,
    /// Database: `sqlite://…` or `postgres://…`.
    pub database: DatabaseConfig,
    /// `iss` of every token.
    pub issuer: String,
    /// `aud` of user access tokens.
    pub audience: String,
    /// Lifetime of an access token, in seconds.
    pub access_ttl_secs: i64,
    /// Lifetime of a refresh token (and so of a login), in seconds.
    pub refresh_ttl_secs: i64,
    /// Login attempts one account may make in a burst before it is throttled…
    pub login_burst: u32,
    /// …and how many more per minute after that.
    pub login_per_minute: u32,
    /// Password hashes computed at once (0: one per core), which bounds the CPU a flood can take.
    pub hashing_concurrency: usize,
    /// Of those, hashes for strangers — sign-ins to unknown accounts, and sign-ups — computed at
    /// once (0: half of `hashing_concurrency`, at least one): however many addresses a flood
    /// comes from, it gets this many cores and no more.
    pub stranger_hashing_concurrency: usize,
    /// Strangers waiting for a hash beyond those; more are answered 429 at once.
    pub stranger_hashing_queue: usize,
    /// The secret that seals the signing keys in the store (32+ characters; from a Secret in a
    /// deployment: `SOUK_IDENTITY__KEY_SECRET`). Empty: the secret is read from `key_file`.
    pub key_secret: souk_chassis::Secret,
    /// A file holding that secret, made (`0600`, 32 random bytes) when missing.
    pub key_file: String,
    /// How often refresh tokens of ended logins are deleted, in seconds.
    pub purge_interval_secs: u64,
    /// Services that may ask for service tokens, by client id (`[identity.services.orders]`).
    pub services: std::collections::BTreeMap<String, ServiceClient>,
    /// Lifetime of a service token, in seconds.
    pub service_ttl_secs: i64,
    /// The first administrator, from `SOUK_ADMIN_EMAIL` and `SOUK_ADMIN_PASSWORD` only: never
    /// read from a file, never written out.
    #[serde(skip)]
    pub admin: Option<crate::AdminAccount>,
}

/// A service allowed to call other services' internal endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceClient {
    /// Its secret (`SOUK_IDENTITY__SERVICES__ORDERS__SECRET`); never logged.
    pub secret: souk_chassis::Secret,
    /// The services it may call (token audiences), e.g. `["inventory", "payments"]`; from the
    /// environment as a comma-separated list (`SOUK_IDENTITY__SERVICES__ORDERS__AUDIENCES=inventory,payments`).
    #[serde(deserialize_with = "souk_chassis::config::list_or_commas")]
    pub audiences: Vec<String>,
    /// The services whose event feed it may read, and nothing else there: tokens for these carry
    /// `scope: "events:read"`, which every internal endpoint but the feed refuses (history reads
    /// payments' feed and cannot charge). Same forms as `audiences`.
    #[serde(deserialize_with = "souk_chassis::config::list_or_commas")]
    pub feeds: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8102)),
            http: HttpConfig::default(),
            database: DatabaseConfig::with_url("sqlite://.souk/identity.db"),
            issuer: "souk-identity".into(),
            audience: "souk".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            login_burst: 10,
            login_per_minute: 6,
            hashing_concurrency: 0,
            stranger_hashing_concurrency: 0,
            stranger_hashing_queue: 64,
            key_secret: souk_chassis::Secret::default(),
            key_file: ".souk/identity.key".into(),
            purge_interval_secs: 3600,
            services: std::collections::BTreeMap::new(),
            service_ttl_secs: 300,
            admin: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_audiences_come_as_a_list_or_as_commas() {
        let env = souk_chassis::Env::from_pairs([
            ("SOUK_IDENTITY__SERVICES__ORDERS__SECRET", "s3cret-s3cret"),
            (
                "SOUK_IDENTITY__SERVICES__ORDERS__AUDIENCES",
                "inventory, payments",
            ),
        ]);
        let config: Config = souk_chassis::config::load("identity", None, &env).unwrap();
        assert_eq!(
            config.services["orders"].audiences,
            ["inventory", "payments"]
        );
        let listed: ServiceClient =
            serde_json::from_str(r#"{"secret": "x", "audiences": ["cart"]}"#).unwrap();
        assert_eq!(listed.audiences, ["cart"]);
    }
}
