//! The production transport: a relay publishes the outbox to NATS JetStream, in order.
//!
//! Each unpublished row is published to `souk.<service>.<type>` on stream `SOUK_<SERVICE>`
//! (subjects `souk.<service>.>`, created if missing) with `Nats-Msg-Id` = the event id, and marked
//! published only once JetStream has acknowledged it. A crash between the two re-publishes the
//! event on restart, and JetStream's de-duplication window drops the copy. Rows go one at a time,
//! each acknowledged before the next is sent, so the stream holds them in outbox order. While
//! NATS is away the relay retries with backoff (100 ms doubling to 2 s, so a backlog flows
//! within seconds of NATS coming back); at shutdown it
//! publishes what is left, within the drain deadline.
//!
//! Several instances of one producer may each run a relay: they publish the same rows in the
//! same order, and de-duplication keeps one copy of each.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::time::Instant;

use super::consumer::{RECONNECT_MAX, backoff, sleep_or_shutdown};
use super::event::Event;
use super::nats::{self, NatsConfig};
use super::outbox::Outbox;
use crate::server::Shutdown;

/// Rows read per batch.
const BATCH: u32 = 100;

impl Outbox {
    /// Starts the relay to NATS on its own task; it ends after flushing at `shutdown`.
    pub fn spawn_relay(&self, nats: NatsConfig, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(self.clone(), nats, shutdown))
    }
}

async fn run(outbox: Outbox, config: NatsConfig, shutdown: Shutdown) {
    tracing::info!(service = %outbox.service(), stream = %nats::stream_name(outbox.service()), "outbox relay started");
    let mut failures = 0;
    loop {
        let Err(reason) = session(&outbox, &config, &shutdown, &mut failures).await else {
            break;
        };
        failures += 1;
        let wait = backoff(Duration::from_millis(100), RECONNECT_MAX, failures);
        tracing::warn!(service = %outbox.service(), %reason, failures, "outbox relay failed; retrying");
        if !sleep_or_shutdown(wait, &shutdown).await {
            break;
        }
    }
    tracing::info!(service = %outbox.service(), "outbox relay stopped");
}

/// Relays until shutdown (then flushes and returns `Ok`), or until something fails.
async fn session(
    outbox: &Outbox,
    config: &NatsConfig,
    shutdown: &Shutdown,
    failures: &mut u32,
) -> Result<(), String> {
    let client_name = format!("souk-relay-{}", outbox.service());
    let context = nats::connect(config, &client_name).await?;
    nats::ensure_stream(&context, config, outbox.service()).await?;
    loop {
        let batch = tokio::select! {
            biased;
            () = shutdown.wait() => {
                flush(outbox, &context, shutdown.drain_deadline()).await;
                return Ok(());
            }
            batch = outbox.wait_for(Instant::now() + Duration::from_secs(1), || outbox.unpublished(BATCH)) => {
                batch.map_err(|e| format!("cannot read the outbox: {}", crate::problem::ErrorChain(&e)))?
            }
        };
        for event in &batch {
            publish(outbox, &context, event).await?;
            *failures = 0;
        }
    }
}

/// Publishes what is left, for at most `deadline`.
async fn flush(outbox: &Outbox, context: &jetstream::Context, deadline: Duration) {
    let drain = async {
        loop {
            let batch = outbox.unpublished(BATCH).await.map_err(|e| e.to_string())?;
            if batch.is_empty() {
                return Ok::<(), String>(());
            }
            for event in &batch {
                publish(outbox, context, event).await?;
            }
        }
    };
    match tokio::time::timeout(deadline, drain).await {
        Ok(Ok(())) => tracing::info!(service = %outbox.service(), "outbox flushed to NATS"),
        Ok(Err(reason)) => {
            tracing::warn!(service = %outbox.service(), %reason, "outbox not fully flushed at shutdown; the rest goes on the next start");
        }
        Err(_) => {
            tracing::warn!(service = %outbox.service(), "outbox flush ran out of time at shutdown; the rest goes on the next start");
        }
    }
}

/// Publishes one event, waits for JetStream's acknowledgement, then marks it published.
async fn publish(
    outbox: &Outbox,
    context: &jetstream::Context,
    event: &Event,
) -> Result<(), String> {
    let subject = nats::subject(outbox.service(), &event.type_);
    let message = PublishMessage::build()
        .payload(event.to_json().into())
        .message_id(&event.id);
    let ack = context
        .send_publish(subject, message)
        .await
        .map_err(|e| format!("cannot publish event {}: {e}", event.id))?
        .await
        .map_err(|e| format!("JetStream did not acknowledge event {}: {e}", event.id))?;
    crate::crash::point("relay.after-publish-before-mark");
    let Some(seq) = event.seq else {
        return Err(format!("event {} was read without its position", event.id));
    };
    outbox.mark_published(seq).await.map_err(|e| {
        format!(
            "cannot mark event {} published: {}",
            event.id,
            crate::problem::ErrorChain(&e)
        )
    })?;
    if ack.duplicate {
        tracing::debug!(event_id = %event.id, "JetStream had this event already");
    } else {
        metrics::counter!("events_published_total", "service" => outbox.service().to_owned())
            .increment(1);
    }
    Ok(())
}
