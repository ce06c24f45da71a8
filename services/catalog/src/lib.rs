//! souk's catalog service: products, categories, prices and full-text search.
//!
//! The catalog is the only source of prices in the shop. It owns its database (SQLite or
//! PostgreSQL) and depends on no other service. Every change an administrator makes to a product
//! is also an event (`events`), written to its outbox in the same transaction: served as an
//! internal feed, or relayed to NATS JetStream.

pub mod config;
pub mod domain;
pub mod events;
pub mod routes;
pub mod seed;
pub mod store;

use axum::Router;
use souk_chassis::events::{EventsConfig, Outbox, Transport};
use souk_chassis::service::{Running, Wiring};
use souk_chassis::{Health, Shutdown};

pub use config::Config;
pub use routes::{ApiDoc, AppState};
use seed::DemoCatalog;
pub use souk_chassis::service::StartError;
use store::Store;

/// The service's name: its config section, its log and metrics label.
pub const NAME: &str = "catalog";

/// A ready catalog: its whole router (API, events feed, health, metrics, standard stack), its
/// store and its outbox.
///
/// With `events.transport = "nats"`, the relay needs a shutdown signal to flush on: call
/// [`Catalog::spawn_relay`] (which [`run`] does).
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Everything the catalog serves.
    pub router: Router,
    /// Its store.
    pub store: Store,
    /// Its outbox of product events (served at `GET /v1/events`).
    pub outbox: Outbox,
    /// Its health, to mark it draining on shutdown.
    pub health: Health,
    events: EventsConfig,
}

impl Catalog {
    /// Starts the outbox relay to NATS when the config asks for that transport (the feed needs
    /// nothing); it flushes within the drain deadline at `shutdown`.
    pub fn spawn_relay(&self, shutdown: &Shutdown) {
        if self.events.transport == Transport::Nats {
            self.outbox
                .spawn_relay(self.events.nats.clone(), shutdown.clone());
        }
    }
}

/// Opens the store, loads the demo catalog if configured and empty, and builds the router.
pub async fn build(config: &Config) -> Result<Catalog, StartError> {
    config
        .events
        .validate()
        .map_err(|e| StartError::Invalid(format!("catalog.{e}")))?;
    let store = Store::open(&config.database).await?;
    if config.demo_data {
        let demo = DemoCatalog::bundled().map_err(StartError::setup)?;
        let added = store
            .seed_if_empty(&demo)
            .await
            .map_err(StartError::setup)?;
        if added > 0 {
            tracing::info!(products = added, "loaded the demo catalog");
        }
    }
    let health = Health::new().with_check(store.database().clone());
    let auth = souk_chassis::auth::AuthVerifier::new(config.auth.clone());
    auth.fetch_keys_in_background();
    let outbox = store.outbox().clone();
    outbox.spawn_retention(&config.events);
    let api = routes::app(AppState {
        store: store.clone(),
        auth: auth.clone(),
    })
    .merge(outbox.feed_router_with_auth(auth));
    let router = souk_chassis::http::service_router(api, health.clone(), &config.http);
    Ok(Catalog {
        router,
        store,
        outbox,
        health,
        events: config.events.clone(),
    })
}

/// The catalog, as the service skeleton runs it (`souk-catalog`, `souk serve catalog`, the
/// monolith).
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl souk_chassis::service::Service for Service {
    const NAME: &'static str = NAME;
    type Config = Config;
    const OPENAPI: Option<fn() -> String> = Some(ApiDoc::json);

    async fn start(config: Config, wiring: &Wiring) -> Result<Running, StartError> {
        let catalog = build(&config).await?;
        catalog.spawn_relay(wiring.shutdown());
        Ok(Running::new(catalog.router, catalog.health).closing(catalog.store.database().clone()))
    }
}

souk_chassis::service_config!(Config);
