//! souk's storefront: the web shop, as server-rendered HTML.
//!
//! The storefront owns no data. It is a client of the gateway's public API (`/api/v1/…`) like any
//! other — it never calls a service directly — and the gateway sends it every path outside
//! `/api`. Pages are askama templates checked at compile time, styled by one hand-written
//! stylesheet it serves itself, with no script and nothing fetched from another host. Sessions
//! are the identity tokens in `HttpOnly` cookies; every form carries a signed CSRF token.

pub mod config;
pub mod csrf;
pub mod gateway;
pub mod pages;
pub mod routes;
pub mod session;

use std::sync::{Arc, Mutex};

use axum::Router;
use souk_chassis::config::ConfigError;
use souk_chassis::{Env, Health, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
pub use routes::App;

/// The service's name: its config section, its log and metrics label.
pub const NAME: &str = "storefront";

/// Why the storefront could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Configuration was read but makes no sense.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
}

/// Reads the storefront's config: defaults < `SOUK_CONFIG` file < `SOUK_STOREFRONT__*` variables.
pub fn load_config(env: &Env) -> Result<Config, ConfigError> {
    souk_chassis::config::load(NAME, env.config_file().as_deref(), env)
}

/// A ready storefront: its whole router (pages, health, metrics, standard stack) and its health.
#[derive(Debug, Clone)]
pub struct Storefront {
    /// Everything the storefront serves.
    pub router: Router,
    /// Its health, to mark it draining on shutdown.
    pub health: Health,
}

/// Builds the storefront for `config`. Its readiness does not depend on the gateway: a shop
/// whose API is down still serves its pages (each saying what is unavailable).
pub fn build(config: &Config) -> Result<Storefront, StartError> {
    config.validate().map_err(StartError::Invalid)?;
    let app = App {
        gateway: gateway::Gateway::new(&config.gateway, config.source_ip),
        csrf: csrf::Key::new(config.csrf_secret.expose()),
        settings: Arc::new(routes::Settings {
            trusted_proxies: config.trusted_proxies.clone(),
            secure_cookies: config.secure_cookies,
            page_size: config.page_size,
        }),
        cards: Arc::new(Mutex::new(routes::CardsByKey::default())),
    };
    let health = Health::new();
    let router = souk_chassis::http::service_router(routes::app(app), health.clone(), &config.http);
    Ok(Storefront { router, health })
}

/// Serves the storefront on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let storefront = build(config)?;
    storefront.health.drain_on(&shutdown);
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, gateway = %config.gateway.url, "storefront listening");
    souk_chassis::serve(listener, storefront.router, shutdown)
        .await
        .map_err(StartError::Serve)
}

/// Loads config from `env`, binds the configured address, and serves until SIGTERM or Ctrl-C.
pub async fn serve_from_env(env: &Env) -> Result<(), StartError> {
    let config = load_config(env)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let shutdown = Shutdown::on_os_signals(config.http.drain_timeout());
    run(&config, listener, shutdown).await
}
