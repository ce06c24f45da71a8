//! The demo catalog: 220 products in 10 categories, loaded on first start when the store is empty.

use serde::Deserialize;

use crate::domain::{CategorySlug, Currency, Money, Sku};

const DEMO_JSON: &str = include_str!("../data/demo-catalog.json");

/// A validated catalog to load.
#[derive(Debug, Clone)]
pub struct DemoCatalog {
    /// Categories in display order.
    pub categories: Vec<DemoCategory>,
    /// Products, each in one of `categories`.
    pub products: Vec<DemoProduct>,
}

/// A category to load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoCategory {
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// One sentence.
    pub description: String,
}

/// A product to load.
#[derive(Debug, Clone)]
pub struct DemoProduct {
    /// SKU.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Product copy.
    pub description: String,
    /// Category slug.
    pub category: String,
    /// Price.
    pub price: Money,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    categories: Vec<DemoCategory>,
    products: Vec<RawProduct>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    sku: String,
    name: String,
    description: String,
    category: String,
    price: i64,
    currency: String,
}

/// Why a catalog file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Not the expected JSON shape.
    #[error("the demo catalog is not valid JSON of the expected shape")]
    Json(#[from] serde_json::Error),
    /// A value is invalid.
    #[error("the demo catalog is invalid at {at}: {reason}")]
    Invalid {
        /// Which entry.
        at: String,
        /// What is wrong.
        reason: String,
    },
}

impl DemoCatalog {
    /// The demo catalog shipped in the binary.
    pub fn bundled() -> Result<Self, SeedError> {
        Self::parse(DEMO_JSON)
    }

    /// Parses and validates a catalog in the demo file's format.
    pub fn parse(json: &str) -> Result<Self, SeedError> {
        let raw: RawCatalog = serde_json::from_str(json)?;
        let invalid = |at: &str, reason: String| SeedError::Invalid {
            at: at.to_owned(),
            reason,
        };
        for c in &raw.categories {
            CategorySlug::parse(&c.slug).map_err(|r| invalid(&c.slug, r))?;
        }
        let products = raw
            .products
            .into_iter()
            .map(|p| {
                if !raw.categories.iter().any(|c| c.slug == p.category) {
                    return Err(invalid(
                        &p.sku,
                        format!("unknown category {:?}", p.category),
                    ));
                }
                let currency = Currency::parse(&p.currency).map_err(|r| invalid(&p.sku, r))?;
                Ok(DemoProduct {
                    sku: Sku::parse(&p.sku).map_err(|r| invalid(&p.sku, r))?,
                    price: Money::price(p.price, currency).map_err(|r| invalid(&p.sku, r))?,
                    name: p.name,
                    description: p.description,
                    category: p.category,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            categories: raw.categories,
            products,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_bundled_catalog_is_big_varied_and_unique() {
        let demo = DemoCatalog::bundled().unwrap();
        assert!(
            demo.products.len() >= 200,
            "{} products",
            demo.products.len()
        );
        assert!(demo.categories.len() >= 8);
        let skus: HashSet<_> = demo.products.iter().map(|p| p.sku.as_str()).collect();
        assert_eq!(skus.len(), demo.products.len(), "duplicate SKUs");
        for c in &demo.categories {
            assert!(
                demo.products
                    .iter()
                    .filter(|p| p.category == c.slug)
                    .count()
                    >= 10,
                "{} is thin",
                c.slug
            );
        }
    }

    #[test]
    fn unknown_categories_and_bad_prices_are_refused() {
        let bad_category = r#"{"categories":[],"products":[{"sku":"A-1","name":"n","description":"d","category":"x","price":1,"currency":"USD"}]}"#;
        assert!(DemoCatalog::parse(bad_category).is_err());
        let bad_price = r#"{"categories":[{"slug":"x","name":"X","description":""}],"products":[{"sku":"A-1","name":"n","description":"d","category":"x","price":-1,"currency":"USD"}]}"#;
        assert!(DemoCatalog::parse(bad_price).is_err());
    }
}
