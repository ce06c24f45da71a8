//! Money as integer minor units and an ISO 4217 currency code: never floats.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount of money, e.g. `{"amount": 1999, "currency": "USD"}` for $19.99.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Minor units (cents for USD); never negative for a price.
    #[schema(minimum = 0, example = 1999)]
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
            Err(format!("{code:?} is not an ISO 4217 currency code"))
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
    /// A non-negative price.
    pub fn price(amount: i64, currency: Currency) -> Result<Self, String> {
        if amount < 0 {
            return Err("a price cannot be negative".into());
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
        fn prices_are_never_negative(amount in any::<i64>()) {
            let usd = Currency::parse("USD").unwrap();
            prop_assert_eq!(Money::price(amount, usd).is_ok(), amount >= 0);
        }

        #[test]
        fn money_round_trips_through_json(amount in 0..i64::MAX) {
            let money = Money::price(amount, Currency::parse("EUR").unwrap()).unwrap();
            let back: Money = serde_json::from_str(&serde_json::to_string(&money).unwrap()).unwrap();
            prop_assert_eq!(back, money);
        }
    }
}
