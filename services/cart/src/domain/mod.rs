//! The cart's domain: what a line is, the limits on it, and how a cart is priced.

mod money;
mod pricing;
mod quantity;

pub use money::Money;
pub use pricing::{CartView, LineStatus, LineView, Lookup, price};
pub use quantity::{MAX_LINES, Quantity};

/// One stored line of a cart: a product and how many. Never a price: prices are the catalog's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// The catalog's product id.
    pub product_id: uuid::Uuid,
    /// How many, 1..=99.
    pub quantity: Quantity,
}
