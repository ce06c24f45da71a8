//! Reading events into facts: only the fields history needs, declared here (tolerant reader —
//! no producer's type crosses into this crate), and checked, so that nothing history cannot
//! show correctly ever reaches the store.
//!
//! | type | fields read |
//! |---|---|
//! | `souk.orders.order_placed.v1` | `order_id`, `user_id`, `lines[{product_id, name, quantity, unit_price, line_total}]`, `total`, `created_at` |
//! | `souk.orders.order_confirmed.v1` | the same, and `confirmed_at` |
//! | `souk.orders.order_cancelled.v1` | the same as placed, and `reason` |
//! | `souk.payments.payment_captured.v1` | `order_id`, `user_id`, `payment_method{brand, last4}`, `captured_at` |
//! | `souk.payments.payment_refunded.v1` | `order_id`, `user_id`, `refunded_at` |

use serde::Deserialize;
use souk_chassis::events::Event;
use uuid::Uuid;

use crate::domain::{Card, Fact, Instant, Line, Money, OrderFact, Stage};

/// An order was placed.
pub const ORDER_PLACED: &str = "souk.orders.order_placed.v1";
/// An order was confirmed.
pub const ORDER_CONFIRMED: &str = "souk.orders.order_confirmed.v1";
/// An order was cancelled.
pub const ORDER_CANCELLED: &str = "souk.orders.order_cancelled.v1";
/// A payment was captured.
pub const PAYMENT_CAPTURED: &str = "souk.payments.payment_captured.v1";
/// A payment was refunded.
pub const PAYMENT_REFUNDED: &str = "souk.payments.payment_refunded.v1";

/// Most lines an order may have (orders' own limit).
const MAX_LINES: usize = 100;
/// Longest text history keeps from an event field (names, ids, reasons).
const MAX_TEXT: usize = 500;

/// What `event` says about a purchase: `Ok(None)` for a type history does not follow (a skip),
/// `Err` with the reason for data it cannot read (the event is poison).
pub fn read(event: &Event) -> Result<Option<Fact>, String> {
    let fact = match event.type_.as_str() {
        ORDER_PLACED => Fact::Order(order(event, Stage::Pending)?),
        ORDER_CONFIRMED => Fact::Order(order(event, Stage::Confirmed)?),
        ORDER_CANCELLED => Fact::Order(order(event, Stage::Cancelled)?),
        PAYMENT_CAPTURED => captured(event)?,
        PAYMENT_REFUNDED => refunded(event)?,
        _ => return Ok(None),
    };
    Ok(Some(fact))
}

#[derive(Deserialize)]
struct OrderData {
    order_id: Uuid,
    user_id: String,
    lines: Vec<Line>,
    total: Money,
    created_at: String,
    #[serde(default)]
    confirmed_at: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct CapturedData {
    order_id: Uuid,
    user_id: String,
    payment_method: MethodData,
    captured_at: String,
}

#[derive(Deserialize)]
struct MethodData {
    brand: String,
    last4: String,
}

#[derive(Deserialize)]
struct RefundedData {
    order_id: Uuid,
    user_id: String,
    refunded_at: String,
}

fn data<T: serde::de::DeserializeOwned>(event: &Event) -> Result<T, String> {
    event
        .data_as()
        .map_err(|e| format!("the data of {} is not what history reads: {e}", event.type_))
}

fn order(event: &Event, stage: Stage) -> Result<OrderFact, String> {
    let mut data: OrderData = data(event)?;
    for line in &mut data.lines {
        line.name = display(&line.name, "(unnamed product)");
    }
    text("user_id", &data.user_id)?;
    if data.lines.is_empty() || data.lines.len() > MAX_LINES {
        return Err(format!("an order has 1 to {MAX_LINES} lines"));
    }
    for (i, line) in data.lines.iter().enumerate() {
        check_line(i, line)?;
    }
    data.total.check("total")?;
    let confirmed_at = match (stage, &data.confirmed_at) {
        (Stage::Confirmed, Some(at)) => Some(Instant::parse(at)?),
        (Stage::Confirmed, None) => return Err("order_confirmed has no confirmed_at".into()),
        _ => None,
    };
    let cancel_reason = match (stage, data.reason) {
        (Stage::Cancelled, Some(reason)) => Some(display(&reason, "unknown")),
        (Stage::Cancelled, None) => return Err("order_cancelled has no reason".into()),
        _ => None,
    };
    Ok(OrderFact {
        order_id: data.order_id,
        user_id: data.user_id,
        stage,
        cancel_reason,
        lines: data.lines,
        total: data.total,
        placed_at: Instant::parse(&data.created_at)?,
        confirmed_at,
    })
}

fn check_line(i: usize, line: &Line) -> Result<(), String> {
    text(&format!("lines[{i}].product_id"), &line.product_id)?;
    if line.quantity < 1 {
        return Err(format!("lines[{i}].quantity is not positive"));
    }
    line.unit_price.check(&format!("lines[{i}].unit_price"))?;
    line.line_total.check(&format!("lines[{i}].line_total"))
}

fn captured(event: &Event) -> Result<Fact, String> {
    let data: CapturedData = data(event)?;
    text("user_id", &data.user_id)?;
    let MethodData { brand, last4 } = data.payment_method;
    let brand = display(&brand, "card");
    // Four digits, exactly: history never shows more of a card, whatever it is sent.
    if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
        return Err("payment_method.last4 is not four digits".into());
    }
    Ok(Fact::Captured {
        order_id: data.order_id,
        user_id: data.user_id,
        card: Card { brand, last4 },
        captured_at: Instant::parse(&data.captured_at)?,
    })
}

fn refunded(event: &Event) -> Result<Fact, String> {
    let data: RefundedData = data(event)?;
    text("user_id", &data.user_id)?;
    Ok(Fact::Refunded {
        order_id: data.order_id,
        user_id: data.user_id,
        refunded_at: Instant::parse(&data.refunded_at)?,
    })
}

/// `value` made fit to show, never refused: history must not lose a purchase over how a name is
/// written (the catalog refuses such names now, but events already sent, or sent by an older
/// producer, may carry them). Control characters become spaces, runs of white space one space,
/// and the text is cut at [`MAX_TEXT`] characters; an empty result shows as `fallback`.
fn display(value: &str, fallback: &str) -> String {
    let mut shown = String::with_capacity(value.len().min(MAX_TEXT));
    for word in value
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        if !shown.is_empty() {
            shown.push(' ');
        }
        shown.push_str(word);
    }
    match shown.char_indices().nth(MAX_TEXT) {
        Some((cut, _)) => shown.truncate(cut),
        None if shown.is_empty() => return fallback.to_owned(),
        None => {}
    }
    shown
}

/// `value`, if it is 1 to [`MAX_TEXT`] characters without control characters: for identifiers,
/// which history matches and keys by, and so cannot change.
fn text<'a>(field: &str, value: &'a str) -> Result<&'a str, String> {
    let length = value.chars().count();
    if length == 0 || length > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be 1 to {MAX_TEXT} characters without control characters"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn event(type_: &str, data: Value) -> Event {
        Event::new("test", type_, "s", data)
    }

    fn placed() -> Value {
        let usd = |amount: i64| json!({"amount": amount, "currency": "USD"});
        json!({
            "order_id": "0192f0c1-0000-7000-8000-000000000001",
            "user_id": "u1",
            "lines": [{"product_id": "p1", "sku": "MUG-1", "name": "Mug", "quantity": 2,
                       "unit_price": usd(500), "line_total": usd(1000)}],
            "total": usd(1000),
            "created_at": "2026-11-30T12:00:00.000Z",
        })
    }

    #[test]
    fn order_events_become_order_facts() {
        let Some(Fact::Order(order)) = read(&event(ORDER_PLACED, placed())).unwrap() else {
            panic!("an order fact");
        };
        assert_eq!(order.stage, Stage::Pending);
        assert_eq!(order.lines[0].name, "Mug");
        assert_eq!(order.placed_at.to_rfc3339(), "2026-11-30T12:00:00.000Z");
        let mut confirmed = placed();
        confirmed["confirmed_at"] = json!("2026-11-30T12:00:05.000Z");
        let Some(Fact::Order(order)) = read(&event(ORDER_CONFIRMED, confirmed)).unwrap() else {
            panic!("an order fact");
        };
        assert_eq!(order.stage, Stage::Confirmed);
        assert!(order.confirmed_at.is_some());
        let mut cancelled = placed();
        cancelled["reason"] = json!("out_of_stock");
        let Some(Fact::Order(order)) = read(&event(ORDER_CANCELLED, cancelled)).unwrap() else {
            panic!("an order fact");
        };
        assert_eq!(order.cancel_reason.as_deref(), Some("out_of_stock"));
    }

    #[test]
    fn payment_events_become_payment_facts() {
        let captured = json!({
            "payment_id": "x", "order_id": "0192f0c1-0000-7000-8000-000000000001", "user_id": "u1",
            "amount": {"amount": 1000, "currency": "USD"},
            "payment_method": {"id": "m", "brand": "visa", "last4": "4242"},
            "captured_at": "2026-11-30T12:00:04.000Z",
        });
        let fact = read(&event(PAYMENT_CAPTURED, captured)).unwrap().unwrap();
        assert!(matches!(fact, Fact::Captured { ref card, .. } if card.last4 == "4242"));
        let refunded = json!({"order_id": "0192f0c1-0000-7000-8000-000000000001", "user_id": "u1",
                              "refunded_at": "2026-11-30T12:01:00.000Z"});
        assert!(matches!(
            read(&event(PAYMENT_REFUNDED, refunded)).unwrap(),
            Some(Fact::Refunded { .. })
        ));
    }

    #[test]
    fn other_types_are_skipped() {
        for type_ in [
            "souk.payments.payment_declined.v1",
            "souk.orders.order_placed.v2",
            "x",
        ] {
            assert_eq!(read(&event(type_, json!({}))).unwrap(), None, "{type_}");
        }
    }

    #[test]
    fn unreadable_data_is_refused_with_a_reason() {
        type Spoil = fn(&mut Value);
        let spoils: [(Spoil, &str); 8] = [
            (|d| d["order_id"] = json!("not-a-uuid"), "UUID"),
            (|d| d["user_id"] = json!(""), "user_id"),
            (|d| d["lines"] = json!([]), "lines"),
            (|d| d["lines"][0]["quantity"] = json!(0), "quantity"),
            (|d| d["total"]["currency"] = json!("usd"), "currency"),
            (|d| d["total"]["amount"] = json!(-1), "amount"),
            (|d| d["created_at"] = json!("yesterday"), "yesterday"),
            (
                |d| {
                    d.as_object_mut().unwrap().remove("total");
                },
                "total",
            ),
        ];
        for (spoil, mention) in spoils {
            let mut data = placed();
            spoil(&mut data);
            let reason = read(&event(ORDER_PLACED, data)).unwrap_err();
            assert!(reason.contains(mention), "{mention}: {reason}");
        }
        assert!(
            read(&event(ORDER_CONFIRMED, placed()))
                .unwrap_err()
                .contains("confirmed_at")
        );
        assert!(
            read(&event(ORDER_CANCELLED, placed()))
                .unwrap_err()
                .contains("reason")
        );
    }

    #[test]
    fn display_text_is_cleaned_never_refused() {
        let mut data = placed();
        data["lines"][0]["name"] = json!("Mug\nBlue\t\u{0} Large ");
        let Some(Fact::Order(order)) = read(&event(ORDER_PLACED, data)).unwrap() else {
            panic!("an order fact");
        };
        assert_eq!(order.lines[0].name, "Mug Blue Large");
        let mut data = placed();
        data["lines"][0]["name"] = json!("\u{7}\r\n");
        data["reason"] = json!("out\u{1b}[31m_of_stock");
        let Some(Fact::Order(order)) = read(&event(ORDER_CANCELLED, data)).unwrap() else {
            panic!("an order fact");
        };
        assert_eq!(order.lines[0].name, "(unnamed product)");
        assert_eq!(order.cancel_reason.as_deref(), Some("out [31m_of_stock"));
        let mut data = placed();
        data["lines"][0]["name"] = json!("é".repeat(MAX_TEXT + 10));
        let Some(Fact::Order(order)) = read(&event(ORDER_PLACED, data)).unwrap() else {
            panic!("an order fact");
        };
        assert_eq!(order.lines[0].name.chars().count(), MAX_TEXT);
    }

    #[test]
    fn more_than_four_digits_of_a_card_are_refused() {
        for last4 in ["4242424242424242", "42", "abcd"] {
            let captured = json!({
                "order_id": "0192f0c1-0000-7000-8000-000000000001", "user_id": "u1",
                "payment_method": {"brand": "visa", "last4": last4},
                "captured_at": "2026-11-30T12:00:04.000Z",
            });
            assert!(read(&event(PAYMENT_CAPTURED, captured)).is_err(), "{last4}");
        }
    }
}
