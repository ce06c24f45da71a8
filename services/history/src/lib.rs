//! souk's history service: the purchase history read model.
//!
//! History is a projection: every purchase it shows is built from events — orders' `order_placed`,
//! `order_confirmed` and `order_cancelled`, payments' `payment_captured` and `payment_refunded` —
//! and it calls no service to answer a request. Two consumers (`history.orders`,
//! `history.payments`) read those events at least once, in each producer's order, from the
//! producers' feeds or from NATS, and merge each into the purchase in the transaction that
//! records it in their inbox; the two producers' events may arrive in any order relative to each
//! other and end in the same row. `GET /v1/history` shows the caller their own purchases.
//!
//! History owns its database (SQLite or PostgreSQL). It calls identity only for the service
//! tokens the producers' feeds want.

pub mod config;
pub mod domain;
pub mod projection;
pub mod routes;
pub mod store;

use std::sync::{Arc, Mutex};

use axum::Router;
use souk_chassis::client::{ServiceClient, ServiceTokens};
use souk_chassis::lifeline::Lifeline;
use souk_chassis::{Health, Shutdown};
use tokio::task::JoinHandle;

pub use config::{Config, ConsumerConfig};
pub use routes::{ApiDoc, AppState};
pub use souk_chassis::service::StartError;
use souk_chassis::service::{Running, Wiring};
use store::Store;

/// The service's name: its config section, its log and metrics label, its consumers' prefix.
pub const NAME: &str = "history";

/// The services history hears from, as clients: over HTTP ([`Producers::http`]) or, in the
/// monolith, on their routers in this process (`ServiceClient::in_process`).
///
/// A client's service name names the producer: its consumer is `history.<name>`, its feed is
/// read through the client with a service token for audience `<name>`, and with NATS its
/// stream is `SOUK_<NAME>`. Name them `orders` and `payments`.
#[derive(Debug, Clone)]
pub struct Producers {
    /// Orders (`GET /v1/events`: `order_placed`, `order_confirmed`, `order_cancelled`).
    pub orders: ServiceClient,
    /// Payments (`GET /v1/events`: `payment_captured`, `payment_refunded`).
    pub payments: ServiceClient,
    /// Identity (`POST /v1/auth/service-token`), for the feeds' service tokens.
    pub identity: ServiceClient,
}

impl Producers {
    /// Every producer over HTTP at the URLs `config` names.
    pub fn http(config: &Config) -> Self {
        Self {
            orders: ServiceClient::http("orders", &config.orders),
            payments: ServiceClient::http("payments", &config.payments),
            identity: ServiceClient::http("identity", &config.service_token.identity),
        }
    }
}

/// Ready history: its whole router (API, dead letters, health, metrics, standard stack), its
/// store, and its running consumers.
#[derive(Debug, Clone)]
pub struct History {
    /// Everything history serves.
    pub router: Router,
    /// Its store.
    pub store: Store,
    /// Its health, to mark it draining on shutdown.
    pub health: Health,
    consumers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl History {
    /// Waits for the consumers to stop: they do once shutdown begins, after the event in hand.
    /// (For a [`build`] history that is when every copy of its router is gone: await this only
    /// for one made by [`build_with`], after triggering its shutdown.)
    pub async fn stopped(&self) {
        let consumers = std::mem::take(
            &mut *self
                .consumers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for consumer in consumers {
            if let Err(err) = consumer.await {
                tracing::warn!(%err, "an event consumer ended abnormally");
            }
        }
    }
}

/// Opens the store, starts the consumers of the producers `config` names (over HTTP) and builds
/// the router. The consumers run for as long as the router (or a copy of it) exists.
pub async fn build(config: &Config) -> Result<History, StartError> {
    let (trigger, shutdown) = Shutdown::manual(config.http.drain_timeout());
    let lifeline = Arc::new(Lifeline::new());
    let mut alive = lifeline.alive();
    tokio::spawn(async move {
        alive.gone().await;
        trigger.trigger();
    });
    assemble(config, Producers::http(config), &shutdown, Some(lifeline)).await
}

/// [`build`], hearing from the producers through `producers` — for the monolith, their routers
/// in this process — with consumers that run until `shutdown`.
pub async fn build_with(
    config: &Config,
    producers: Producers,
    shutdown: &Shutdown,
) -> Result<History, StartError> {
    assemble(config, producers, shutdown, None).await
}

async fn assemble(
    config: &Config,
    producers: Producers,
    shutdown: &Shutdown,
    lifeline: Option<Arc<Lifeline>>,
) -> Result<History, StartError> {
    config.validate().map_err(StartError::Invalid)?;
    let store = Store::open(&config.database).await?;
    let auth = souk_chassis::auth::AuthVerifier::new(config.auth.clone());
    auth.fetch_keys_in_background();
    let tokens = ServiceTokens::new(producers.identity, &config.service_token);
    let consumers = [producers.orders, producers.payments]
        .iter()
        .map(|producer| {
            projection::spawn(
                &store,
                producer,
                &tokens,
                &config.events,
                &config.consumers,
                shutdown,
            )
        })
        .collect();
    let api = routes::app(AppState {
        store: store.clone(),
        auth: auth.clone(),
        lifeline,
    })
    .merge(souk_chassis::events::dead_letters_router(
        store.database().clone(),
        auth,
    ));
    let health = Health::new().with_check(store.database().clone());
    let router = souk_chassis::http::service_router(api, health.clone(), &config.http);
    Ok(History {
        router,
        store,
        health,
        consumers: Arc::new(Mutex::new(consumers)),
    })
}

/// History, as the service skeleton runs it (`souk-history`, `souk serve history`, the
/// monolith).
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl souk_chassis::service::Service for Service {
    const NAME: &'static str = NAME;
    type Config = Config;
    const OPENAPI: Option<fn() -> String> = Some(ApiDoc::json);

    async fn start(config: Config, wiring: &Wiring) -> Result<Running, StartError> {
        let producers = Producers {
            orders: wiring.client("orders", &config.orders),
            payments: wiring.client("payments", &config.payments),
            identity: wiring.client("identity", &config.service_token.identity),
        };
        let history = build_with(&config, producers, wiring.shutdown()).await?;
        let database = history.store.database().clone();
        let consumers = history.clone();
        Ok(Running::new(history.router, history.health)
            .waiting_for(tokio::spawn(async move { consumers.stopped().await }))
            .closing(database))
    }
}

souk_chassis::service_config!(Config);
