//! Orders' events, as the cart reads them: once an order is confirmed, what it bought leaves the
//! buyer's cart. Only the ordered products' lines go, and only those the shopper has not changed
//! since the order was placed (the event's `created_at`): a line added while the checkout ran,
//! or put back afterwards, stays. The times compared are orders' clock (placement) and the
//! cart's (each line's last change); a skew between the two moves the cut by as much.
//!
//! The cart's store (Redis, or SQLite) cannot share a transaction with the event bookkeeping, so
//! the inbox is recorded right after the effect; an event delivered again after a crash in
//! between removes nothing that changed since the order, so the replay is harmless.
//!
//! A store that cannot be reached (Redis down) is an outage, not the event's fault: the consumer
//! waits it out with backoff ([`HandleError::Unavailable`]) instead of parking every confirmed
//! order for an operator — the dead letters are in SQL, which may well be up.

use serde::Deserialize;
use souk_chassis::events::{Event, HandleError, Handler};
use souk_chassis::time::Timestamp;
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
    /// When the order was placed (RFC 3339); lines changed later stay. Absent from events of
    /// older producers: then every ordered line goes.
    #[serde(default)]
    created_at: Option<String>,
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
        let placed = match order.created_at.as_deref().map(Timestamp::parse) {
            Some(Ok(at)) => Some(at.millis()),
            Some(Err(err)) => {
                return Err(HandleError::Poison(format!(
                    "created_at is not a time: {err}"
                )));
            }
            None => None,
        };
        for line in &order.lines {
            let removed = match placed {
                Some(placed) => {
                    self.store
                        .remove_unchanged_since(&order.user_id, line.product_id, placed)
                        .await
                }
                None => self.store.remove(&order.user_id, line.product_id).await,
            };
            removed.map_err(|e| {
                let reason = souk_chassis::problem::ErrorChain(&e).to_string();
                if e.is_unavailable() {
                    HandleError::Unavailable(reason)
                } else {
                    HandleError::Retry(reason)
                }
            })?;
        }
        Ok(())
    }
}
