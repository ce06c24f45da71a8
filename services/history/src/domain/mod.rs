//! History's domain: the purchase it shows, the facts events bring, and instants.

mod purchase;
mod time;

pub use purchase::{Card, Fact, Line, Money, OrderFact, Purchase, Stage, Status};
pub use time::Instant;
