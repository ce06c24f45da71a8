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
    let mut cursor = Cursor::default();
    let mut failures = 0;
    while !shutdown.is_triggered() {
        match feed_turn(consumer, &client, handler, shutdown, &mut cursor).await {
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

/// Where a feed consumer stands: the position reached and the producer's epoch it counts in
/// (loaded from its store on the first turn).
#[derive(Debug, Default)]
struct Cursor {
    after: Option<i64>,
    epoch: Option<String>,
}

/// One long-poll and the events it brought.
async fn feed_turn<H: Handler>(
    consumer: &Consumer,
    client: &ServiceClient,
    handler: &H,
    shutdown: &Shutdown,
    cursor: &mut Cursor,
) -> Result<(), String> {
    let position = match cursor.after {
        Some(position) => position,
        None => {
            let (stored, epoch) = store::cursor(&consumer.db, &consumer.name)
                .await
                .map_err(|e| db_error(&e))?;
            cursor.epoch = epoch;
            *cursor.after.insert(stored.unwrap_or(0))
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
        page = client.get(&path, token.as_deref()) => page.map_err(|e| behind_retention(consumer, position, e))?,
    };
    if !follows(consumer, &page, position, cursor).await? {
        return Ok(());
    }
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
        cursor.after = Some(item.seq);
    }
    Ok(())
}

/// Whether `page` continues what this consumer read. A producer whose outbox has another epoch
/// (its store recreated or swapped) is read again from its start, and one whose outbox is behind
/// this consumer's position (restored from a backup) again from the oldest event it keeps:
/// loudly, and never skipping an event (the inbox drops what was handled). `false` when the
/// cursor moved: ask again.
async fn follows(
    consumer: &Consumer,
    page: &FeedPage,
    position: i64,
    cursor: &mut Cursor,
) -> Result<bool, String> {
    let labels = [("consumer", consumer.name.clone())];
    if !page.epoch.is_empty() {
        match cursor.epoch.as_deref() {
            None => {
                store::adopt_epoch(&consumer.db, &consumer.name, &page.epoch)
                    .await
                    .map_err(|e| db_error(&e))?;
                cursor.epoch = Some(page.epoch.clone());
            }
            Some(known) if known != page.epoch => {
                metrics::counter!("events_epoch_changes_total", &labels).increment(1);
                tracing::error!(consumer = %consumer.name, producer = %consumer.producer, old = known, new = %page.epoch, position, "the producer's outbox has another epoch (its store was recreated or replaced): reading it again from the start; the inbox skips what was handled");
                store::reset_cursor(&consumer.db, &consumer.name, 0, &page.epoch)
                    .await
                    .map_err(|e| db_error(&e))?;
                *cursor = Cursor {
                    after: Some(0),
                    epoch: Some(page.epoch.clone()),
                };
                return Ok(false);
            }
            Some(_) => {}
        }
    }
    if let Some(head) = page.head
        && head < position
    {
        metrics::counter!("events_rewound_total", &labels).increment(1);
        tracing::error!(consumer = %consumer.name, producer = %consumer.producer, head, position, "the producer's outbox is behind this consumer (restored from a backup?): reading it again from the oldest event it keeps; the inbox skips what was handled");
        let epoch = cursor.epoch.clone().unwrap_or_default();
        store::reset_cursor(&consumer.db, &consumer.name, page.purged_through, &epoch)
            .await
            .map_err(|e| db_error(&e))?;
        cursor.after = Some(page.purged_through);
        return Ok(false);
    }
    Ok(true)
}

/// A failed feed request's reason; a 410 says this consumer is behind the producer's retention,
/// which it reports (and counts) every time rather than skip what it never read.
fn behind_retention(consumer: &Consumer, position: i64, err: crate::client::ClientError) -> String {
    let crate::client::ClientError::Status { status, body, .. } = &err else {
        return err.to_string();
    };
    if *status != http::StatusCode::GONE {
        return err.to_string();
    }
    let oldest = body["oldest_kept"].as_i64().unwrap_or_default();
    metrics::counter!("events_behind_retention_total", "consumer" => consumer.name.clone())
        .increment(1);
    tracing::error!(consumer = %consumer.name, producer = %consumer.producer, position, oldest_kept = oldest, "this consumer is behind the producer's retention: events it never read were deleted; it skips nothing by itself (an operator moves its offset, see the chassis events docs)");
    format!(
        "behind the producer's retention: events {} to {} are gone",
        position + 1,
        oldest - 1
    )
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
    let stream = nats::producer_stream(&context, &consumer.producer).await?;
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
    // The last stream sequence handled: a later message further on than the next one means the
    // stream deleted messages (its age or size limit) before this consumer read them.
    let mut last = store::offset(&consumer.db, &consumer.offset_key())
        .await
        .map_err(|e| db_error(&e))?;
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
                let sequence = message.info().ok().and_then(|info| i64::try_from(info.stream_sequence).ok());
                if let (Some(seen), Some(sequence)) = (last, sequence)
                    && sequence > seen + 1
                {
                    // Another instance of this consumer may have handled the ones between (one
                    // unacknowledged message at a time, its offset saved before its ack).
                    let saved = store::offset(&consumer.db, &consumer.offset_key())
                        .await
                        .map_err(|e| db_error(&e))?;
                    let seen = saved.unwrap_or(seen).max(seen);
                    if sequence > seen + 1 {
                        lost(consumer, seen, sequence);
                    }
                }
                if handle_message(consumer, handler, &message, shutdown).await? == Outcome::Interrupted {
                    break;
                }
                last = last.max(sequence);
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

/// Messages `last + 1 .. sequence` were deleted from the stream before this consumer read them:
/// said loudly and counted (`events_lost_total`), since NATS gives nothing back to wait for.
fn lost(consumer: &Consumer, last: i64, sequence: i64) {
    let missing = u64::try_from(sequence - last - 1).unwrap_or_default();
    metrics::counter!("events_lost_total", "consumer" => consumer.name.clone()).increment(missing);
    tracing::error!(consumer = %consumer.name, producer = %consumer.producer, first = last + 1, last = sequence - 1, missing, "events were deleted from the stream before this consumer read them (its retention): this consumer behind it never saw them");
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
