//! souk's inventory service: stock per product and reservations per order.
//!
//! Inventory owns its database (SQLite or PostgreSQL). It learns which products exist from the
//! catalog's product events, reconciled with its product list (never its tables), answers how
//! many units one can buy, and holds, sells or gives back units for orders, all or nothing,
//! idempotently per order. It is ready once it has read the catalog's products: before, it could
//! not take an order.

pub mod catalog_events;
pub mod clients;
pub mod config;
pub mod demo;
pub mod domain;
pub mod expiry;
pub mod order_events;
pub mod routes;
pub mod store;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use souk_chassis::client::{ServiceClient, ServiceTokens};
use souk_chassis::events::{Consumer, Source};
use souk_chassis::lifeline::Lifeline;
use souk_chassis::{Health, Shutdown};

use clients::catalog::CatalogClient;
pub use config::Config;
use demo::DemoStock;
pub use routes::{ApiDoc, AppState};
pub use souk_chassis::service::StartError;
use souk_chassis::service::{Running, Wiring};
use store::Store;
use sync::Syncer;
pub use sync::{CatalogKnown, SyncError, SyncReport};

/// The service's name: its config section, its log and metrics label, its service-token audience.
pub const NAME: &str = "inventory";

/// A built inventory: its whole router (API, health, metrics, standard stack), its store, and
/// what it syncs products with. `/readyz` answers 200 once a sync with the catalog has succeeded.
///
/// The catalog sync and expiry loops run in the background for as long as the router (or any
/// other copy of its state) exists.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Everything inventory serves.
    pub router: Router,
    /// Its store.
    pub store: Store,
    /// Its health, to mark it draining on shutdown.
    pub health: Health,
    syncer: Syncer,
}

impl Inventory {
    /// Starts consuming orders' events until `shutdown`: a confirmed order's reservation becomes
    /// a sale, a cancelled one's goes back on sale. `orders` serves the feed (or NATS carries the
    /// events, per `config.events`); `identity` issues the service token the feed asks for.
    pub fn consume_order_events(
        &self,
        config: &Config,
        orders: ServiceClient,
        identity: ServiceClient,
        shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let tokens = ServiceTokens::new(identity, &config.service_token);
        let source = Source::from_config(&config.events, orders);
        Consumer::new(
            order_events::CONSUMER,
            "orders",
            source,
            self.store.database().clone(),
        )
        .retention(config.events.retention.clone())
        .with_bearer(move || {
            let tokens = tokens.clone();
            async move { tokens.feed_token("orders").await.ok() }
        })
        .spawn(order_events::OrderEvents::new(self.store.clone()), shutdown)
    }

    /// Starts consuming the catalog's product events until `shutdown`: new products are counted,
    /// new SKUs followed, deleted products taken out of sale. The catalog client inventory was
    /// built with serves the feed (or NATS carries the events, per `config.events`; its service
    /// name is the producer); `identity` issues the service token the feed asks for.
    pub fn consume_catalog_events(
        &self,
        config: &Config,
        identity: ServiceClient,
        shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let catalog = self.syncer.catalog.client().clone();
        let producer = catalog.service().to_owned();
        let name = catalog_events::consumer_name(&producer);
        let tokens = ServiceTokens::new(identity, &config.service_token);
        let audience = producer.clone();
        let source = Source::from_config(&config.events, catalog);
        let handler = catalog_events::CatalogEvents::new(
            self.store.clone(),
            Arc::clone(&self.syncer.demo),
            &name,
        );
        Consumer::new(&name, &producer, source, self.store.database().clone())
            .retention(config.events.retention.clone())
            .with_bearer(move || {
                let (tokens, audience) = (tokens.clone(), audience.clone());
                async move { tokens.feed_token(&audience).await.ok() }
            })
            .spawn(handler, shutdown)
    }

    /// Syncs products from the catalog now (the background loop does it at start and every
    /// `catalog_sync_secs`); a success makes inventory ready.
    pub async fn sync_catalog(&self) -> Result<SyncReport, SyncError> {
        self.syncer.sync().await
    }

    /// Whether a sync with the catalog has succeeded (what readiness waits for).
    pub fn catalog_known(&self) -> &CatalogKnown {
        &self.syncer.known
    }
}

/// Opens the store, starts the background loops, and builds the router, reading the catalog over
/// HTTP at `config.catalog` (the catalog itself: its event feed is internal).
pub async fn build(config: &Config) -> Result<Inventory, StartError> {
    build_with(config, ServiceClient::http("catalog", &config.catalog)).await
}

/// [`build`], reading the catalog through `catalog` — for the monolith, the catalog's router in
/// this process: `ServiceClient::in_process("catalog", router, timeout)`.
pub async fn build_with(config: &Config, catalog: ServiceClient) -> Result<Inventory, StartError> {
    config.validate().map_err(StartError::Invalid)?;
    let store = Store::open(&config.database).await?;
    let demo = Arc::new(if config.demo_stock {
        DemoStock::bundled().map_err(StartError::setup)?
    } else {
        DemoStock::none()
    });
    let syncer = Syncer {
        store: store.clone(),
        catalog: CatalogClient::new(catalog),
        demo,
        known: CatalogKnown::default(),
    };
    let alive = Arc::new(Lifeline::new());
    if config.catalog_sync_secs > 0 {
        syncer
            .clone()
            .spawn(Duration::from_secs(config.catalog_sync_secs), alive.alive());
    }
    if config.expiry_interval_ms > 0 {
        expiry::spawn(
            store.clone(),
            Duration::from_millis(config.expiry_interval_ms),
            config.reservations_keep(),
            alive.alive(),
        );
    }
    let auth = souk_chassis::auth::AuthVerifier::new(config.auth.clone());
    auth.fetch_keys_in_background();
    let health = Health::new()
        .with_check(store.database().clone())
        .with_check(syncer.known.clone());
    let api = routes::app(AppState {
        store: store.clone(),
        auth,
        reservation_ttl: config.reservation_ttl(),
        alive,
    });
    let router = souk_chassis::http::service_router(api, health.clone(), &config.http);
    Ok(Inventory {
        router,
        store,
        health,
        syncer,
    })
}

/// Inventory, as the service skeleton runs it (`souk-inventory`, `souk serve inventory`, the
/// monolith).
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl souk_chassis::service::Service for Service {
    const NAME: &'static str = NAME;
    type Config = Config;
    const OPENAPI: Option<fn() -> String> = Some(ApiDoc::json);

    async fn start(config: Config, wiring: &Wiring) -> Result<Running, StartError> {
        let inventory = build_with(&config, wiring.client("catalog", &config.catalog)).await?;
        let identity = wiring.client("identity", &config.service_token.identity);
        let orders = wiring.client("orders", &config.orders);
        let shutdown = wiring.shutdown();
        let order_events =
            inventory.consume_order_events(&config, orders, identity.clone(), shutdown.clone());
        let catalog_events = inventory.consume_catalog_events(&config, identity, shutdown.clone());
        let database = inventory.store.database().clone();
        Ok(Running::new(inventory.router, inventory.health)
            .waiting_for(order_events)
            .waiting_for(catalog_events)
            .closing(database))
    }
}

souk_chassis::service_config!(Config);
