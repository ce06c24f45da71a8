//! The events orders emits, each written to the outbox in the transaction that makes its change.
//! Orders owns their data (versioned in the type); consumers read the fields they need.
//!
//! | type | when | data |
//! |---|---|---|
//! | `souk.orders.order_placed.v1` | an order is accepted (pending) | `order_id`, `user_id`, `lines`, `total`, `created_at` |
//! | `souk.orders.order_confirmed.v1` | stock held and payment captured | `order_id`, `user_id`, `lines`, `total`, `created_at`, `confirmed_at` |
//! | `souk.orders.order_cancelled.v1` | compensation finished | `order_id`, `user_id`, `reason`, `lines`, `total`, `created_at`, `cancelled_at` |
//!
//! `lines` are `[{product_id, sku, name, quantity, unit_price, line_total}]` with money as
//! `{amount, currency}`; times are RFC 3339 UTC; the subject is the order id.

use serde_json::json;
use souk_chassis::events::Event;

use crate::NAME;
use crate::domain::{CancelReason, Order, Timestamp};

/// An order was accepted; its saga starts.
pub const ORDER_PLACED: &str = "souk.orders.order_placed.v1";
/// An order was confirmed: inventory sells its reservation, the cart empties, history records it.
pub const ORDER_CONFIRMED: &str = "souk.orders.order_confirmed.v1";
/// An order was cancelled, after everything reserved or charged was given back.
pub const ORDER_CANCELLED: &str = "souk.orders.order_cancelled.v1";

/// `order_placed` for `order`.
pub fn placed(order: &Order) -> Event {
    event(ORDER_PLACED, order, json!({}))
}

/// `order_confirmed` for `order`, confirmed `at`.
pub fn confirmed(order: &Order, at: Timestamp) -> Event {
    event(ORDER_CONFIRMED, order, json!({ "confirmed_at": at }))
}

/// `order_cancelled` for `order`, cancelled `at` for `reason`.
pub fn cancelled(order: &Order, reason: CancelReason, at: Timestamp) -> Event {
    event(
        ORDER_CANCELLED,
        order,
        json!({ "reason": reason, "cancelled_at": at }),
    )
}

fn event(type_: &str, order: &Order, extra: serde_json::Value) -> Event {
    let mut data = json!({
        "order_id": order.id,
        "user_id": order.user_id,
        "lines": order.lines,
        "total": order.total,
        "created_at": order.created_at,
    });
    if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    Event::new(NAME, type_, order.id.to_string(), data)
}
