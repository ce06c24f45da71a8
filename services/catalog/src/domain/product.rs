//! Products and categories as the catalog stores and serves them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Money;

/// A product for sale. Its price is the only price anyone in the shop may charge for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// UUIDv7.
    pub id: Uuid,
    /// Stock-keeping unit, unique: what inventory counts.
    #[schema(example = "KIT-0001")]
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Product copy, plain text.
    pub description: String,
    /// Slug of the product's category.
    #[schema(example = "kitchen")]
    pub category: String,
    /// Unit price.
    pub price: Money,
    /// Where the storefront serves the product's picture (a path on the shop's own host).
    #[schema(example = "/assets/products/kit-0001.svg")]
    pub image_url: String,
}

/// A category of products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Category {
    /// URL-safe identifier, used as the `category` filter.
    #[schema(example = "kitchen")]
    pub slug: String,
    /// Display name.
    pub name: String,
    /// One sentence about the category.
    pub description: String,
    /// How many products it holds.
    pub product_count: i64,
}

/// A stock-keeping unit: 1–32 characters of capital letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// Validates a SKU.
    pub fn parse(value: &str) -> Result<Self, String> {
        let ok = (1..=32).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err("must be 1-32 capital letters, digits or dashes".into())
        }
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The picture path the storefront serves for this SKU.
    pub fn image_url(&self) -> String {
        format!("/assets/products/{}.svg", self.0.to_ascii_lowercase())
    }
}

/// A category slug: 1–64 characters of lowercase letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategorySlug(String);

impl CategorySlug {
    /// Validates a slug.
    pub fn parse(value: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err("must be 1-64 lowercase letters, digits or dashes".into())
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_validated_and_give_a_local_image_path() {
        let sku = Sku::parse("KIT-0001").unwrap();
        assert_eq!(sku.image_url(), "/assets/products/kit-0001.svg");
        for bad in ["", "kit-1", "KIT 1", "KIT/1", &"A".repeat(33)] {
            assert!(Sku::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_are_validated() {
        assert!(CategorySlug::parse("toys-games").is_ok());
        for bad in [
            "",
            "Toys",
            "toys games",
            "toys/games",
            "x'; drop table",
            &"a".repeat(65),
        ] {
            assert!(CategorySlug::parse(bad).is_err(), "{bad}");
        }
    }
}
