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
use souk_chassis::events::{Consumer, Source};
use souk_chassis::{Health, Shutdown};

pub use config::{Config, StoreConfig};
pub use routes::{ApiDoc, AppState};
pub use souk_chassis::service::StartError;
use souk_chassis::service::{Running, Wiring};
use store::Store;

/// The service's name: its config section, its log and metrics label, its service audience.
pub const NAME: &str = "cart";

/// How often SQLite is swept for abandoned carts (Redis expires them by itself).
const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);

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
        return Err(StartError::Invalid(
            "cart.abandoned_after_days must be at least 1".into(),
        ));
    }
    config
        .events
        .validate()
        .map_err(|e| StartError::Invalid(format!("cart.{e}")))?;
    let store = Store::open(&config.store, config.abandoned_after())
        .await
        .map_err(StartError::setup)?;
    if matches!(store, Store::Sqlite(_)) {
        tokio::spawn(purge_abandoned(store.clone()));
    }
    let auth = souk_chassis::auth::AuthVerifier::new(config.auth.clone());
    auth.fetch_keys_in_background();
    let health = Health::new().with_check(store.clone());
    let api = routes::app(AppState {
        store: store.clone(),
        catalog: clients::Catalog::new(catalog, config.price_cache()),
        auth,
    });
    let router = souk_chassis::http::service_router(api, health.clone(), &config.http);
    Ok(Cart {
        router,
        store,
        health,
    })
}

/// The cart, as the service skeleton runs it (`souk-cart`, `souk serve cart`, the
/// monolith).
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl souk_chassis::service::Service for Service {
    const NAME: &'static str = NAME;
    type Config = Config;
    const OPENAPI: Option<fn() -> String> = Some(ApiDoc::json);

    async fn start(config: Config, wiring: &Wiring) -> Result<Running, StartError> {
        let cart = build_with(&config, wiring.client("catalog", &config.catalog)).await?;
        let orders = wiring.client("orders", &config.orders);
        let identity = wiring.client("identity", &config.service_token.identity);
        let order_events = cart
            .consume_order_events(&config, orders, identity, wiring.shutdown().clone())
            .await?;
        let running = Running::new(cart.router, cart.health).waiting_for(order_events);
        Ok(match &cart.store {
            Store::Sqlite(store) => running.closing(store.database().clone()),
            Store::Redis(_) => running,
        })
    }
}

souk_chassis::service_config!(Config);

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
