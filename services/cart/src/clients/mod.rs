//! The services the cart calls, each with the few fields the cart reads (tolerant reader).

pub mod catalog;

pub use catalog::Catalog;
