//! A purchase as history shows it, and the facts that events contribute to it.
//!
//! Orders and payments publish independently, so their events reach history in any order: a
//! capture may come before the order it pays for. Each fact therefore *merges* into the row
//! instead of replacing it, and every merge is commutative and idempotent, so any arrival order
//! (and any repetition) ends in the same row:
//! - the order's details (lines, total, placing time) and each timestamp are set once, by the
//!   first fact that carries them; the others carry the same values;
//! - the status only moves forward: nothing known < pending < confirmed < cancelled;
//! - a fact about an order history has not heard of creates its row; a row no order event has
//!   reached yet (only a payment) is a placeholder that nobody is shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Instant;

/// How far an order has gone, as a number that only grows (stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Only a payment event has arrived: a placeholder, not shown.
    PaymentOnly = 0,
    /// Placed; the checkout saga runs.
    Pending = 1,
    /// Confirmed: stock sold, payment captured.
    Confirmed = 2,
    /// Cancelled: everything given back.
    Cancelled = 3,
}

impl Stage {
    /// As stored.
    pub fn rank(self) -> i64 {
        self as i64
    }

    /// From storage.
    pub fn from_rank(rank: i64) -> Option<Self> {
        [
            Self::PaymentOnly,
            Self::Pending,
            Self::Confirmed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.rank() == rank)
    }

    /// What clients see; `None` for a placeholder.
    pub fn status(self) -> Option<Status> {
        match self {
            Self::PaymentOnly => None,
            Self::Pending => Some(Status::Pending),
            Self::Confirmed => Some(Status::Confirmed),
            Self::Cancelled => Some(Status::Cancelled),
        }
    }
}

/// Where a purchase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Placed; payment and stock are being settled.
    Pending,
    /// Paid and confirmed.
    Confirmed,
    /// Cancelled; whatever was taken was given back.
    Cancelled,
}

/// An amount of money: integer minor units and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Minor units (cents for USD).
    #[schema(example = 1999)]
    pub amount: i64,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
}

impl Money {
    /// Checks an amount read from an event: not negative, a three-capital-letter currency.
    pub fn check(&self, field: &str) -> Result<(), String> {
        if self.amount < 0 {
            return Err(format!("{field}.amount is negative"));
        }
        let code = self.currency.as_bytes();
        if code.len() != 3 || !code.iter().all(u8::is_ascii_uppercase) {
            return Err(format!("{field}.currency is not an ISO 4217 code"));
        }
        Ok(())
    }
}

/// One line of a purchase, as it was bought: the product's name and price then, not now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Line {
    /// The catalog's product id.
    pub product_id: String,
    /// The product's name when it was bought.
    pub name: String,
    /// Units bought.
    #[schema(minimum = 1)]
    pub quantity: i64,
    /// The price of one unit when it was bought.
    pub unit_price: Money,
    /// `quantity × unit_price`.
    pub line_total: Money,
}

/// The card a purchase was paid with: never more than its brand and last four digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Card {
    /// `visa`, `mastercard`, `amex` or `unknown`.
    #[schema(example = "visa")]
    pub brand: String,
    /// The last four digits.
    #[schema(example = "4242")]
    pub last4: String,
}

/// A purchase, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The order.
    pub order_id: Uuid,
    /// Who bought it.
    pub user_id: String,
    /// Where it stands.
    pub status: Status,
    /// Why it was cancelled, as orders said (`out_of_stock`, `payment_declined`, …).
    pub cancel_reason: Option<String>,
    /// What was bought.
    pub lines: Vec<Line>,
    /// The sum of the lines.
    pub total: Money,
    /// The card, once its capture is known.
    pub payment: Option<Card>,
    /// When the order was placed.
    pub placed_at: Instant,
    /// When it was confirmed.
    pub confirmed_at: Option<Instant>,
    /// When its payment was refunded.
    pub refunded_at: Option<Instant>,
}

/// What one event says about a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// An order event: placed, confirmed or cancelled (each carries the whole order).
    Order(OrderFact),
    /// Its payment was captured with this card.
    Captured {
        /// The order paid for.
        order_id: Uuid,
        /// Who paid.
        user_id: String,
        /// The card.
        card: Card,
        /// When.
        captured_at: Instant,
    },
    /// Its payment was refunded.
    Refunded {
        /// The order refunded.
        order_id: Uuid,
        /// Who paid.
        user_id: String,
        /// When.
        refunded_at: Instant,
    },
}

/// What an order event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFact {
    /// The order.
    pub order_id: Uuid,
    /// Who placed it: orders is the authority on that.
    pub user_id: String,
    /// `Pending`, `Confirmed` or `Cancelled`, by the event's type.
    pub stage: Stage,
    /// Why it was cancelled (`order_cancelled` only).
    pub cancel_reason: Option<String>,
    /// What was bought.
    pub lines: Vec<Line>,
    /// The total.
    pub total: Money,
    /// When it was placed.
    pub placed_at: Instant,
    /// When it was confirmed (`order_confirmed` only).
    pub confirmed_at: Option<Instant>,
}

impl Fact {
    /// The order the fact is about.
    pub fn order_id(&self) -> Uuid {
        match self {
            Self::Order(order) => order.order_id,
            Self::Captured { order_id, .. } | Self::Refunded { order_id, .. } => *order_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_only_grow_and_map_to_statuses() {
        assert!(Stage::PaymentOnly < Stage::Pending);
        assert!(Stage::Pending < Stage::Confirmed && Stage::Confirmed < Stage::Cancelled);
        for stage in [
            Stage::PaymentOnly,
            Stage::Pending,
            Stage::Confirmed,
            Stage::Cancelled,
        ] {
            assert_eq!(Stage::from_rank(stage.rank()), Some(stage));
        }
        assert_eq!(Stage::from_rank(4), None);
        assert_eq!(Stage::PaymentOnly.status(), None);
        assert_eq!(Stage::Cancelled.status(), Some(Status::Cancelled));
    }

    #[test]
    fn money_from_events_is_checked() {
        let money = |amount, currency: &str| Money {
            amount,
            currency: currency.into(),
        };
        assert!(money(0, "USD").check("total").is_ok());
        assert!(
            money(-1, "USD")
                .check("total")
                .unwrap_err()
                .contains("total.amount")
        );
        for bad in ["usd", "US", "DOLLARS", ""] {
            assert!(money(1, bad).check("total").is_err(), "{bad}");
        }
    }
}
