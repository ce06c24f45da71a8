//! The catalog's domain: validating types for what it stores and what clients may ask for.

mod money;
mod product;
mod search;

pub use money::{Currency, Money};
pub use product::{Category, CategorySlug, Product, Sku};
pub use search::SearchQuery;
