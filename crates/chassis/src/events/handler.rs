//! What a consuming service writes: a [`Handler`] for events, and the [`HandleError`] that says
//! whether a failed event is worth another try.

use crate::client::ClientError;

use super::event::Event;

/// How a service reacts to one event. Implement it on a type holding what the work needs.
///
/// Delivery is at least once: the same event may come again (a redelivery, a restart before the
/// offset was saved, a second instance). Make the effect idempotent by recording the event in
/// the inbox inside the transaction that makes the effect — [`inbox_record_sqlite`] or
/// [`inbox_record_postgres`](super::inbox_record_postgres) — and doing nothing when it says the
/// event was handled already.
///
/// [`inbox_record_sqlite`]: super::inbox_record_sqlite
pub trait Handler: Send + Sync + 'static {
    /// Handles `event`; an error says whether trying again can help.
    fn handle(&self, event: &Event) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// Why an event was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Something transient (a database or neighbour away): the same event is tried again after
    /// a backoff (100 ms doubling to 30 s), holding back the events behind it to keep their order,
    /// and parked as a dead letter once the attempts run out.
    #[error("transient failure: {0}")]
    Retry(String),
    /// The event can never be handled (its data does not parse, it breaks an invariant): it is
    /// parked as a dead letter at once, and the consumer moves on.
    #[error("cannot be handled: {0}")]
    Poison(String),
    /// Infrastructure the handler needs cannot be reached (its store is down): the same event is
    /// tried again with the same backoff, for as long as it takes — never parked. An outage says
    /// nothing about the event, and parking every event that meets it would leave them all for
    /// an operator to replay (and the effects undone meanwhile).
    #[error("infrastructure unavailable: {0}")]
    Unavailable(String),
}

/// Database errors are transient: the outage or conflict may pass. A database that cannot be
/// reached at all is an outage ([`HandleError::Unavailable`]), never the event's fault.
impl From<sqlx::Error> for HandleError {
    fn from(err: sqlx::Error) -> Self {
        let reason = crate::problem::ErrorChain(&err).to_string();
        if crate::db::is_unavailable(&err) {
            Self::Unavailable(reason)
        } else {
            Self::Retry(reason)
        }
    }
}

/// Data that does not parse will not parse next time either.
impl From<serde_json::Error> for HandleError {
    fn from(err: serde_json::Error) -> Self {
        Self::Poison(format!(
            "the event's data is not what this consumer reads: {err}"
        ))
    }
}

/// A neighbour that cannot answer may answer later; one that answered no will answer no again.
impl From<ClientError> for HandleError {
    fn from(err: ClientError) -> Self {
        if err.is_unavailable() {
            Self::Retry(err.to_string())
        } else {
            Self::Poison(err.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_sort_into_retry_and_poison() {
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(matches!(HandleError::from(json), HandleError::Poison(_)));
        assert!(matches!(
            HandleError::from(sqlx::Error::PoolTimedOut),
            HandleError::Unavailable(_)
        ));
        assert!(matches!(
            HandleError::from(sqlx::Error::RowNotFound),
            HandleError::Retry(_)
        ));
        let away = ClientError::Unavailable {
            service: "catalog".into(),
            reason: "down".into(),
        };
        assert!(matches!(HandleError::from(away), HandleError::Retry(_)));
    }
}
