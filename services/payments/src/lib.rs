//! souk's payments service: payment methods (card tokens), payments per order, refunds, and a
//! simulated card processor.
//!
//! Payments is the only service that ever sees a card number. It hands the number to the
//! processor's vault at once and keeps the brand, the last four digits, the expiry and the token;
//! every other service sees a payment method id. It owns its database (SQLite or PostgreSQL) and
//! calls no other service. What it records — a capture, a decline, a refund — it also announces
//! as an event (see [`events`]), written to its outbox in the same transaction.

pub mod config;
pub mod domain;
pub mod events;
pub mod processor;
pub mod routes;
pub mod store;
mod sweep;

use std::time::Duration;

use axum::Router;
use souk_chassis::events::{EventsConfig, Outbox, Transport};
use souk_chassis::{Health, Shutdown};

pub use config::Config;
pub use processor::{Processor, ProcessorConfig};
pub use routes::{ApiDoc, AppState};
pub use souk_chassis::service::StartError;
use souk_chassis::service::{Running, Wiring};
use store::Store;

/// The service's name: its config section, its log and metrics label.
pub const NAME: &str = "payments";

/// Ready payments: its whole router (API, events feed, health, metrics, standard stack), its
/// store, its outbox and the simulated processor behind it.
///
/// With `events.transport = "nats"`, the relay needs a shutdown signal to flush on: call
/// [`Payments::spawn_relay`] (which [`run`] does).
#[derive(Debug, Clone)]
pub struct Payments {
    /// Everything payments serves.
    pub router: Router,
    /// Its store.
    pub store: Store,
    /// Its outbox (served at `GET /v1/events`).
    pub outbox: Outbox,
    /// The simulated card processor it charges through.
    pub processor: Processor,
    /// Its health, to mark it draining on shutdown.
    pub health: Health,
    events: EventsConfig,
}

impl Payments {
    /// Starts the outbox relay to NATS when the config asks for that transport (the feed needs
    /// nothing); it flushes within the drain deadline at `shutdown`.
    pub fn spawn_relay(&self, shutdown: &Shutdown) {
        if self.events.transport == Transport::Nats {
            self.outbox
                .spawn_relay(self.events.nats.clone(), shutdown.clone());
        }
    }
}

/// Opens the store and builds the router.
pub async fn build(config: &Config) -> Result<Payments, StartError> {
    config.validate().map_err(StartError::Invalid)?;
    if !config.processor.simulated {
        return Err(StartError::Invalid(
            "payments.processor.simulated is false, and souk has no real card processor: the \
             simulated one approves any Luhn-valid card and keeps card numbers, so it never runs \
             where money is taken"
                .into(),
        ));
    }
    let secret = souk_chassis::seal::secret_from(
        &config.processor.vault_key,
        &config.processor.vault_key_file,
    )
    .map_err(StartError::setup)?;
    let sealer = souk_chassis::seal::Sealer::new(&secret, crate::processor::VAULT_PURPOSE)
        .map_err(StartError::setup)?;
    let store = Store::open(&config.database).await?;
    let outbox = Outbox::new(store.database().clone(), NAME);
    outbox.spawn_retention(&config.events);
    let processor = Processor::new(store.database().clone(), &config.processor, sealer);
    let sealed = processor
        .seal_plain_cards()
        .await
        .map_err(StartError::setup)?;
    if sealed > 0 {
        tracing::info!(sealed, "card numbers kept in the clear are now sealed");
    }
    let health = Health::new().with_check(store.database().clone());
    let auth = souk_chassis::auth::AuthVerifier::new(config.auth.clone());
    auth.fetch_keys_in_background();
    let alive = std::sync::Arc::new(souk_chassis::lifeline::Lifeline::new());
    let state = AppState {
        store: store.clone(),
        processor: processor.clone(),
        auth: auth.clone(),
        outbox: outbox.clone(),
        pending_lease: config.charge_lease(),
        callers: std::sync::Arc::new(config.callers.clone()),
        alive: std::sync::Arc::clone(&alive),
    };
    if config.late_capture_sweep_ms > 0 {
        sweep::spawn(
            store.clone(),
            processor.clone(),
            Duration::from_millis(config.late_capture_sweep_ms),
            Duration::from_secs(config.late_capture_window_hours.saturating_mul(3600)),
            Duration::from_secs(config.tombstones_keep_days.saturating_mul(24 * 3600)),
            alive.alive(),
        );
    }
    let api = routes::app(state).merge(outbox.feed_router_with_auth(auth));
    let router = souk_chassis::http::service_router(api, health.clone(), &config.http);
    Ok(Payments {
        router,
        store,
        outbox,
        processor,
        health,
        events: config.events.clone(),
    })
}

/// Payments, as the service skeleton runs it (`souk-payments`, `souk serve payments`, the
/// monolith).
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl souk_chassis::service::Service for Service {
    const NAME: &'static str = NAME;
    type Config = Config;
    const OPENAPI: Option<fn() -> String> = Some(ApiDoc::json);

    async fn start(config: Config, wiring: &Wiring) -> Result<Running, StartError> {
        let payments = build(&config).await?;
        payments.spawn_relay(wiring.shutdown());
        let database = payments.store.database().clone();
        Ok(Running::new(payments.router, payments.health).closing(database))
    }
}

souk_chassis::service_config!(Config);
