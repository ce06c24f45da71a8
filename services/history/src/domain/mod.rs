//! History's domain: the purchase it shows, the facts events bring, and instants.

mod purchase;

pub use purchase::{Card, Fact, Line, Money, OrderFact, Purchase, Stage, Status};
/// History calls the chassis's timestamp an instant: the moment something happened to an order.
pub use souk_chassis::time::Timestamp as Instant;
