//! Money as the catalog states it: integer minor units and an ISO 4217 code, never floats.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount of money, e.g. `{"amount": 1999, "currency": "USD"}` for $19.99.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Minor units (cents for USD).
    #[schema(minimum = 0, example = 1999)]
    pub amount: i64,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
}

impl Money {
    /// `self` times `n`, or `None` on overflow.
    pub fn times(&self, n: u8) -> Option<Self> {
        Some(Self {
            amount: self.amount.checked_mul(i64::from(n))?,
            currency: self.currency.clone(),
        })
    }

    /// `self` plus `other`, or `None` when the currencies differ or the sum overflows.
    pub fn plus(&self, other: &Self) -> Option<Self> {
        if self.currency != other.currency {
            return None;
        }
        Some(Self {
            amount: self.amount.checked_add(other.amount)?,
            currency: self.currency.clone(),
        })
    }
}
