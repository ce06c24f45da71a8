//! Shipping addresses: bounded, printable text, and a country that ISO 3166-1 assigns.

use serde::{Deserialize, Serialize};
use souk_chassis::FieldError;
use utoipa::ToSchema;

/// The officially assigned ISO 3166-1 alpha-2 codes (249 of them).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ \
BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ \
DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT \
GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY \
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX \
MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS \
RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN \
TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Where an order goes, as validated: every field trimmed, bounded and printable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShippingAddress {
    /// The recipient, 1 to 200 characters.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    /// Street and number, 1 to 200 characters.
    #[schema(example = "12 St James's Square")]
    pub line1: String,
    /// More of the address, up to 200 characters; `null` when there is none.
    pub line2: Option<String>,
    /// 1 to 100 characters.
    #[schema(example = "London")]
    pub city: String,
    /// 1 to 20 letters, digits, spaces and dashes.
    #[schema(example = "SW1Y 4JH")]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `GB`.
    #[schema(example = "GB")]
    pub country: String,
}

impl ShippingAddress {
    /// Validates an address as a client sent it; errors name fields under `prefix`.
    pub fn parse(raw: ShippingAddress, prefix: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut field = |name: &str, value: &str, max: usize| -> String {
            let value = value.trim();
            let length = value.chars().count();
            if length == 0 || length > max || value.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    format!("{prefix}{name}"),
                    format!("must be 1 to {max} characters, without control characters"),
                ));
            }
            value.to_owned()
        };
        let name = field("name", &raw.name, 200);
        let line1 = field("line1", &raw.line1, 200);
        let line2 = raw
            .line2
            .as_deref()
            .filter(|l| !l.trim().is_empty())
            .map(|l| field("line2", l, 200));
        let city = field("city", &raw.city, 100);
        let postal_code = field("postal_code", &raw.postal_code, 20);
        if !postal_code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        {
            errors.push(FieldError::new(
                format!("{prefix}postal_code"),
                "may hold only letters, digits, spaces and dashes",
            ));
        }
        let country = raw.country.trim().to_owned();
        if !is_country(&country) {
            errors.push(FieldError::new(
                format!("{prefix}country"),
                "must be an ISO 3166-1 alpha-2 code in capitals, such as GB or US",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            name,
            line1,
            line2,
            city,
            postal_code,
            country,
        })
    }
}

/// Whether `code` is an assigned ISO 3166-1 alpha-2 code.
/// Every ISO 3166-1 alpha-2 code an address may name.
pub fn countries() -> impl Iterator<Item = &'static str> {
    COUNTRIES.split(' ')
}

pub fn is_country(code: &str) -> bool {
    code.len() == 2
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && COUNTRIES.split(' ').any(|c| c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> ShippingAddress {
        ShippingAddress {
            name: " Ada Lovelace ".into(),
            line1: "12 St James's Square".into(),
            line2: Some("  ".into()),
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            country: "GB".into(),
        }
    }

    #[test]
    fn valid_addresses_are_trimmed_and_blank_optional_lines_dropped() {
        let address = ShippingAddress::parse(raw(), "shipping_address.").unwrap();
        assert_eq!(address.name, "Ada Lovelace");
        assert_eq!(address.line2, None);
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = ShippingAddress {
            name: String::new(),
            line1: "x".repeat(201),
            line2: Some("a\u{0}b".into()),
            city: "London".into(),
            postal_code: "<script>".into(),
            country: "gb".into(),
        };
        let errors = ShippingAddress::parse(bad, "a.").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["a.name", "a.line1", "a.line2", "a.postal_code", "a.country"]
        );
    }

    #[test]
    fn countries_are_assigned_codes_only() {
        assert_eq!(COUNTRIES.split(' ').count(), 249);
        for ok in ["GB", "US", "DE", "JP", "ZW", "AD"] {
            assert!(is_country(ok), "{ok}");
        }
        for bad in ["UK", "XX", "us", "USA", "", "ZZ"] {
            assert!(!is_country(bad), "{bad}");
        }
    }
}
