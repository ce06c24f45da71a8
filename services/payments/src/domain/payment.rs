//! Payments per order and their refunds: the states a payment moves through and what it records.
//!
//! ```text
//!            ┌──────────► captured ──► refunded
//!  pending ──┼──────────► declined
//!            └─(processor error: the row is removed, a retry starts again)
//!  (none) ───────────────► cancelled   refund before any charge: a tombstone that refuses later charges
//! ```

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Money, Timestamp};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// A charge is under way (the processor is being asked).
    Pending,
    /// The amount was authorised and captured.
    Captured,
    /// The processor declined the card; nothing was taken.
    Declined,
    /// It was captured, then refunded in full.
    Refunded,
    /// The order was cancelled before any charge: no charge will ever be taken for it.
    Cancelled,
}

impl PaymentStatus {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Captured => "captured",
            Self::Declined => "declined",
            Self::Refunded => "refunded",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Captured,
            Self::Declined,
            Self::Refunded,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Why the processor declined a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclineCode {
    /// The issuer refused, without saying why.
    CardDeclined,
    /// Not enough funds or credit.
    InsufficientFunds,
}

impl DeclineCode {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardDeclined => "card_declined",
            Self::InsufficientFunds => "insufficient_funds",
        }
    }

    /// The code of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::CardDeclined, Self::InsufficientFunds]
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

/// What the processor said about a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Authorised and captured.
    Captured,
    /// Declined: nothing was taken.
    Declined(DeclineCode),
}

/// What a charge asks for. Two requests for one order are the same charge exactly when these are
/// equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Who pays: the payment method must be theirs.
    pub user_id: String,
    /// The card to charge.
    pub payment_method_id: Uuid,
    /// How much.
    pub amount: Money,
}

/// A payment: the one charge of one order (or the tombstone of an order cancelled before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// UUIDv7.
    pub id: Uuid,
    /// The order; one payment per order.
    pub order_id: Uuid,
    /// Where it stands.
    pub status: PaymentStatus,
    /// What was asked; `None` for a tombstone (`cancelled`).
    pub request: Option<ChargeRequest>,
    /// Why the card was declined, for `declined`.
    pub decline_code: Option<DeclineCode>,
    /// The processor's charge, once it answered.
    pub processor_charge_id: Option<String>,
    /// When the current attempt at the processor began: a `pending` payment whose attempt is
    /// older than the lease is taken to be abandoned (its process died), and may be taken over.
    pub attempt_at: Timestamp,
    /// When the payment was first asked for.
    pub created_at: Timestamp,
    /// When the processor captured it.
    pub captured_at: Option<Timestamp>,
    /// When it was refunded.
    pub refunded_at: Option<Timestamp>,
}

/// A full refund of a captured payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// UUIDv7.
    pub id: Uuid,
    /// The payment refunded.
    pub payment_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// The whole captured amount.
    pub amount: Money,
    /// The processor's refund.
    pub processor_refund_id: String,
    /// When it was made.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in [
            PaymentStatus::Pending,
            PaymentStatus::Captured,
            PaymentStatus::Declined,
            PaymentStatus::Refunded,
            PaymentStatus::Cancelled,
        ] {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
        for code in [DeclineCode::CardDeclined, DeclineCode::InsufficientFunds] {
            assert_eq!(DeclineCode::parse(code.as_str()), Some(code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
        assert_eq!(PaymentStatus::parse("authorized"), None);
    }
}
