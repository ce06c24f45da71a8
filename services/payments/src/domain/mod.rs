//! Payments' domain: validating types for cards, money and payments, with their unit tests.

mod card;
mod money;
mod payment;

pub use card::{Brand, CardNumber, Cvc, Expiry, PaymentMethod};
pub use money::{Currency, Money};
pub use payment::{ChargeOutcome, ChargeRequest, DeclineCode, Payment, PaymentStatus, Refund};
pub use souk_chassis::time::Timestamp;
