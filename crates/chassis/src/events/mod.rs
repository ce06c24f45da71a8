//! Events between services: an outbox written in the producer's own transaction, delivered at
//! least once, in order, to consumers that are idempotent. Domain-free: an event is a CloudEvents
//! envelope around JSON the producer owns.
//!
//! Two transports, chosen by configuration and interchangeable for the code on either side:
//! - **feed** (the default, `souk up` and `souk monolith`): the producer serves its outbox as an
//!   ordered, long-polled feed, `GET /v1/events`; each consumer keeps its offset in its own
//!   database.
//! - **nats** (production): a relay publishes the outbox to NATS JetStream, stream
//!   `SOUK_<SERVICE>`, subject `souk.<service>.<type>`, message id = event id; each consumer is a
//!   durable pull consumer, one unacknowledged event at a time.
//!
//! # Configuration
//!
//! Embed an [`EventsConfig`] in the service's config as `events`:
//!
//! ```toml
//! [orders.events]
//! transport = "nats"                  # or "feed" (the default)
//! nats.url = "nats://127.0.0.1:4222"  # used with "nats"; see NatsConfig for the other keys
//! ```
//!
//! (`SOUK_ORDERS__EVENTS__TRANSPORT=nats` in the environment does the same.)
//!
//! # Producing
//!
//! 1. Add the outbox table to the service's migrations:
//!
//! ```text
//! pub const MIGRATIONS: Migrations = Migrations {
//!     sqlite: &[(1, "orders", include_str!(…)), events::OUTBOX_MIGRATION_SQLITE],
//!     postgres: &[(1, "orders", include_str!(…)), events::OUTBOX_MIGRATION_POSTGRES],
//! };
//! ```
//!
//! 2. Append the event in the transaction that makes the change, then wake the readers:
//!
//! ```text
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE orders SET status = 'confirmed' WHERE id = $1")…execute(&mut *tx).await?;
//! let event = Event::new("orders", "souk.orders.order_confirmed.v1", &order_id, json!({…}));
//! events::append_postgres(&mut tx, &event).await?;   // append_sqlite on SQLite
//! tx.commit().await?;
//! outbox.notify();
//! ```
//!
//! A rolled-back transaction leaves no event; a committed one always has its event. On
//! PostgreSQL, appends take an advisory lock until commit (see [`append_postgres`]): append last.
//!
//! 3. At start-up, make the [`Outbox`], serve its feed and, with NATS, run the relay:
//!
//! ```text
//! let outbox = Outbox::new(db.clone(), "orders");
//! let api = api.merge(outbox.feed_router_with_auth(verifier.clone())); // or feed_router()
//! if config.events.transport == Transport::Nats {
//!     outbox.spawn_relay(config.events.nats.clone(), shutdown.clone());
//! }
//! ```
//!
//! The feed is internal: the gateway routes no public path to `/v1/events`. Serve it with
//! [`Outbox::feed_router_with_auth`] when the service verifies tokens (consumers then need a
//! service token whose audience is the producer), or [`Outbox::feed_router`] on a trusted
//! network. The relay publishes what is left at shutdown, within the drain deadline.
//!
//! # Consuming
//!
//! 1. Add the inbox tables ([`INBOX_MIGRATION_SQLITE`] / [`INBOX_MIGRATION_POSTGRES`]) to the
//!    service's migrations (a service that also produces adds both entries).
//! 2. Write a [`Handler`] whose effect is idempotent: record the event in the inbox in the
//!    transaction that makes the effect, and do nothing if it was there.
//!
//! ```text
//! struct OrderEvents { store: Store }
//!
//! #[derive(Deserialize)]
//! struct Confirmed { order_id: String }          // only the fields this consumer reads
//!
//! impl Handler for OrderEvents {
//!     async fn handle(&self, event: &Event) -> Result<(), HandleError> {
//!         if event.type_ != "souk.orders.order_confirmed.v1" {
//!             return Ok(());                     // not for us: skip it
//!         }
//!         let data: Confirmed = event.data_as()?; // unreadable data: Poison, parked
//!         let mut tx = self.store.pool().begin().await?; // database errors: Retry
//!         if !events::inbox_record_sqlite(&mut tx, "inventory.orders", &event.id).await? {
//!             return Ok(());                     // handled before: no second effect
//!         }
//!         /* … the effect, on &mut *tx … */
//!         tx.commit().await?;
//!         Ok(())
//!     }
//! }
//! ```
//!
//! (Record first: on SQLite that takes the write lock at once, so a second instance waits
//! there instead of failing at commit.)
//!
//! 3. Start a [`Consumer`], named `<consumer>.<producer>`:
//!
//! ```text
//! // The producer itself (its own address, or its router in the monolith): the gateway does
//! // not route /v1/events. Its timeout is extended by the long-poll (5 s by default).
//! let orders = ServiceClient::http("orders", &config.orders_feed);
//! Consumer::new("inventory.orders", "orders", Source::from_config(&config.events, orders), db)
//!     .with_bearer(move || {                                     // when the feed wants a token
//!         let tokens = tokens.clone();
//!         async move { tokens.for_service("orders").await.ok() }
//!     })
//!     .spawn(OrderEvents { store }, shutdown.clone());
//! ```
//!
//! Events of one producer are handled one at a time in its order (so per-order order holds).
//! [`HandleError::Retry`] retries the same event with backoff (100 ms doubling to 30 s) up to
//! [`Consumer::max_attempts`] calls (10), then parks it; [`HandleError::Poison`] parks it at
//! once; [`HandleError::Unavailable`] (the handler's store is down; also a database that cannot
//! be reached) retries with the same backoff for as long as it takes and never parks. Parked events are [`DeadLetter`]s: list them with [`dead_letters`], replay one with
//! [`replay_dead_letter`], or mount [`dead_letters_router`] for administrators (internal, like
//! the feed: the gateway does not route it).
//!
//! # Metrics
//!
//! `events_published_total{service}` (relay), and `events_handled_total`, `events_retried_total`,
//! `events_unavailable_total` (retries for want of infrastructure), `events_parked_total`,
//! `events_skipped_total` (already in the inbox) by `{consumer}`.

/// Runs the same code on whichever pool the database is.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::Postgres($pool) => $body,
        }
    };
}

mod consumer;
mod dead_letters;
mod event;
mod feed;
mod handler;
mod nats;
mod outbox;
mod pull;
mod relay;
mod schema;
mod store;

use serde::{Deserialize, Serialize};

pub use consumer::{Consumer, Source};
pub use dead_letters::{DeadLetter, dead_letters, dead_letters_router, replay_dead_letter};
pub use event::Event;
pub use handler::{HandleError, Handler};
pub use nats::{NatsConfig, stream_name, subject};
pub use outbox::{Outbox, append_postgres, append_sqlite};
pub use schema::{
    INBOX_MIGRATION_POSTGRES, INBOX_MIGRATION_SQLITE, OUTBOX_MIGRATION_POSTGRES,
    OUTBOX_MIGRATION_SQLITE,
};
pub use store::{inbox_record_postgres, inbox_record_sqlite};

/// A service's event settings (`[<service>.events]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// How events travel: `feed` (default) or `nats`.
    pub transport: Transport,
    /// The NATS server, used when `transport = "nats"`.
    pub nats: NatsConfig,
}

/// How events travel from producers to consumers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Consumers long-poll each producer's `GET /v1/events`; no broker needed.
    #[default]
    Feed,
    /// The producer's relay publishes to NATS JetStream; consumers pull from it.
    Nats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_is_the_default_and_nats_is_chosen_by_name() {
        let config: EventsConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.transport, Transport::Feed);
        let config: EventsConfig =
            serde_json::from_str(r#"{"transport": "nats", "nats": {"url": "nats://n:4222"}}"#)
                .unwrap();
        assert_eq!(config.transport, Transport::Nats);
        assert_eq!(config.nats.url, "nats://n:4222");
        assert!(serde_json::from_str::<EventsConfig>(r#"{"transport": "kafka"}"#).is_err());
    }
}
