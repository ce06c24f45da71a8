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
use souk_chassis::Health;

pub use config::Config;
pub use routes::App;
pub use souk_chassis::service::StartError;
use souk_chassis::service::{Running, Wiring};

/// The service's name: its config section, its log and metrics label.
pub const NAME: &str = "storefront";

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

/// The storefront, as the service skeleton runs it (`souk-storefront`, `souk serve storefront`, the
/// monolith).
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl souk_chassis::service::Service for Service {
    const NAME: &'static str = NAME;
    type Config = Config;

    async fn start(config: Config, _wiring: &Wiring) -> Result<Running, StartError> {
        let storefront = build(&config)?;
        Ok(Running::new(storefront.router, storefront.health))
    }
}

souk_chassis::service_config!(Config);
