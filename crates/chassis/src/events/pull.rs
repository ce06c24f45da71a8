//! The consumer's two read loops: long-polling the producer's feed, or a durable JetStream pull
//! consumer. Both hand events to [`Consumer::process`] one at a time, in order.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;

use super::consumer::{Consumer, Outcome, RECONNECT_MAX, backoff, sleep_or_shutdown};
use super::feed::FeedPage;
use super::handler::Handler;
use super::nats::{self, NatsConfig};
use super::store;
use crate::client::ServiceClient;
use crate::server::Shutdown;

/// Events asked for per feed request.
const FEED_PAGE: u32 = 100;
/// How long JetStream waits for an acknowledgement before redelivering. Kept short so that a
/// restarted consumer soon gets back an event its predecessor died holding (only one may be
/// unacknowledged at a time); handlers that take longer are kept alive by progress
/// acknowledgements.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// How often a handler still at work tells JetStream so.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// How long one pull request waits for a message: a request left behind by a stopped consumer
/// is soon gone.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How often a NATS consumer waiting for messages looks for replayed dead letters.
const REPLAY_CHECK: Duration = Duration::from_secs(1);

/// Reads `client`'s feed until shutdown, retrying failures with backoff.
pub(super) async fn run_feed<H: Handler>(
    consumer: &Consumer,
    client: &ServiceClient,
    handler: &H,
    shutdown: &Shutdown,
) {
    // The call must outlast the long-poll it asks for.
    let client = client
        .clone()
        .with_timeout(consumer.long_poll + client.timeout());
    let mut after = None;
    let mut failures = 0;
    while !shutdown.is_triggered() {
        match feed_turn(consumer, &client, handler, shutdown, &mut after).await {
            Ok(()) => failures = 0,
            Err(reason) => {
                failures += 1;
                let wait = backoff(
                    consumer.first_backoff,
                    consumer.max_backoff.min(RECONNECT_MAX),
                    failures,
                );
                tracing::warn!(consumer = %consumer.name, %reason, failures, "reading the event feed failed; retrying");
                if !sleep_or_shutdown(wait, shutdown).await {
                    break;
                }
            }
        }
    }
}

/// One long-poll and the events it brought. `after` is the position reached (loaded first).
async fn feed_turn<H: Handler>(
    consumer: &Consumer,
    client: &ServiceClient,
    handler: &H,
    shutdown: &Shutdown,
    after: &mut Option<i64>,
) -> Result<(), String> {
    let position = match *after {
        Some(position) => position,
        None => {
            let stored = store::offset(&consumer.db, &consumer.name)
                .await
                .map_err(|e| db_error(&e))?;
            *after.insert(stored.unwrap_or(0))
        }
    };
    consumer
        .replay_pending(handler, shutdown)
        .await
        .map_err(|e| db_error(&e))?;
    let path = format!(
        "/v1/events?after={position}&limit={FEED_PAGE}&wait_ms={}",
        consumer.long_poll.as_millis()
    );
    let token = match &consumer.token {
        Some(source) => source().await,
        None => None,
    };
    let page: FeedPage = tokio::select! {
        () = shutdown.wait() => return Ok(()),
        page = client.get(&path, token.as_deref()) => page.map_err(|e| e.to_string())?,
    };
    for item in page.events {
        let mut event = item.event;
        event.seq = Some(item.seq);
        let outcome = consumer
            .process(handler, &event, Some(item.seq), shutdown)
            .await
            .map_err(|e| db_error(&e))?;
        if outcome == Outcome::Interrupted || shutdown.is_triggered() {
            break;
        }
        *after = Some(item.seq);
    }
    Ok(())
}

/// Reads the producer's stream through a durable pull consumer until shutdown, reconnecting
/// with backoff.
pub(super) async fn run_nats<H: Handler>(
    consumer: &Consumer,
    config: &NatsConfig,
    handler: &H,
    shutdown: &Shutdown,
) {
    let mut failures = 0;
    while !shutdown.is_triggered() {
        let Err(reason) = nats_session(consumer, config, handler, shutdown, &mut failures).await
        else {
            break;
        };
        failures += 1;
        let wait = backoff(
            consumer.first_backoff,
            consumer.max_backoff.min(RECONNECT_MAX),
            failures,
        );
        tracing::warn!(consumer = %consumer.name, %reason, failures, "consuming from NATS failed; retrying");
        if !sleep_or_shutdown(wait, shutdown).await {
            break;
        }
    }
}

/// One connection's worth of consuming; `Ok` only at shutdown.
async fn nats_session<H: Handler>(
    consumer: &Consumer,
    config: &NatsConfig,
    handler: &H,
    shutdown: &Shutdown,
    failures: &mut u32,
) -> Result<(), String> {
    let context = nats::connect(config, &format!("souk-consumer-{}", consumer.name)).await?;
    let stream = nats::ensure_stream(&context, config, &consumer.producer).await?;
    let durable = nats::durable_name(&consumer.name);
    let pull = stream
        .get_or_create_consumer(
            &durable,
            jetstream::consumer::pull::Config {
                durable_name: Some(durable.clone()),
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                // One unacknowledged event at a time, across every instance: order is kept.
                max_ack_pending: 1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("cannot open the durable consumer {durable}: {e}"))?;
    let mut messages = pull
        .stream()
        .max_messages_per_batch(1)
        .heartbeat(PULL_EXPIRES / 2)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(|e| format!("cannot pull from {durable}: {e}"))?;
    let mut replay_check = tokio::time::interval(REPLAY_CHECK);
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            _ = replay_check.tick() => {
                consumer.replay_pending(handler, shutdown).await.map_err(|e| db_error(&e))?;
            }
            next = messages.next() => {
                let message = match next {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => return Err(format!("pulling from {durable} failed: {err}")),
                    None => return Err(format!("the message stream of {durable} ended")),
                };
                if handle_message(consumer, handler, &message, shutdown).await? == Outcome::Interrupted {
                    break;
                }
                *failures = 0;
            }
        }
    }
    // Withdraw the pending pull request before going, so that JetStream does not hand the next
    // event to a consumer that is no longer there (it would wait out the ack deadline).
    drop(messages);
    let _ = tokio::time::timeout(Duration::from_secs(2), context.client().drain()).await;
    Ok(())
}

/// Processes one JetStream message, keeping it alive meanwhile, then acknowledges it.
async fn handle_message<H: Handler>(
    consumer: &Consumer,
    handler: &H,
    message: &jetstream::Message,
    shutdown: &Shutdown,
) -> Result<Outcome, String> {
    let position = message
        .info()
        .ok()
        .and_then(|info| i64::try_from(info.stream_sequence).ok());
    let event = match super::Event::from_json(&String::from_utf8_lossy(&message.payload), None) {
        Ok(event) => event,
        Err(err) => {
            // Not an event at all: nothing could ever handle it, and there is no event to park.
            metrics::counter!("events_parked_total", "consumer" => consumer.name.clone())
                .increment(1);
            tracing::error!(consumer = %consumer.name, subject = %message.subject, %err, "a NATS message is not a CloudEvent; dropped");
            let _ = message.ack_with(AckKind::Term).await;
            return Ok(Outcome::Done);
        }
    };
    let outcome = tokio::select! {
        outcome = consumer.process(handler, &event, position, shutdown) => outcome,
        () = keep_alive(message) => Ok(Outcome::Interrupted),
    };
    match outcome {
        Ok(Outcome::Done) => message
            .double_ack()
            .await
            .map(|()| Outcome::Done)
            .map_err(|e| format!("cannot acknowledge event {}: {e}", event.id)),
        Ok(Outcome::Interrupted) => {
            // Back to the stream at once, for whoever consumes next.
            let _ = message.ack_with(AckKind::Nak(None)).await;
            Ok(Outcome::Interrupted)
        }
        Err(err) => {
            let _ = message.ack_with(AckKind::Nak(None)).await;
            Err(db_error(&err))
        }
    }
}

/// Tells JetStream every so often that the message is still being worked on. Never returns.
async fn keep_alive(message: &jetstream::Message) {
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        if let Err(err) = message.ack_with(AckKind::Progress).await {
            tracing::debug!(%err, "cannot extend a message's acknowledgement deadline");
        }
    }
}

fn db_error(err: &sqlx::Error) -> String {
    format!(
        "the consumer's database failed: {}",
        crate::problem::ErrorChain(err)
    )
}
