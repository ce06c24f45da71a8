//! Inventory's domain: reservation lines and states, and instants as clients see them.

mod reservation;

pub use reservation::{
    Line, Lines, LinesError, MAX_LINE_QUANTITY, MAX_LINES, Reservation, ReservationState, Step,
};
pub use souk_chassis::time::Timestamp;

/// Most units an administrator may put on sale for one product.
pub const MAX_STOCK: i64 = 1_000_000;

/// One product's stock. Always `received == available + reserved + sold`, none negative (the
/// database checks it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    /// The product (catalog id).
    pub product_id: uuid::Uuid,
    /// Its SKU, as the catalog last said.
    pub sku: String,
    /// Units one can buy now.
    pub available: i64,
    /// Units held for orders not yet confirmed.
    pub reserved: i64,
    /// Units sold.
    pub sold: i64,
    /// Units ever put on sale (administrators' adjustments change it).
    pub received: i64,
    /// Moves on every change of the row: what an administrator's `If-Match` names.
    pub version: i64,
}

/// Goods an administrator recorded as received (`delta > 0`) or written off (`delta < 0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// UUIDv7.
    pub id: uuid::Uuid,
    /// The product.
    pub product_id: uuid::Uuid,
    /// Units added to (or taken from) what is on sale, and so to what was received.
    pub delta: i64,
    /// Why, in the administrator's words.
    pub reason: String,
    /// When.
    pub created_at: Timestamp,
}

impl Stock {
    /// Whether the invariant holds.
    pub fn is_consistent(&self) -> bool {
        self.available >= 0
            && self.reserved >= 0
            && self.sold >= 0
            && self.received == self.available + self.reserved + self.sold
    }
}
