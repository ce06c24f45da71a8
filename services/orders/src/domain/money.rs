//! Money as integer minor units and an ISO 4217 currency code: never floats.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount of money, e.g. `{"amount": 1999, "currency": "USD"}` for $19.99.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Minor units (cents for USD), never negative.
    #[schema(minimum = 0, example = 1999)]
    pub amount: i64,
    /// ISO 4217 code.
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
}

/// An ISO 4217 currency code: three ASCII capital letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    /// Validates a currency code.
    pub fn parse(code: &str) -> Result<Self, String> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code.to_owned()))
        } else {
            Err(format!("{code:?} is not an ISO 4217 code"))
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
    /// `amount` minor units of `currency`; `None` if negative.
    pub fn new(amount: i64, currency: Currency) -> Option<Self> {
        (amount >= 0).then_some(Self { amount, currency })
    }

    /// Zero of `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self {
            amount: 0,
            currency,
        }
    }

    /// This amount `quantity` times; `None` on overflow or for a negative quantity.
    pub fn times(&self, quantity: i64) -> Option<Self> {
        if quantity < 0 {
            return None;
        }
        Some(Self {
            amount: self.amount.checked_mul(quantity)?,
            currency: self.currency.clone(),
        })
    }

    /// The sum of two amounts of one currency; `None` on overflow or for different currencies.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd(amount: i64) -> Money {
        Money::new(amount, Currency::parse("USD").unwrap()).unwrap()
    }

    #[test]
    fn currencies_are_three_capital_letters() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "", "E1R", "ÉUR"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_do_not_mix_and_amounts_do_not_go_negative() {
        let eur = Money::new(5, Currency::parse("EUR").unwrap()).unwrap();
        assert_eq!(usd(1).plus(&eur), None);
        assert_eq!(Money::new(-1, Currency::parse("USD").unwrap()), None);
        assert_eq!(usd(3).times(-1), None);
    }

    proptest! {
        #[test]
        fn arithmetic_is_exact_or_refused(a in 0..i64::MAX, b in 0..i64::MAX, q in 0..100i64) {
            match usd(a).plus(&usd(b)) {
                Some(sum) => prop_assert_eq!(i128::from(sum.amount), i128::from(a) + i128::from(b)),
                None => prop_assert!(i128::from(a) + i128::from(b) > i128::from(i64::MAX)),
            }
            match usd(a).times(q) {
                Some(product) => prop_assert_eq!(i128::from(product.amount), i128::from(a) * i128::from(q)),
                None => prop_assert!(i128::from(a) * i128::from(q) > i128::from(i64::MAX)),
            }
        }
    }
}
