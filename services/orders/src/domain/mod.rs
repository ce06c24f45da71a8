//! Orders' domain: validating types and pure rules, no I/O. Property-tested in each file.

pub mod address;
pub mod idempotency;
pub mod money;
pub mod order;
pub mod saga;

pub use address::ShippingAddress;
pub use idempotency::{IdempotencyKey, fingerprint};
pub use money::{Currency, Money};
pub use order::{
    CancelReason, CartLine, CatalogProduct, Order, OrderLine, OrderStatus, Priced, PricingError,
};
pub use saga::{Failure, Outcome, Step};
pub use souk_chassis::time::Timestamp;
