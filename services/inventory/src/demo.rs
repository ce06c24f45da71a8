//! The demo stock: how many units each demo product starts with, keyed by SKU.
//!
//! Most of the 220 demo products have 5 to 120 units; ten are sold out and fifteen have one to
//! three left, so the shop shows every stock situation. Products not listed start at 0.

use std::collections::HashMap;

const DEMO_JSON: &str = include_str!("../data/demo-stock.json");

/// Starting quantities by SKU.
#[derive(Debug, Clone, Default)]
pub struct DemoStock {
    by_sku: HashMap<String, i64>,
}

/// Why a demo stock file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Not a JSON object of SKUs to whole numbers.
    #[error("the demo stock is not a JSON object of SKUs to quantities")]
    Json(#[from] serde_json::Error),
    /// A quantity out of range.
    #[error("the demo stock gives {sku} {quantity} units (0 to {max} allowed)", max = crate::domain::MAX_STOCK)]
    Quantity {
        /// Which SKU.
        sku: String,
        /// The quantity given.
        quantity: i64,
    },
}

impl DemoStock {
    /// The demo stock shipped in the binary.
    pub fn bundled() -> Result<Self, DemoError> {
        Self::parse(DEMO_JSON)
    }

    /// Parses and checks a file in the demo format: `{"KIT-0001": 12, …}`.
    pub fn parse(json: &str) -> Result<Self, DemoError> {
        let by_sku: HashMap<String, i64> = serde_json::from_str(json)?;
        if let Some((sku, &quantity)) = by_sku
            .iter()
            .find(|(_, q)| !(0..=crate::domain::MAX_STOCK).contains(*q))
        {
            return Err(DemoError::Quantity {
                sku: sku.clone(),
                quantity,
            });
        }
        Ok(Self { by_sku })
    }

    /// No demo stock: every product starts at 0.
    pub fn none() -> Self {
        Self::default()
    }

    /// The starting quantity of `sku`.
    pub fn quantity(&self, sku: &str) -> i64 {
        self.by_sku.get(sku).copied().unwrap_or(0)
    }

    /// How many SKUs it lists.
    pub fn len(&self) -> usize {
        self.by_sku.len()
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.by_sku.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_stock_covers_the_demo_catalog_with_every_situation() {
        let demo = DemoStock::bundled().unwrap();
        assert_eq!(demo.len(), 220);
        let quantities: Vec<i64> = demo.by_sku.values().copied().collect();
        let sold_out = quantities.iter().filter(|&&q| q == 0).count();
        let low = quantities.iter().filter(|&&q| (1..=3).contains(&q)).count();
        let plenty = quantities
            .iter()
            .filter(|&&q| (5..=120).contains(&q))
            .count();
        assert!((8..=12).contains(&sold_out), "{sold_out} sold out");
        assert!((12..=18).contains(&low), "{low} low");
        assert_eq!(sold_out + low + plenty, 220, "the rest have 5 to 120");
        assert_eq!(demo.quantity("KIT-0001"), 12);
        assert_eq!(demo.quantity("NOT-A-SKU"), 0);
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(DemoStock::parse(r#"{"A-1": -1}"#).is_err());
        assert!(DemoStock::parse(r#"{"A-1": 1.5}"#).is_err());
        assert!(DemoStock::parse(r#"["A-1"]"#).is_err());
        assert_eq!(DemoStock::parse("{}").unwrap().quantity("A-1"), 0);
    }
}
