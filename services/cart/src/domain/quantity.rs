//! How many of one product a line holds, and how many lines a cart may hold.

use serde::Serialize;
use utoipa::ToSchema;

/// The most distinct products one cart holds.
pub const MAX_LINES: usize = 100;

/// A line's quantity: 1 to 99 (0 is not a quantity: it means "remove the line").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[schema(value_type = u8, minimum = 1, maximum = 99)]
pub struct Quantity(u8);

impl Quantity {
    /// The largest quantity of one line.
    pub const MAX: u8 = 99;

    /// A quantity of 1..=99.
    pub fn new(value: i64) -> Result<Self, String> {
        match u8::try_from(value) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(format!("must be 1 to {} (0 removes the line)", Self::MAX)),
        }
    }

    /// The number.
    pub fn get(self) -> u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn only_1_to_99_are_quantities(value in any::<i64>()) {
            prop_assert_eq!(Quantity::new(value).is_ok(), (1..=99).contains(&value));
        }
    }

    #[test]
    fn the_bounds() {
        assert!(Quantity::new(0).is_err());
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::new(99).map(Quantity::get), Ok(99));
        assert!(Quantity::new(100).is_err());
        assert!(Quantity::new(-1).is_err());
    }
}
