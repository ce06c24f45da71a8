//! Money as integer minor units and an ISO 4217 currency code: never floats.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount of money, e.g. `{"amount": 1999, "currency": "USD"}` for $19.99.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Minor units (cents for USD); a charge is always positive.
    #[schema(minimum = 1, example = 1999)]
    pub amount: i64,
    /// ISO 4217 code.
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
}

/// An ISO 4217 currency code: three ASCII capital letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    /// Validates a currency code.
    pub fn parse(code: &str) -> Result<Self, String> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code.to_owned()))
        } else {
            Err("must be an ISO 4217 code: three capital letters".to_owned())
        }
    }

    /// The code, e.g. `USD`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.0
    }
}

impl Money {
    /// An amount to charge: more than zero.
    pub fn positive(amount: i64, currency: Currency) -> Result<Self, String> {
        if amount <= 0 {
            return Err("must be a positive number of minor units".into());
        }
        Ok(Self { amount, currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currencies_are_three_capital_letters() {
        assert!(Currency::parse("USD").is_ok());
        for bad in ["usd", "US", "USDD", "", "U$D", "ÜSD"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn charges_are_always_positive(amount in any::<i64>()) {
            let usd = Currency::parse("USD").unwrap();
            prop_assert_eq!(Money::positive(amount, usd).is_ok(), amount > 0);
        }
    }
}
