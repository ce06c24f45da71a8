//! souk's cart service: one cart per user, priced from the catalog on every read.
//!
//! The cart stores products and quantities only, never a price: every answer asks the catalog
//! (through a short cache) and still answers, flagged as degraded, when the catalog cannot. Carts
//! live in SQLite (embedded default) or Redis, chosen by the store URL.

pub mod clients;
pub mod config;
pub mod domain;
pub mod order_events;
pub mod routes;
pub mod store;

use std::time::Duration;

use axum::Router;
use souk_chassis::client::{ServiceClient, ServiceTokens};
use souk_chassis::config::ConfigError;
use souk_chassis::events::{Consumer, Source};
use souk_chassis::{Env, Health, Shutdown};
use tokio::net::TcpListener;

pub use config::{Config, StoreConfig};
pub use routes::{ApiDoc, AppState};
use store::{OpenError, Store};

/// The service's name: its config section, its log and metrics label, its service audience.
pub const NAME: &str = "cart";

/// How often SQLite is swept for abandoned carts (Redis expires them by itself).
const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Why the cart could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting is out of range.
    #[error("cart.{key} {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The event settings make no sense.
    #[error("invalid configuration: {0}")]
    Events(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// The event bookkeeping database could not be opened or migrated.
    #[error("cannot open the events database")]
    EventsDatabase(#[from] souk_chassis::db::DbError),
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

/// Reads the cart's config: defaults < `SOUK_CONFIG` file < `SOUK_CART__*` variables.
pub fn load_config(env: &Env) -> Result<Config, ConfigError> {
    souk_chassis::config::load(NAME, env.config_file().as_deref(), env)
}

/// A ready cart: its whole router (API, health, metrics, standard stack) and its store.
#[derive(Debug, Clone)]
pub struct Cart {
    /// Everything the cart serves.
    pub router: Router,
    /// Its store.
    pub store: Store,
    /// Its health, to mark it draining on shutdown.
    pub health: Health,
}

impl Cart {
    /// Starts consuming orders' events until `shutdown`: a confirmed order's products leave the
    /// buyer's cart. `orders` serves the feed (or NATS carries the events, per `config.events`);
    /// `identity` issues the service token the feed asks for. The event bookkeeping lives in
    /// `config.events_database`.
    pub async fn consume_order_events(
        &self,
        config: &Config,
        orders: ServiceClient,
        identity: ServiceClient,
        shutdown: Shutdown,
    ) -> Result<tokio::task::JoinHandle<()>, StartError> {
        let db = souk_chassis::Database::connect(&config.events_database).await?;
        db.migrate(&store::EVENTS_MIGRATIONS).await?;
        let tokens = ServiceTokens::new(identity, &config.service_token);
        let source = Source::from_config(&config.events, orders);
        let settings = &config.consumers;
        Ok(Consumer::new(order_events::CONSUMER, "orders", source, db)
            .retention(config.events.retention.clone())
            .max_attempts(settings.max_attempts)
            .backoff(
                Duration::from_millis(settings.retry_base_ms),
                Duration::from_millis(settings.retry_max_ms),
            )
            .with_bearer(move || {
                let tokens = tokens.clone();
                async move { tokens.feed_token("orders").await.ok() }
            })
            .spawn(order_events::OrderEvents::new(self.store.clone()), shutdown))
    }
}

/// Opens the store and builds the router, calling the catalog over HTTP at `config.catalog.url`.
pub async fn build(config: &Config) -> Result<Cart, StartError> {
    build_with(config, ServiceClient::http("catalog", &config.catalog)).await
}

/// Like [`build`], calling the catalog through `catalog` instead: in `souk monolith`,
/// `ServiceClient::in_process("catalog", catalog_router, timeout)`.
pub async fn build_with(config: &Config, catalog: ServiceClient) -> Result<Cart, StartError> {
    if config.abandoned_after_days == 0 {
        return Err(StartError::Invalid {
            key: "abandoned_after_days",
            reason: "must be at least 1",
        });
    }
    config
        .events
        .validate()
        .map_err(|e| StartError::Events(format!("cart.{e}")))?;
    let store = Store::open(&config.store, config.abandoned_after()).await?;
    if matches!(store, Store::Sqlite(_)) {
        tokio::spawn(purge_abandoned(store.clone()));
    }
    let health = Health::new().with_check(store.clone());
    let api = routes::app(AppState {
        store: store.clone(),
        catalog: clients::Catalog::new(catalog, config.price_cache()),
        auth: souk_chassis::auth::AuthVerifier::new(config.auth.clone()),
    });
    let router = souk_chassis::http::service_router(api, health.clone(), &config.http);
    Ok(Cart {
        router,
        store,
        health,
    })
}

/// Serves the cart on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let cart = build(config).await?;
    cart.consume_order_events(
        config,
        ServiceClient::http("orders", &config.orders),
        ServiceClient::http("identity", &config.service_token.identity),
        shutdown.clone(),
    )
    .await?;
    cart.health.drain_on(&shutdown);
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, engine = cart.store.engine(), "cart listening");
    souk_chassis::serve(listener, cart.router, shutdown)
        .await
        .map_err(StartError::Serve)?;
    cart.store.close().await;
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

/// Sweeps abandoned carts now and every [`PURGE_EVERY`], until the store is closed.
async fn purge_abandoned(store: Store) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        every.tick().await;
        match store.purge_abandoned().await {
            Ok(0) => {}
            Ok(carts) => tracing::info!(carts, "purged abandoned carts"),
            Err(store::StoreError::Database(sqlx::Error::PoolClosed)) => return,
            Err(err) => {
                tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot purge abandoned carts");
            }
        }
    }
}
