//! The event envelope: a CloudEvents 1.0 structured-mode JSON document with JSON `data`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One event, as written to the outbox and delivered to consumers (CloudEvents 1.0, JSON).
///
/// The chassis knows nothing of what `data` means: the producer owns its schema, versioned in
/// `type` (`souk.orders.order_confirmed.v1`), and each consumer reads the few fields it needs
/// with [`Event::data_as`] into a type of its own (tolerant reader).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always `1.0`.
    pub specversion: String,
    /// A UUIDv7, unique across every producer: the key of de-duplication everywhere.
    pub id: String,
    /// The producer, `souk/<service>`.
    pub source: String,
    /// What happened, `souk.<service>.<name>.v<version>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// What it happened to, such as the order id.
    pub subject: String,
    /// When it was made, RFC 3339 UTC.
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The payload.
    pub data: serde_json::Value,
    /// The W3C trace context of the code that made it (CloudEvents' distributed-tracing
    /// extension), so a consumer's work joins the producer's trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Its position in the producer's outbox, when it came from the feed or the outbox; carried
    /// beside the CloudEvent, never inside it.
    #[serde(skip)]
    pub seq: Option<i64>,
}

impl Event {
    /// A new event of `source_service` (`orders`), of type `type_`, about `subject`, made now in
    /// the current span's trace.
    pub fn new(
        source_service: &str,
        type_: &str,
        subject: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            specversion: "1.0".to_owned(),
            id: uuid::Uuid::now_v7().to_string(),
            source: format!("souk/{source_service}"),
            type_: type_.to_owned(),
            subject: subject.into(),
            time: rfc3339(now_ms()),
            datacontenttype: "application/json".to_owned(),
            data,
            traceparent: current_traceparent(),
            seq: None,
        }
    }

    /// Reads `data` into the consumer's own type (unknown fields are ignored unless `T` refuses
    /// them). An error here means the event can never be handled: return it as
    /// [`HandleError::Poison`](super::HandleError::Poison) (the `?` operator does).
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }

    /// The CloudEvent as JSON text (without `seq`).
    pub(crate) fn to_json(&self) -> String {
        // A struct of strings and a `Value` always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the CloudEvent stored at outbox position `seq`.
    pub(crate) fn from_json(text: &str, seq: Option<i64>) -> Result<Self, serde_json::Error> {
        let mut event: Self = serde_json::from_str(text)?;
        event.seq = seq;
        Ok(event)
    }
}

fn current_traceparent() -> Option<String> {
    let mut headers = http::HeaderMap::new();
    crate::telemetry::inject_trace(&tracing::Span::current(), &mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// RFC 3339 in UTC with milliseconds (`2026-11-30T13:22:41.123Z`).
pub(crate) fn rfc3339(ms: i64) -> String {
    crate::time::Timestamp::from_millis(ms).to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_as_structured_cloudevents() {
        let event = Event::new(
            "orders",
            "souk.orders.order_confirmed.v1",
            "order-1",
            serde_json::json!({"total": {"amount": 1999, "currency": "USD"}}),
        );
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["source"], "souk/orders");
        assert_eq!(json["type"], "souk.orders.order_confirmed.v1");
        assert_eq!(json["subject"], "order-1");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["data"]["total"]["amount"], 1999);
        assert!(json.get("seq").is_none() && json.get("type_").is_none());
        assert!(json.get("traceparent").is_none(), "no trace, no field");
        let id = uuid::Uuid::parse_str(&event.id).unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert!(
            event.time.ends_with('Z') && event.time.len() == 24,
            "{}",
            event.time
        );
        let back = Event::from_json(&event.to_json(), Some(7)).unwrap();
        assert_eq!(back.seq, Some(7));
        assert_eq!(Event { seq: None, ..back }, event);
    }

    #[test]
    fn consumers_read_the_fields_they_need() {
        #[derive(Deserialize)]
        struct Mine {
            order_id: String,
        }
        let event = Event::new(
            "orders",
            "t",
            "s",
            serde_json::json!({"order_id": "o1", "other": true}),
        );
        assert_eq!(event.data_as::<Mine>().unwrap().order_id, "o1");
        assert!(event.data_as::<Vec<u8>>().is_err());
    }
}
