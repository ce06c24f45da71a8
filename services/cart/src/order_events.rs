//! Orders' events, as the cart reads them: once an order is confirmed, what it bought leaves the
//! buyer's cart. Only the ordered products' lines go — a line added while the checkout ran stays.
//!
//! The cart's store (Redis, or SQLite) cannot share a transaction with the event bookkeeping, so
//! the inbox is recorded right after the effect: an event delivered again after a crash in
//! between removes the same lines a second time, which only matters if the shopper put one of
//! those products back in the meantime. That window is a few milliseconds wide.

use serde::Deserialize;
use souk_chassis::events::{Event, HandleError, Handler};
use uuid::Uuid;

use crate::store::Store;

/// The consumer's name: its offset, inbox and dead letters are kept under it.
pub const CONSUMER: &str = "cart.orders";

const CONFIRMED: &str = "souk.orders.order_confirmed.v1";

/// The fields of `order_confirmed` the cart reads.
#[derive(Debug, Deserialize)]
struct Confirmed {
    user_id: String,
    lines: Vec<OrderedLine>,
}

#[derive(Debug, Deserialize)]
struct OrderedLine {
    product_id: Uuid,
}

/// Empties what a confirmed order bought from its buyer's cart.
#[derive(Debug, Clone)]
pub struct OrderEvents {
    store: Store,
}

impl OrderEvents {
    /// A handler on `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Handler for OrderEvents {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        if event.type_ != CONFIRMED {
            return Ok(());
        }
        let order: Confirmed = event.data_as()?;
        for line in &order.lines {
            self.store
                .remove(&order.user_id, line.product_id)
                .await
                .map_err(|e| {
                    HandleError::Retry(souk_chassis::problem::ErrorChain(&e).to_string())
                })?;
        }
        Ok(())
    }
}
