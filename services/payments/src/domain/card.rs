//! Cards as payments sees them: a number it validates and hands to the processor's vault, and the
//! few facts it keeps (brand, last four digits, expiry).
//!
//! A [`CardNumber`] or [`Cvc`] never prints: their `Debug` shows at most the last four digits, and
//! they implement neither `Display` nor `Serialize`, so neither can reach a log line or a response
//! by accident.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// A card number: 12 to 19 digits that pass the Luhn check.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Validates what a client typed: spaces and dashes are dropped, the rest must be digits.
    pub fn parse(typed: &str) -> Result<Self, String> {
        let digits: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must contain only digits, spaces and dashes".into());
        }
        if !(12..=19).contains(&digits.len()) {
            return Err("must be 12 to 19 digits".into());
        }
        if !luhn(&digits) {
            return Err("is not a valid card number (its check digit is wrong)".into());
        }
        Ok(Self(digits))
    }

    /// The whole number. Only the processor's vault may keep it.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The last four digits, which may be shown and stored.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// The card network, from the number's prefix.
    pub fn brand(&self) -> Brand {
        let prefix = |n: usize| self.0[..n].parse::<u32>().unwrap_or(0);
        match self.0.as_bytes() {
            [b'4', ..] => Brand::Visa,
            [b'3', b'4' | b'7', ..] => Brand::Amex,
            _ if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) => {
                Brand::Mastercard
            }
            _ => Brand::Unknown,
        }
    }
}

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardNumber(…{})", self.last4())
    }
}

/// The Luhn (mod 10) check: every second digit from the right doubled, digit sums added.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2 == 1, d * 2) {
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
                (false, _) => d,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A card network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    /// Numbers starting with 4.
    Visa,
    /// 51–55, or 2221–2720.
    Mastercard,
    /// 34 or 37.
    Amex,
    /// Any other prefix.
    Unknown,
}

impl Brand {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
            Self::Unknown => "unknown",
        }
    }

    /// The brand of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Visa, Self::Mastercard, Self::Amex, Self::Unknown]
            .into_iter()
            .find(|b| b.as_str() == name)
    }
}

/// A card's expiry: valid through the last instant of its month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// 1 to 12.
    pub month: i64,
    /// Four digits.
    pub year: i64,
}

/// Cards are not issued for longer than this many years.
const MAX_YEARS_AHEAD: i64 = 50;

impl Expiry {
    /// Validates an expiry against `now`. An error names the field it is about (`exp_month` or
    /// `exp_year`).
    pub fn new(month: i64, year: i64, now: Timestamp) -> Result<Self, (&'static str, String)> {
        if !(1..=12).contains(&month) {
            return Err(("exp_month", "must be 1 to 12".into()));
        }
        let (this_year, this_month) = now.year_month();
        if !(1000..=9999).contains(&year) {
            return Err(("exp_year", "must be a four-digit year".into()));
        }
        if year < this_year {
            return Err(("exp_year", "the card has expired".into()));
        }
        if year == this_year && month < this_month {
            return Err(("exp_month", "the card has expired".into()));
        }
        if year > this_year + MAX_YEARS_AHEAD {
            return Err((
                "exp_year",
                format!("must be at most {MAX_YEARS_AHEAD} years ahead"),
            ));
        }
        Ok(Self { month, year })
    }
}

/// A card verification code: 3 or 4 digits, checked for shape and then forgotten (never stored).
#[derive(Clone, PartialEq, Eq)]
pub struct Cvc(String);

impl Cvc {
    /// Validates a code.
    pub fn parse(typed: &str) -> Result<Self, String> {
        if (3..=4).contains(&typed.len()) && typed.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(typed.to_owned()))
        } else {
            Err("must be 3 or 4 digits".into())
        }
    }
}

impl std::fmt::Debug for Cvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cvc(…)")
    }
}

/// A registered card as payments keeps it: no number, only the processor's token for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    /// UUIDv7.
    pub id: Uuid,
    /// The user it belongs to.
    pub owner: String,
    /// The card network.
    pub brand: Brand,
    /// The last four digits.
    pub last4: String,
    /// When the card expires.
    pub expiry: Expiry,
    /// The processor's token for the card: what a charge names.
    pub token: String,
    /// When it was registered.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2026-06-15T12:00:00Z.
    const JUNE_2026: Timestamp = Timestamp::from_millis(1_781_524_800_000);

    #[test]
    fn numbers_are_digits_of_the_right_length_with_a_valid_check_digit() {
        for good in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "378282246310005",
            "5555555555554444",
        ] {
            assert!(CardNumber::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "4242424242424241",     // check digit
            "4242x24242424242",     // a letter
            "４２４２424242424242", // full-width digits
            "42424242424",          // 11 digits
            "42424242424242424242", // 20 digits
            "",
            "    ",
        ] {
            assert!(CardNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn brands_come_from_the_prefix() {
        let brand = |n: &str| CardNumber::parse(n).unwrap().brand();
        assert_eq!(brand("4242424242424242"), Brand::Visa);
        assert_eq!(brand("5555555555554444"), Brand::Mastercard);
        assert_eq!(brand("2223003122003222"), Brand::Mastercard);
        assert_eq!(brand("378282246310005"), Brand::Amex);
        assert_eq!(brand("371449635398431"), Brand::Amex);
        assert_eq!(brand("6011111111111117"), Brand::Unknown);
        for brand in [Brand::Visa, Brand::Mastercard, Brand::Amex, Brand::Unknown] {
            assert_eq!(Brand::parse(brand.as_str()), Some(brand));
        }
    }

    #[test]
    fn debug_never_shows_more_than_the_last_four_digits() {
        let number = CardNumber::parse("4242 4242 4242 4242").unwrap();
        let shown = format!("{number:?} {:?}", Cvc::parse("123").unwrap());
        assert_eq!(shown, "CardNumber(…4242) Cvc(…)");
        assert_eq!(number.last4(), "4242");
    }

    #[test]
    fn a_card_is_valid_through_the_end_of_its_month() {
        assert!(Expiry::new(6, 2026, JUNE_2026).is_ok(), "this month");
        assert!(Expiry::new(1, 2027, JUNE_2026).is_ok());
        assert_eq!(Expiry::new(5, 2026, JUNE_2026).unwrap_err().0, "exp_month");
        assert_eq!(Expiry::new(12, 2025, JUNE_2026).unwrap_err().0, "exp_year");
        assert_eq!(Expiry::new(13, 2027, JUNE_2026).unwrap_err().0, "exp_month");
        assert_eq!(Expiry::new(0, 2027, JUNE_2026).unwrap_err().0, "exp_month");
        assert_eq!(Expiry::new(1, 27, JUNE_2026).unwrap_err().0, "exp_year");
        assert_eq!(Expiry::new(1, 2077, JUNE_2026).unwrap_err().0, "exp_year");
    }

    #[test]
    fn cvcs_are_three_or_four_digits() {
        for good in ["123", "0000", "9999"] {
            assert!(Cvc::parse(good).is_ok(), "{good}");
        }
        for bad in ["12", "12345", "12a", " 123", ""] {
            assert!(Cvc::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn changing_one_digit_breaks_the_check(digits in "[0-9]{15}", at in 0usize..16, by in 1u8..10) {
            // Complete 15 digits to a valid number, then change one digit: Luhn catches every
            // single-digit error.
            let check = (0..10).find(|d| luhn(&format!("{digits}{d}"))).unwrap();
            let valid = format!("{digits}{check}");
            prop_assert!(CardNumber::parse(&valid).is_ok());
            let mut bytes = valid.into_bytes();
            bytes[at] = b'0' + (bytes[at] - b'0' + by) % 10;
            prop_assert!(CardNumber::parse(&String::from_utf8(bytes).unwrap()).is_err());
        }

        #[test]
        fn parsing_never_panics(typed in "\\PC{0,40}") {
            let _ = CardNumber::parse(&typed);
            let _ = Cvc::parse(&typed);
        }
    }
}
