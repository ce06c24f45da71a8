//! The projection: history's event consumers and the handler they share.
//!
//! Two chassis consumers, one per producer — `history.orders` and `history.payments` — read
//! their producer's events in its order (from its feed, or from NATS), and hand each to a
//! [`Projection`]: the event is read into a [`Fact`](crate::domain::Fact) (unknown types are
//! skipped; unreadable data is poison, parked as a dead letter) and merged into the purchase in
//! the same transaction that records it in the consumer's inbox.

pub mod facts;

use souk_chassis::Shutdown;
use souk_chassis::client::{ServiceClient, ServiceTokens};
use souk_chassis::events::{Consumer, Event, EventsConfig, HandleError, Handler, Source};

use crate::config::ConsumerConfig;
use crate::store::{Store, StoreError};

/// Merges events into the purchase history, as consumer `consumer`.
#[derive(Debug, Clone)]
pub struct Projection {
    store: Store,
    consumer: String,
}

impl Projection {
    /// The handler of consumer `consumer` (`history.orders`), writing to `store`.
    pub fn new(store: Store, consumer: &str) -> Self {
        Self {
            store,
            consumer: consumer.to_owned(),
        }
    }
}

impl Handler for Projection {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        let Some(fact) = facts::read(event).map_err(HandleError::Poison)? else {
            tracing::debug!(event_type = %event.type_, "not an event history follows; skipped");
            return Ok(());
        };
        let applied = self
            .store
            .apply(&self.consumer, &event.id, &fact)
            .await
            .map_err(|err| match err {
                StoreError::Database(err) => HandleError::from(err),
                corrupt @ StoreError::Corrupt { .. } => HandleError::Poison(corrupt.to_string()),
            })?;
        if applied {
            tracing::debug!(order = %fact.order_id(), "purchase history updated");
        }
        Ok(())
    }
}

/// The consumer name for `producer`: `history.<producer>`.
pub fn consumer_name(producer: &str) -> String {
    format!("{}.{producer}", crate::NAME)
}

/// Starts the consumer of `producer`'s events (the producer is the service `producer` names:
/// its feed through that client, or its NATS stream), until `shutdown`.
pub fn spawn(
    store: &Store,
    producer: &ServiceClient,
    tokens: &ServiceTokens,
    events: &EventsConfig,
    settings: &ConsumerConfig,
    shutdown: &Shutdown,
) -> tokio::task::JoinHandle<()> {
    let name = consumer_name(producer.service());
    let audience = producer.service().to_owned();
    let tokens = tokens.clone();
    let source = Source::from_config(events, producer.clone());
    Consumer::new(&name, producer.service(), source, store.database().clone())
        .retention(events.retention.clone())
        .max_attempts(settings.max_attempts)
        .backoff(settings.retry_base(), settings.retry_max())
        .long_poll(settings.long_poll())
        .with_bearer(move || bearer(tokens.clone(), audience.clone()))
        .spawn(Projection::new(store.clone(), &name), shutdown.clone())
}

/// A service token for reading `audience`'s feed; `None` (the feed then refuses, and the
/// consumer retries with backoff) when identity cannot give one.
async fn bearer(tokens: ServiceTokens, audience: String) -> Option<String> {
    match tokens.feed_token(&audience).await {
        Ok(token) => Some(token),
        Err(err) => {
            // The feed then answers 401, and the consumer backs off before it asks again.
            tracing::warn!(%err, audience, "cannot get a service token for the event feed");
            None
        }
    }
}
