//! souk's orders service: orders, their lines, and the checkout saga that turns a cart into a
//! confirmed order — or gives back everything it took and cancels it.
//!
//! This first step holds the domain only: the saga as a pure state machine, pricing from the
//! catalog's answers, money, addresses and idempotency keys.

pub mod domain;
