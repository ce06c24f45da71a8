//! Events as orders and payments write them (their data shapes, copied from their READMEs), for
//! one order of two lines.

use serde_json::{Value, json};
use souk_chassis::events::Event;
use uuid::Uuid;

/// The time orders placed the order, by default.
pub const PLACED_AT: &str = "2026-11-30T12:00:00.000Z";
/// The time payments captured it.
pub const CAPTURED_AT: &str = "2026-11-30T12:00:02.000Z";
/// The time orders confirmed it.
pub const CONFIRMED_AT: &str = "2026-11-30T12:00:03.000Z";
/// The time payments refunded it.
pub const REFUNDED_AT: &str = "2026-11-30T12:05:00.000Z";

/// A product id of the first line.
pub const MUG: &str = "0192f0c1-0000-7000-8000-0000000000aa";
/// A product id of the second line.
pub const TEA: &str = "0192f0c1-0000-7000-8000-0000000000bb";

fn usd(amount: i64) -> Value {
    json!({"amount": amount, "currency": "USD"})
}

/// The lines as orders writes them (with a `sku` history does not read).
pub fn order_lines() -> Value {
    json!([
        {"product_id": MUG, "sku": "MUG-1", "name": "Mug", "quantity": 2,
         "unit_price": usd(1250), "line_total": usd(2500)},
        {"product_id": TEA, "sku": "TEA-9", "name": "Green tea", "quantity": 1,
         "unit_price": usd(799), "line_total": usd(799)},
    ])
}

/// The lines as history shows them.
pub fn shown_lines() -> Value {
    json!([
        {"product_id": MUG, "name": "Mug", "quantity": 2, "unit_price": usd(1250), "line_total": usd(2500)},
        {"product_id": TEA, "name": "Green tea", "quantity": 1, "unit_price": usd(799), "line_total": usd(799)},
    ])
}

/// The order's total.
pub fn total() -> Value {
    usd(3299)
}

fn order_data(order: Uuid, user: &str, placed_at: &str) -> Value {
    json!({
        "order_id": order, "user_id": user, "lines": order_lines(), "total": total(),
        "created_at": placed_at,
    })
}

fn order_event(type_: &str, order: Uuid, data: Value) -> Event {
    Event::new("orders", type_, order.to_string(), data)
}

/// `order_placed` of `order` by `user`, placed at [`PLACED_AT`].
pub fn placed(order: Uuid, user: &str) -> Event {
    placed_at(order, user, PLACED_AT)
}

/// `order_placed` of `order` by `user`, placed at `at`.
pub fn placed_at(order: Uuid, user: &str, at: &str) -> Event {
    order_event(
        "souk.orders.order_placed.v1",
        order,
        order_data(order, user, at),
    )
}

/// `order_confirmed` of `order`, confirmed at [`CONFIRMED_AT`].
pub fn confirmed(order: Uuid, user: &str) -> Event {
    let mut data = order_data(order, user, PLACED_AT);
    data["confirmed_at"] = json!(CONFIRMED_AT);
    order_event("souk.orders.order_confirmed.v1", order, data)
}

/// `order_cancelled` of `order` for `reason`.
pub fn cancelled(order: Uuid, user: &str, reason: &str) -> Event {
    let mut data = order_data(order, user, PLACED_AT);
    data["reason"] = json!(reason);
    data["cancelled_at"] = json!("2026-11-30T12:04:00.000Z");
    order_event("souk.orders.order_cancelled.v1", order, data)
}

/// `payment_captured` of `order`, paid with a Visa ending 4242.
pub fn captured(order: Uuid, user: &str) -> Event {
    let data = json!({
        "payment_id": Uuid::now_v7(), "order_id": order, "user_id": user, "amount": total(),
        "payment_method": {"id": Uuid::now_v7(), "brand": "visa", "last4": "4242"},
        "captured_at": CAPTURED_AT,
    });
    Event::new(
        "payments",
        "souk.payments.payment_captured.v1",
        order.to_string(),
        data,
    )
}

/// `payment_refunded` of `order`.
pub fn refunded(order: Uuid, user: &str) -> Event {
    let data = json!({
        "payment_id": Uuid::now_v7(), "order_id": order, "user_id": user, "amount": total(),
        "refund_id": Uuid::now_v7(), "refunded_at": REFUNDED_AT,
    });
    Event::new(
        "payments",
        "souk.payments.payment_refunded.v1",
        order.to_string(),
        data,
    )
}

/// An event of `type_` from `producer` with any `data`.
pub fn other(producer: &str, type_: &str, order: Uuid, data: Value) -> Event {
    Event::new(producer, type_, order.to_string(), data)
}
