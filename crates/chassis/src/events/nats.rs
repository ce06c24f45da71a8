//! NATS JetStream plumbing shared by the relay and consumers: settings, connection, names.

use std::time::Duration;

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

/// Where NATS is and how long to wait for it (`[<service>.events.nats]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// The server, `nats://host:4222` (credentials may be given as `nats://user:pass@host`; the
    /// URL is never logged).
    pub url: String,
    /// How long connecting may take before it counts as failed (and is retried).
    pub connect_timeout_ms: u64,
    /// How long to wait for JetStream to answer a request or acknowledge a publish.
    pub request_timeout_ms: u64,
    /// JetStream's de-duplication window for a stream the chassis creates: a message id seen
    /// within it is stored once, however often it is published.
    pub duplicate_window_secs: u64,
    /// How long a stream keeps a message (JetStream's `MaxAge`), in seconds: 7 days, like the
    /// outbox. Applied to existing streams too. A consumer that falls further behind loses
    /// messages: it logs and counts the gap (`events_lost_total`), never silently.
    pub stream_max_age_secs: u64,
    /// The most bytes a stream keeps (JetStream's `MaxBytes`; the oldest go first); 0 for no
    /// limit beyond the age.
    pub stream_max_bytes: u64,
    /// This service's NATS user (its name, in the deployments): the server lets each user
    /// publish only its own events and read only the streams it consumes. Empty: no credentials.
    pub user: String,
    /// Its password (from a Secret: `SOUK_<SERVICE>__EVENTS__NATS__PASSWORD`); never logged.
    pub password: crate::Secret,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            duplicate_window_secs: 120,
            stream_max_age_secs: 7 * 24 * 3600,
            stream_max_bytes: 0,
            user: String::new(),
            password: crate::Secret::default(),
        }
    }
}

impl NatsConfig {
    /// A config for `url` with the other settings at their defaults.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// Connects to NATS once (the client then reconnects on its own) and opens JetStream.
pub(crate) async fn connect(
    config: &NatsConfig,
    client_name: &str,
) -> Result<jetstream::Context, String> {
    let mut options = async_nats::ConnectOptions::new();
    if !config.user.is_empty() {
        // Replies (JetStream acknowledgements, pulled messages) come to inboxes under a prefix
        // of this user's own, which the server lets only this user read: no other service can
        // subscribe to `_INBOX.>` and read them.
        options = options
            .user_and_password(config.user.clone(), config.password.expose().to_owned())
            .custom_inbox_prefix(inbox_prefix(&config.user));
    }
    let client = options
        .name(client_name)
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
        .request_timeout(Some(Duration::from_millis(config.request_timeout_ms)))
        .connect(config.url.as_str())
        .await
        .map_err(|e| format!("cannot connect to NATS: {e}"))?;
    let mut context = jetstream::new(client);
    context.set_timeout(Duration::from_millis(config.request_timeout_ms));
    Ok(context)
}

/// The producer's stream, created with the chassis' settings if it does not exist; its limits
/// (age, bytes) brought up to the configured ones if it does.
pub(crate) async fn ensure_stream(
    context: &jetstream::Context,
    config: &NatsConfig,
    service: &str,
) -> Result<jetstream::stream::Stream, String> {
    let wanted = jetstream::stream::Config {
        name: stream_name(service),
        subjects: vec![format!("souk.{}.>", token(service))],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(config.duplicate_window_secs),
        max_age: Duration::from_secs(config.stream_max_age_secs),
        max_bytes: i64::try_from(config.stream_max_bytes)
            .ok()
            .filter(|b| *b > 0)
            .unwrap_or(-1),
        ..Default::default()
    };
    let failed = |e: &dyn std::fmt::Display| {
        format!(
            "cannot open the JetStream stream {}: {e}",
            stream_name(service)
        )
    };
    let mut stream = context
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(|e| failed(&e))?;
    let current = stream.info().await.map_err(|e| failed(&e))?.config.clone();
    if current.max_age != wanted.max_age || current.max_bytes != wanted.max_bytes {
        let updated = jetstream::stream::Config {
            max_age: wanted.max_age,
            max_bytes: wanted.max_bytes,
            ..current
        };
        context
            .update_stream(updated)
            .await
            .map_err(|e| failed(&e))?;
        tracing::info!(stream = %stream_name(service), max_age_secs = config.stream_max_age_secs, "stream limits updated");
        stream = context
            .get_stream(stream_name(service))
            .await
            .map_err(|e| failed(&e))?;
    }
    Ok(stream)
}

/// The producer's stream, as a consumer opens it: only looked up (`STREAM.INFO`), never made
/// nor changed — that is the producer's relay's work ([`ensure_stream`]), and a deployment's
/// NATS permissions let only the producer do it (a consumer's `STREAM.CREATE` is a permissions
/// violation that NATS answers with nothing: a 5 s request timeout and a reconnect). A consumer
/// started before its producer waits, retrying with its backoff.
pub(crate) async fn producer_stream(
    context: &jetstream::Context,
    producer: &str,
) -> Result<jetstream::stream::Stream, String> {
    let name = stream_name(producer);
    context.get_stream(&name).await.map_err(|e| match e.kind() {
        jetstream::context::GetStreamErrorKind::JetStream(err)
            if err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
        {
            format!("the JetStream stream {name} does not exist yet: {producer}'s relay makes it")
        }
        _ => format!("cannot open the JetStream stream {name}: {e}"),
    })
}

/// `_INBOX_<user>`: where a user with credentials gets its replies (the deployments' NATS
/// permissions let user `history` subscribe to `_INBOX_history.>` and nothing of the kind else).
pub(crate) fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{}", token(user))
}

/// `SOUK_<SERVICE>`: the stream holding `service`'s events.
pub fn stream_name(service: &str) -> String {
    format!("SOUK_{}", token(service).to_ascii_uppercase())
}

/// The subject an event of `type_` from `service` is published on: `souk.<service>.<type>`, or
/// the type itself when it already starts with `souk.<service>.` (as souk's types do).
pub fn subject(service: &str, type_: &str) -> String {
    let prefix = format!("souk.{}.", token(service));
    let tail: String = type_
        .strip_prefix(&prefix)
        .unwrap_or(type_)
        .split('.')
        .map(token)
        .collect::<Vec<_>>()
        .join(".");
    format!("{prefix}{tail}")
}

/// A durable consumer's name: NATS allows no dots in it, so `inventory.orders` becomes
/// `inventory_orders`.
pub(crate) fn durable_name(consumer: &str) -> String {
    token(consumer)
}

/// One subject token or stream-name part: what NATS refuses (`.`, `*`, `>`, whitespace, and
/// anything unusual) becomes `_`; an empty token becomes `_`.
fn token(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_nats_accepts() {
        assert_eq!(stream_name("orders"), "SOUK_ORDERS");
        assert_eq!(
            subject("orders", "souk.orders.order_confirmed.v1"),
            "souk.orders.order_confirmed.v1"
        );
        assert_eq!(subject("orders", "refunded"), "souk.orders.refunded");
        assert_eq!(subject("orders", "a b.*.>"), "souk.orders.a_b._._");
        assert_eq!(durable_name("inventory.orders"), "inventory_orders");
    }

    #[test]
    fn config_has_defaults_and_refuses_unknown_keys() {
        let config: NatsConfig = serde_json::from_str(r#"{"url": "nats://n:4222"}"#).unwrap();
        assert_eq!(config, NatsConfig::with_url("nats://n:4222"));
        assert!(serde_json::from_str::<NatsConfig>(r#"{"urll": "x"}"#).is_err());
    }
}
