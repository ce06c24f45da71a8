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
//! 1. Add the outbox table and its meta (epoch, retention watermark) to the service's migrations:
//!
//! ```text
//! pub const MIGRATIONS: Migrations = Migrations {
//!     sqlite: &[(1, "orders", include_str!(…)), events::OUTBOX_MIGRATION_SQLITE,
//!               events::OUTBOX_META_MIGRATION_SQLITE],
//!     postgres: &[(1, "orders", include_str!(…)), events::OUTBOX_MIGRATION_POSTGRES,
//!                 events::OUTBOX_META_MIGRATION_POSTGRES],
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
//! outbox.spawn_retention(&config.events);        // old events go (see Retention below)
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
//! 1. Add the inbox tables ([`INBOX_MIGRATION_SQLITE`] / [`INBOX_MIGRATION_POSTGRES`]) and their
//!    retention ([`INBOX_RETENTION_MIGRATION_SQLITE`] / `_POSTGRES`) to the service's migrations
//!    (a service that also produces adds the outbox's entries too).
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
//! # Retention
//!
//! Nothing is kept forever (`[<service>.events.retention]`, [`RetentionConfig`]): a producer that
//! calls [`Outbox::spawn_retention`] deletes events written more than `events_secs` ago (7 days;
//! with NATS, only those its relay published) as a prefix of the sequence, and remembers where it
//! stopped (`outbox_meta.purged_through`); a consumer forgets inbox entries after `inbox_secs`
//! (14 days, at least `events_secs`: an event served again still finds its entry) and dead
//! letters after `dead_letters_secs` (30 days). NATS streams keep messages
//! `nats.stream_max_age_secs` (7 days; `nats.stream_max_bytes` optionally), existing streams
//! included. Producers list [`OUTBOX_META_MIGRATION_SQLITE`] (or `_POSTGRES`) beside the outbox's;
//! consumers [`INBOX_RETENTION_MIGRATION_SQLITE`] (or `_POSTGRES`) beside the inbox's.
//!
//! Never a silent skip:
//! - a feed reader whose position lies before what is kept gets **410 Gone** (`events-gone`, with
//!   `oldest_kept`); the consumer logs it as an error, counts it
//!   (`events_behind_retention_total`) and stays where it is. An operator who accepts the loss
//!   moves its offset: `INSERT INTO event_offsets (consumer, position) VALUES ('<name>',
//!   '<oldest_kept - 1>') ON CONFLICT (consumer) DO UPDATE SET position = excluded.position`;
//! - every feed page carries the outbox's **epoch**, a random id made with its table. A consumer
//!   keeps the epoch its position counts in; another epoch (the producer's store recreated or
//!   replaced) makes it read that outbox again from the start (`events_epoch_changes_total`; the
//!   inbox drops what it handled). A page whose `head` is behind the consumer's position (a store
//!   restored from a backup, noticed before it wrote past that position) makes it read again from
//!   the oldest event kept (`events_rewound_total`). After restoring a producer's database, give
//!   its outbox a new epoch (`UPDATE outbox_meta SET epoch = '<new random id>'`), so that readers
//!   notice even once it has written past their positions;
//! - on NATS, a message further on than the next one after the last handled means the stream
//!   deleted some before they were read: logged as an error with the range, counted
//!   (`events_lost_total`) — JetStream gives nothing back to wait for.
//!
//! # Metrics
//!
//! `events_published_total{service}` (relay), `events_purged_total{service}` (retention),
//! `events_feed_gone_total` (410 answers), and `events_handled_total`, `events_retried_total`,
//! `events_unavailable_total` (retries for want of infrastructure), `events_parked_total`,
//! `events_skipped_total` (already in the inbox), `events_behind_retention_total`,
//! `events_epoch_changes_total`, `events_rewound_total`, `events_lost_total` by `{consumer}`.

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
pub use outbox::{Outbox, OutboxState, append_inline, append_postgres, append_sqlite};
pub use schema::{
    INBOX_MIGRATION_POSTGRES, INBOX_MIGRATION_SQLITE, INBOX_RETENTION_MIGRATION_POSTGRES,
    INBOX_RETENTION_MIGRATION_SQLITE, OUTBOX_META_MIGRATION_POSTGRES, OUTBOX_META_MIGRATION_SQLITE,
    OUTBOX_MIGRATION_POSTGRES, OUTBOX_MIGRATION_SQLITE,
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
    /// How long events, inbox entries and dead letters are kept.
    pub retention: RetentionConfig,
}

impl EventsConfig {
    /// Checks what serde cannot: a message naming the key, or `Ok`.
    pub fn validate(&self) -> Result<(), String> {
        self.retention.validate()?;
        if self.transport == Transport::Nats
            && self.nats.stream_max_age_secs > self.retention.inbox_secs
        {
            return Err(format!(
                "events.nats.stream_max_age_secs ({}) must not exceed events.retention.inbox_secs ({}): a redelivered event must still find its inbox entry",
                self.nats.stream_max_age_secs, self.retention.inbox_secs
            ));
        }
        Ok(())
    }
}

/// How long the event plumbing keeps what it writes (`[<service>.events.retention]`): nothing is
/// kept forever. A consumer that falls behind what its producer keeps gets an error it cannot
/// miss (the feed answers 410 Gone; on NATS the gap is logged and counted), never a silent skip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long an event stays in its producer's outbox after it was written (and, with NATS,
    /// published), in seconds: 7 days.
    pub events_secs: u64,
    /// How long a consumer remembers an event it handled (its inbox), in seconds: 14 days. At
    /// least `events_secs`, so that an event served again still finds its entry.
    pub inbox_secs: u64,
    /// How long a dead letter waits for an operator, in seconds: 30 days.
    pub dead_letters_secs: u64,
    /// How often the purges run, in seconds (0 turns them off): an hour.
    pub purge_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            events_secs: 7 * DAY,
            inbox_secs: 14 * DAY,
            dead_letters_secs: 30 * DAY,
            purge_interval_secs: 3600,
        }
    }
}

impl RetentionConfig {
    /// Checks the bounds' order: a message naming the key, or `Ok`.
    pub fn validate(&self) -> Result<(), String> {
        if self.inbox_secs < self.events_secs {
            return Err(format!(
                "events.retention.inbox_secs ({}) must be at least events.retention.events_secs ({}): a consumer must remember an event for as long as it may be served again",
                self.inbox_secs, self.events_secs
            ));
        }
        Ok(())
    }

    pub(crate) fn events(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.events_secs)
    }

    pub(crate) fn inbox(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.inbox_secs)
    }

    pub(crate) fn dead_letters(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.dead_letters_secs)
    }

    /// How often to purge, if at all.
    pub(crate) fn interval(&self) -> Option<std::time::Duration> {
        (self.purge_interval_secs > 0)
            .then(|| std::time::Duration::from_secs(self.purge_interval_secs))
    }
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

    #[test]
    fn retention_has_documented_defaults_and_keeps_the_inbox_longest() {
        let config = EventsConfig::default();
        assert_eq!(config.retention.events_secs, 7 * 24 * 3600);
        assert_eq!(config.retention.inbox_secs, 14 * 24 * 3600);
        assert_eq!(config.retention.dead_letters_secs, 30 * 24 * 3600);
        assert!(config.validate().is_ok());
        let mut short = config.clone();
        short.retention.inbox_secs = 60;
        assert!(short.validate().unwrap_err().contains("inbox_secs"));
        let mut nats = config;
        nats.transport = Transport::Nats;
        nats.nats.stream_max_age_secs = 15 * 24 * 3600;
        assert!(nats.validate().unwrap_err().contains("stream_max_age_secs"));
    }
}
