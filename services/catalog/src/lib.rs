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
use souk_chassis::config::ConfigError;
use souk_chassis::db::DbError;
use souk_chassis::events::{EventsConfig, Outbox, Transport};
use souk_chassis::{Env, Health, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
pub use routes::{ApiDoc, AppState};
use seed::{DemoCatalog, SeedError};
use store::{Store, StoreError};

/// The service's name: its config section, its log and metrics label.
pub const NAME: &str = "catalog";

/// Why the catalog could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The demo catalog is invalid.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// The demo catalog could not be stored.
    #[error("cannot load the demo catalog")]
    Store(#[from] StoreError),
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

/// Reads the catalog's config: defaults < `SOUK_CONFIG` file < `SOUK_CATALOG__*` variables.
pub fn load_config(env: &Env) -> Result<Config, ConfigError> {
    souk_chassis::config::load(NAME, env.config_file().as_deref(), env)
}

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
    let store = Store::open(&config.database).await?;
    if config.demo_data {
        let added = store.seed_if_empty(&DemoCatalog::bundled()?).await?;
        if added > 0 {
            tracing::info!(products = added, "loaded the demo catalog");
        }
    }
    let health = Health::new().with_check(store.database().clone());
    let auth = souk_chassis::auth::AuthVerifier::new(config.auth.clone());
    let outbox = store.outbox().clone();
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

/// Serves the catalog on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let catalog = build(config).await?;
    catalog.spawn_relay(&shutdown);
    catalog.health.drain_on(&shutdown);
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, engine = catalog.store.database().engine(), "catalog listening");
    souk_chassis::serve(listener, catalog.router, shutdown)
        .await
        .map_err(StartError::Serve)?;
    catalog.store.database().close().await;
    Ok(())
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
