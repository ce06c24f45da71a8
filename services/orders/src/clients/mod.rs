//! The services orders calls, each with the few fields orders reads (tolerant reader): never
//! another service's crate. Step 1 of checkout reads the cart, the catalog and the caller's
//! payment method with the caller's own token; the saga reserves, commits and releases in
//! inventory and charges and refunds in payments with service tokens.
//!
//! What each saga call came to is classified here, where the wire shapes are known, into the
//! saga's [`Outcome`](crate::domain::Outcome) plus a note for logs.

pub mod cart;
pub mod catalog;
pub mod inventory;
pub mod payments;

use souk_chassis::client::ClientError;

pub use cart::{Cart, CartItem};
pub use catalog::Catalog;
pub use inventory::Inventory;
pub use payments::Payments;

use crate::domain::{Failure, Outcome, Timestamp};

/// What one saga call came to: the outcome the state machine reads, and a note for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// For the state machine.
    pub outcome: Outcome,
    /// What happened, for logs and the saga's `last_error`.
    pub note: String,
    /// When inventory's hold lapses, when a reservation said so.
    pub hold_until: Option<Timestamp>,
}

impl Attempt {
    /// An outcome with its note.
    pub fn new(outcome: Outcome, note: impl Into<String>) -> Self {
        Self {
            outcome,
            note: note.into(),
            hold_until: None,
        }
    }

    /// A call that settled nothing because `err` came back.
    pub fn failed(err: &ClientError) -> Self {
        Self::new(Outcome::Failed(Failure::Unavailable), err.to_string())
    }
}

/// The slug of a souk problem (`out-of-stock` of `urn:souk:problem:out-of-stock`), if `body` is one.
pub(crate) fn problem_slug(body: &serde_json::Value) -> Option<&str> {
    body.get("type")?
        .as_str()?
        .strip_prefix("urn:souk:problem:")
}

/// Whether a status means "not now" rather than "no": a token or capacity problem that may pass
/// (401, 403, 408, 429). Such answers are retried like an outage.
pub(crate) fn is_passing(status: http::StatusCode) -> bool {
    use http::StatusCode;
    matches!(
        status,
        StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn souk_problem_slugs_are_read_from_type() {
        let body = serde_json::json!({"type": "urn:souk:problem:out-of-stock", "status": 409});
        assert_eq!(problem_slug(&body), Some("out-of-stock"));
        assert_eq!(
            problem_slug(&serde_json::json!({"type": "about:blank"})),
            None
        );
        assert_eq!(problem_slug(&serde_json::Value::Null), None);
    }
}
