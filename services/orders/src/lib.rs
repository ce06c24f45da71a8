//! souk's orders service: orders, their lines, and the checkout saga that turns a cart into a
//! confirmed order — or gives back everything it took and cancels it.
//!
//! `POST /v1/orders` prices the caller's cart from the catalog and stores a `pending` order with
//! its saga and its `order_placed` event in one transaction. The saga then reserves the stock in
//! inventory, charges the card in payments and confirms; when a step is refused, or keeps
//! failing past the order's deadline, it releases the reservation, refunds, and cancels. Every
//! step is persisted before and after its remote call and every call is idempotent, so a crash
//! anywhere is resumed by whichever instance claims the saga next.
//!
//! Orders owns its database (SQLite or PostgreSQL). It calls the cart, the catalog, inventory,
//! payments and identity (service tokens), and never reads their data any other way.

pub mod checkout;
pub mod clients;
pub mod config;
pub mod domain;
pub mod events;
mod metrics;
mod purge;
pub mod routes;
pub mod saga;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use souk_chassis::client::{ServiceClient, ServiceTokens};
use souk_chassis::events::{Outbox, Transport};
use souk_chassis::{Health, Shutdown};

pub use config::{Config, SagaConfig};
pub use routes::{ApiDoc, AppState};
use saga::{SagaParts, SagaRunner};
pub use souk_chassis::service::StartError;
use souk_chassis::service::{Running, Wiring};
use store::Store;

/// The service's name: its config section, its log and metrics label, its service audience.
pub const NAME: &str = "orders";

/// The services orders calls, as clients: over HTTP ([`Neighbours::http`]) or, in the monolith,
/// on their routers in this process (`ServiceClient::in_process`).
#[derive(Debug, Clone)]
pub struct Neighbours {
    /// The cart (`GET /v1/cart`, with the caller's token).
    pub cart: ServiceClient,
    /// The catalog (`GET /v1/products?ids=…`).
    pub catalog: ServiceClient,
    /// Inventory (`/v1/reservations…`, with service tokens).
    pub inventory: ServiceClient,
    /// Payments (`/v1/payment-methods/{id}` with the caller's token, `/v1/payments…` with
    /// service tokens).
    pub payments: ServiceClient,
    /// Identity (`POST /v1/auth/service-token`).
    pub identity: ServiceClient,
}

impl Neighbours {
    /// Every neighbour over HTTP at the URLs `config` names.
    pub fn http(config: &Config) -> Self {
        Self {
            cart: ServiceClient::http("cart", &config.cart),
            catalog: ServiceClient::http("catalog", &config.catalog),
            inventory: ServiceClient::http("inventory", &config.inventory),
            payments: ServiceClient::http("payments", &config.payments),
            identity: ServiceClient::http("identity", &config.service_token.identity),
        }
    }
}

/// Ready orders: its whole router (API, events feed, health, metrics, standard stack), its store,
/// its outbox and its saga runner.
///
/// The saga runner and the key purge run in the background for as long as the router (or any
/// other copy of its state) exists. With `events.transport = "nats"`, the relay needs a shutdown
/// signal to flush on: call [`Orders::spawn_relay`] (which [`run`] does).
#[derive(Debug, Clone)]
pub struct Orders {
    /// Everything orders serves.
    pub router: Router,
    /// Its store.
    pub store: Store,
    /// Its outbox (served at `GET /v1/events`).
    pub outbox: Outbox,
    /// Its saga runner.
    pub saga: SagaRunner,
    /// Its health, to mark it draining on shutdown.
    pub health: Health,
    events: souk_chassis::events::EventsConfig,
}

impl Orders {
    /// Starts the outbox relay to NATS when the config asks for that transport (the feed needs
    /// nothing); it flushes within the drain deadline at `shutdown`.
    pub fn spawn_relay(&self, shutdown: &Shutdown) {
        if self.events.transport == Transport::Nats {
            self.outbox
                .spawn_relay(self.events.nats.clone(), shutdown.clone());
        }
    }
}

/// Opens the store, starts the saga runner, and builds the router, calling every neighbour over
/// HTTP at the URLs in `config`.
pub async fn build(config: &Config) -> Result<Orders, StartError> {
    build_with(config, Neighbours::http(config)).await
}

/// [`build`], calling the neighbours through `neighbours` — for the monolith, their routers in
/// this process.
pub async fn build_with(config: &Config, neighbours: Neighbours) -> Result<Orders, StartError> {
    config.validate().map_err(StartError::Invalid)?;
    let store = Store::open(&config.database).await?;
    let outbox = Outbox::new(store.database().clone(), NAME);
    outbox.spawn_retention(&config.events);
    let auth = souk_chassis::auth::AuthVerifier::new(config.auth.clone());
    auth.fetch_keys_in_background();
    let lifeline = Arc::new(souk_chassis::lifeline::Lifeline::new());
    let saga = SagaRunner::new(SagaParts {
        store: store.clone(),
        inventory: clients::Inventory::new(neighbours.inventory),
        payments: clients::Payments::new(neighbours.payments.clone()),
        tokens: ServiceTokens::new(neighbours.identity, &config.service_token),
        outbox: outbox.clone(),
        config: config.saga.clone(),
        call_budget: Duration::from_millis(config.saga_call_ms()),
    });
    saga.spawn(lifeline.alive());
    purge::spawn(store.clone(), config.idempotency_keep(), lifeline.alive());
    let checkout = checkout::Checkout::new(
        clients::Cart::new(neighbours.cart),
        clients::Catalog::new(neighbours.catalog),
        clients::Payments::new(neighbours.payments),
    );
    let api = routes::app(AppState {
        store: store.clone(),
        auth: auth.clone(),
        checkout,
        saga: saga.clone(),
        outbox: outbox.clone(),
        settings: Arc::new(routes::Settings {
            deadline: config.saga.deadline(),
            // An attempt is cut off after one request timeout; twice that, it is surely dead.
            key_lock: std::time::Duration::from_millis(config.http.request_timeout_ms)
                .saturating_mul(2),
            public_prefix: config.public_prefix.clone(),
        }),
        lifeline,
    })
    .merge(outbox.feed_router_with_auth(auth));
    let health = Health::new().with_check(store.database().clone());
    let router = souk_chassis::http::service_router(api, health.clone(), &config.http);
    Ok(Orders {
        router,
        store,
        outbox,
        saga,
        health,
        events: config.events.clone(),
    })
}

/// Orders, as the service skeleton runs it (`souk-orders`, `souk serve orders`, the
/// monolith).
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl souk_chassis::service::Service for Service {
    const NAME: &'static str = NAME;
    type Config = Config;
    const OPENAPI: Option<fn() -> String> = Some(ApiDoc::json);

    async fn start(config: Config, wiring: &Wiring) -> Result<Running, StartError> {
        let neighbours = Neighbours {
            cart: wiring.client("cart", &config.cart),
            catalog: wiring.client("catalog", &config.catalog),
            inventory: wiring.client("inventory", &config.inventory),
            payments: wiring.client("payments", &config.payments),
            identity: wiring.client("identity", &config.service_token.identity),
        };
        let orders = build_with(&config, neighbours).await?;
        orders.spawn_relay(wiring.shutdown());
        let database = orders.store.database().clone();
        // The saga runner and the key purge stop once the router's last copy is gone.
        Ok(Running::new(orders.router, orders.health).closing(database))
    }
}

souk_chassis::service_config!(Config);
