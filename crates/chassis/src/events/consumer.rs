//! Consumers: one producer's events, handled one at a time in order, at least once, through the
//! service's own idempotent [`Handler`], with retries, dead letters and a stored offset.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tracing::Instrument;

use super::event::Event;
use super::handler::{HandleError, Handler};
use super::nats::NatsConfig;
use super::{EventsConfig, Transport, store};
use crate::client::ServiceClient;
use crate::db::Database;
use crate::server::Shutdown;

/// Where a consumer reads its producer's events.
#[derive(Debug, Clone)]
pub enum Source {
    /// The producer's feed (`GET /v1/events`), long-polled through a client of the producer.
    Feed(ServiceClient),
    /// The producer's JetStream stream, through a durable pull consumer named after the consumer.
    Nats(NatsConfig),
}

impl Source {
    /// The source that `config` chooses: `producer` for the feed, or NATS.
    pub fn from_config(config: &EventsConfig, producer: ServiceClient) -> Self {
        match config.transport {
            Transport::Feed => Self::Feed(producer),
            Transport::Nats => Self::Nats(config.nats.clone()),
        }
    }
}

type TokenSource = Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// One consuming service's subscription to one producer. Build it, then [`Consumer::spawn`].
#[derive(Clone)]
pub struct Consumer {
    pub(super) name: String,
    pub(super) producer: String,
    pub(super) source: Source,
    pub(super) db: Database,
    pub(super) max_attempts: u32,
    pub(super) first_backoff: Duration,
    pub(super) max_backoff: Duration,
    pub(super) long_poll: Duration,
    pub(super) token: Option<TokenSource>,
    pub(super) retention: super::RetentionConfig,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("producer", &self.producer)
            .field("source", &self.source)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Consumer `name` (`inventory.orders`: unique per consuming service and producer; it keys the
    /// offset, the inbox, the dead letters and the durable NATS consumer) of `producer`'s events
    /// (`orders`) from `source`, keeping its state in the consuming service's `db`.
    pub fn new(name: &str, producer: &str, source: Source, db: Database) -> Self {
        Self {
            name: name.to_owned(),
            producer: producer.to_owned(),
            source,
            db,
            max_attempts: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            // Under the standard stack's 10 s request timeout, which also bounds the producer's
            // long-poll.
            long_poll: Duration::from_secs(5),
            token: None,
            retention: super::RetentionConfig::default(),
        }
    }

    /// How long its inbox entries and dead letters are kept (default: the chassis' defaults,
    /// 14 and 30 days), purged every `purge_interval_secs` while it runs.
    pub fn retention(mut self, retention: super::RetentionConfig) -> Self {
        self.retention = retention;
        self
    }

    /// How many times a handler may fail with [`HandleError::Retry`] on one event before it is
    /// parked (default 10; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait after a handler's first failure, doubling up to `max` (default 100 ms to 30 s).
    /// Reconnecting to an unreachable producer or NATS follows it too, but never waits more than
    /// 2 s.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// How long one feed request waits for new events (default 5 s, at most 30 s). Keep it under
    /// the producer's request timeout.
    pub fn long_poll(mut self, wait: Duration) -> Self {
        self.long_poll = wait.min(Duration::from_millis(super::feed::MAX_WAIT_MS));
        self
    }

    /// Sends `Authorization: Bearer <token>` to a feed served with `feed_router_with_auth`;
    /// `token` is asked before every request (cache and refresh inside it).
    pub fn with_bearer<F, Fut>(mut self, token: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.token = Some(Arc::new(move || Box::pin(token())));
        self
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs [`Consumer::run`] on its own task.
    pub fn spawn<H: Handler>(self, handler: H, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(handler, shutdown))
    }

    /// Handles events until `shutdown`; the event in hand is finished (or left for next time)
    /// first. Failures to reach the producer, NATS or the database are logged and retried.
    pub async fn run<H: Handler>(self, handler: H, shutdown: Shutdown) {
        tracing::info!(consumer = %self.name, producer = %self.producer, "event consumer started");
        self.spawn_purge(&shutdown);
        match &self.source {
            Source::Feed(client) => super::pull::run_feed(&self, client, &handler, &shutdown).await,
            Source::Nats(config) => super::pull::run_nats(&self, config, &handler, &shutdown).await,
        }
        tracing::info!(consumer = %self.name, "event consumer stopped");
    }

    /// Forgets old inbox entries and dead letters every purge interval, until `shutdown`.
    fn spawn_purge(&self, shutdown: &Shutdown) {
        let Some(every) = self.retention.interval() else {
            return;
        };
        let (db, name, shutdown) = (self.db.clone(), self.name.clone(), shutdown.clone());
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let (inbox, letters) = (
            millis(self.retention.inbox()),
            millis(self.retention.dead_letters()),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.wait() => return,
                    _ = tick.tick() => {}
                }
                let now = super::event::now_ms();
                match store::purge(
                    &db,
                    &name,
                    now.saturating_sub(inbox),
                    now.saturating_sub(letters),
                )
                .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(consumer = %name, purged = n, "inbox entries and dead letters past their retention deleted")
                    }
                    Err(err) => {
                        tracing::warn!(consumer = %name, error = %crate::problem::ErrorChain(&err), "cannot purge the inbox; will retry")
                    }
                }
            }
        });
    }

    /// Handles `event` (at `position` in the source) unless the inbox has it, then records the
    /// outcome and the position.
    pub(super) async fn process<H: Handler>(
        &self,
        handler: &H,
        event: &Event,
        position: Option<i64>,
        shutdown: &Shutdown,
    ) -> Result<Outcome, sqlx::Error> {
        let labels = [("consumer", self.name.clone())];
        let key = self.offset_key();
        let offset = position.map(|position| store::Offset {
            key: &key,
            position,
        });
        if store::handled(&self.db, &self.name, &event.id).await? {
            store::advance(&self.db, offset).await?;
            metrics::counter!("events_skipped_total", &labels).increment(1);
            tracing::debug!(consumer = %self.name, event_id = %event.id, "already handled; skipped");
            return Ok(Outcome::Done);
        }
        match self.attempt(handler, event, shutdown).await {
            Attempt::Handled => {
                store::record_handled(&self.db, &self.name, &event.id, offset).await?;
                Ok(Outcome::Done)
            }
            Attempt::Failed { reason, attempts } => {
                store::park(&self.db, &self.name, event, &reason, attempts, offset).await?;
                Ok(Outcome::Done)
            }
            Attempt::Interrupted => Ok(Outcome::Interrupted),
        }
    }

    /// The key its offset is kept under (see [`store::Offset`]).
    pub(super) fn offset_key(&self) -> String {
        match self.source {
            Source::Feed(_) => self.name.clone(),
            Source::Nats(_) => format!("{}@nats", self.name),
        }
    }

    /// Hands replayed dead letters to the handler again, oldest first.
    pub(super) async fn replay_pending<H: Handler>(
        &self,
        handler: &H,
        shutdown: &Shutdown,
    ) -> Result<(), sqlx::Error> {
        for letter in store::pending_replays(&self.db, &self.name).await? {
            if shutdown.is_triggered() {
                break;
            }
            tracing::info!(consumer = %self.name, dead_letter = %letter.id, event_id = %letter.event.id, "replaying a dead letter");
            if store::handled(&self.db, &self.name, &letter.event.id).await? {
                store::replay_succeeded(&self.db, &letter).await?;
                continue;
            }
            match self.attempt(handler, &letter.event, shutdown).await {
                Attempt::Handled => store::replay_succeeded(&self.db, &letter).await?,
                Attempt::Failed { reason, attempts } => {
                    store::repark(&self.db, &letter, &reason, attempts).await?;
                }
                Attempt::Interrupted => break,
            }
        }
        Ok(())
    }

    /// Calls the handler until it succeeds, poisons, runs out of attempts or shutdown begins.
    async fn attempt<H: Handler>(
        &self,
        handler: &H,
        event: &Event,
        shutdown: &Shutdown,
    ) -> Attempt {
        let labels = [("consumer", self.name.clone())];
        let span = event_span(&self.name, event);
        // Only the producer this consumer reads may speak on its stream or feed: an event that
        // names another source (forged, or misrouted) is never handled, only parked for a person
        // to look at. (NATS permissions keep others from publishing there; this holds even if
        // they were wrong.)
        let expected = format!("souk/{}", self.producer);
        if event.source != expected {
            metrics::counter!("events_foreign_source_total", &labels).increment(1);
            let reason = format!(
                "the event's source {:?} is not {expected:?}, the producer this consumer reads: refused, never handled",
                event.source
            );
            span.in_scope(|| tracing::error!(%reason, "event from a foreign source parked"));
            return Attempt::Failed {
                reason,
                attempts: 0,
            };
        }
        let mut attempts = 0;
        // Failures for want of infrastructure: they never count towards parking.
        let mut outages: u32 = 0;
        loop {
            attempts += 1;
            let reason = match handler.handle(event).instrument(span.clone()).await {
                Ok(()) => {
                    metrics::counter!("events_handled_total", &labels).increment(1);
                    return Attempt::Handled;
                }
                Err(HandleError::Poison(reason)) => reason,
                Err(HandleError::Unavailable(reason)) => {
                    outages = outages.saturating_add(1);
                    attempts -= 1;
                    metrics::counter!("events_retried_total", &labels).increment(1);
                    metrics::counter!("events_unavailable_total", &labels).increment(1);
                    let wait = backoff(self.first_backoff, self.max_backoff, outages);
                    span.in_scope(|| tracing::warn!(%reason, outages, wait_ms = wait.as_millis() as u64, "event handler's infrastructure is unavailable; retrying, never parking"));
                    if !sleep_or_shutdown(wait, shutdown).await {
                        return Attempt::Interrupted;
                    }
                    continue;
                }
                Err(HandleError::Retry(reason)) if attempts >= self.max_attempts => {
                    format!("gave up after {attempts} attempts: {reason}")
                }
                Err(HandleError::Retry(reason)) => {
                    metrics::counter!("events_retried_total", &labels).increment(1);
                    let wait = backoff(self.first_backoff, self.max_backoff, attempts);
                    span.in_scope(|| tracing::warn!(%reason, attempts, wait_ms = wait.as_millis() as u64, "event handler failed; retrying"));
                    if !sleep_or_shutdown(wait, shutdown).await {
                        return Attempt::Interrupted;
                    }
                    continue;
                }
            };
            metrics::counter!("events_parked_total", &labels).increment(1);
            span.in_scope(|| tracing::error!(%reason, attempts, "event parked as a dead letter"));
            return Attempt::Failed { reason, attempts };
        }
    }
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Handled, skipped or parked: move on.
    Done,
    /// Shutdown began while it waited to be retried: it is left for next time.
    Interrupted,
}

enum Attempt {
    Handled,
    Failed { reason: String, attempts: u32 },
    Interrupted,
}

/// The longest wait before reconnecting to an unreachable producer or NATS. Short, unlike a
/// handler's retries: a refused connection costs the other side nothing, and once it is back the
/// backlog should flow within seconds, not after a backoff that grew during the outage.
pub(super) const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// `first` doubled for each failure after the first, at most `max`.
pub(super) fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    first.saturating_mul(factor).min(max)
}

/// Sleeps for `wait`; `false` when shutdown began first.
pub(super) async fn sleep_or_shutdown(wait: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = shutdown.wait() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// A span for handling `event`: a child of the span that published it (so a checkout and what
/// its events set off are one trace) and linked to it, as messaging spans are.
fn event_span(consumer: &str, event: &Event) -> tracing::Span {
    let service = consumer.split('.').next().unwrap_or(consumer);
    let span = tracing::info_span!(
        "event",
        otel.name = %format_args!("handle {}", event.type_),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        consumer,
        event_id = %event.id,
        event_type = %event.type_,
        subject = %event.subject,
        "souk.service" = service,
        "messaging.message.id" = %event.id,
    );
    crate::telemetry::continue_from(&span, event.traceparent.as_deref(), true);
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let (first, max) = (Duration::from_millis(100), Duration::from_secs(30));
        let waits: Vec<_> = (1..=11)
            .map(|n| backoff(first, max, n).as_millis())
            .collect();
        assert_eq!(
            waits,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000
            ]
        );
        assert_eq!(backoff(first, max, 1000), max);
    }
}
