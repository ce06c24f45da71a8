//! Orders' events, as inventory reads them: a confirmed order's reservation is a sale, a cancelled
//! order's reservation goes back on sale.
//!
//! The checkout saga commits the reservation synchronously before it confirms (issue 16), so
//! `order_confirmed` only records what is already true: the commit it asks for is a no-op. It
//! never sells a lapsed hold's units by itself ([`Lapsed::Refuse`]): a confirmation whose stock
//! is not committed contradicts the saga, and is parked for an operator.
//!
//! The effects are idempotent by themselves — a reservation moves through its states once, and a
//! repeated commit or release is a no-op — so a redelivered event changes nothing, and the
//! consumer's inbox (recorded after the effect) only spares the second call.

use serde::Deserialize;
use souk_chassis::events::{Event, HandleError, Handler};
use uuid::Uuid;

use crate::domain::Timestamp;
use crate::store::{Lapsed, Store, StoreError, TransitionError};

/// The consumer's name: its offset, inbox and dead letters are kept under it.
pub const CONSUMER: &str = "inventory.orders";

const CONFIRMED: &str = "souk.orders.order_confirmed.v1";
const CANCELLED: &str = "souk.orders.order_cancelled.v1";

/// The one field of an order event inventory reads.
#[derive(Debug, Deserialize)]
struct OrderEvent {
    order_id: Uuid,
}

/// Commits or releases reservations as orders are confirmed or cancelled.
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
        let confirmed = match event.type_.as_str() {
            CONFIRMED => true,
            CANCELLED => false,
            _ => return Ok(()),
        };
        let order: OrderEvent = event.data_as()?;
        let now = Timestamp::now();
        let outcome = match confirmed {
            true => self.store.commit(order.order_id, now, Lapsed::Refuse).await,
            false => self.store.release(order.order_id, now).await,
        };
        souk_chassis::crash::point("inventory.after-event-effect-before-inbox");
        match outcome {
            Ok(_) => Ok(()),
            Err(TransitionError::Store(StoreError::Database(err))) => Err(err.into()),
            Err(TransitionError::Store(err)) => Err(HandleError::Retry(err.to_string())),
            // A confirmed order whose units went back on sale, or none held for it, breaks the
            // saga's invariant: park it where an operator sees it, never guess.
            Err(
                err @ (TransitionError::NotFound
                | TransitionError::Conflict(_)
                | TransitionError::OutOfStock(_)),
            ) => {
                tracing::error!(order_id = %order.order_id, event = %event.type_, %err, "an order event contradicts the reservation");
                Err(HandleError::Poison(format!(
                    "order {}: {err}",
                    order.order_id
                )))
            }
        }
    }
}
