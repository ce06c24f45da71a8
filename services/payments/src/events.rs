//! The events payments emits, each written to the outbox in the transaction that records its
//! change (see `store`). Payments owns their data (versioned in the type); consumers read the
//! fields they need. No event ever carries a card number: a card is its id, brand and last four.
//!
//! | type | when | data |
//! |---|---|---|
//! | `souk.payments.payment_captured.v1` | a charge is recorded captured | `payment_id`, `order_id`, `user_id`, `amount`, `payment_method`, `captured_at` |
//! | `souk.payments.payment_declined.v1` | a charge is recorded declined | `payment_id`, `order_id`, `user_id`, `amount`, `payment_method`, `decline_code`, `declined_at` |
//! | `souk.payments.payment_refunded.v1` | a refund is recorded | `payment_id`, `order_id`, `user_id`, `amount`, `refund_id`, `refunded_at` |
//!
//! `amount` is `{amount, currency}` in minor units; `payment_method` is `{id, brand, last4}`;
//! times are RFC 3339 UTC; the subject is the order id.

use serde_json::json;
use souk_chassis::events::Event;

use crate::NAME;
use crate::domain::{ChargeRequest, DeclineCode, Payment, PaymentMethod, Refund, Timestamp};

/// A charge was captured: the order's money is taken.
pub const PAYMENT_CAPTURED: &str = "souk.payments.payment_captured.v1";
/// A charge was declined: nothing was taken.
pub const PAYMENT_DECLINED: &str = "souk.payments.payment_declined.v1";
/// A captured payment was refunded in full.
pub const PAYMENT_REFUNDED: &str = "souk.payments.payment_refunded.v1";

/// `payment_captured` for `payment`, charged to `method`, captured `at`.
pub fn captured(
    payment: &Payment,
    request: &ChargeRequest,
    method: &PaymentMethod,
    at: Timestamp,
) -> Event {
    let mut data = charge_data(payment, request, method);
    data["captured_at"] = json!(at);
    Event::new(NAME, PAYMENT_CAPTURED, payment.order_id.to_string(), data)
}

/// `payment_declined` for `payment`, charged to `method`, declined `at` for `code`.
pub fn declined(
    payment: &Payment,
    request: &ChargeRequest,
    method: &PaymentMethod,
    code: DeclineCode,
    at: Timestamp,
) -> Event {
    let mut data = charge_data(payment, request, method);
    data["decline_code"] = json!(code);
    data["declined_at"] = json!(at);
    Event::new(NAME, PAYMENT_DECLINED, payment.order_id.to_string(), data)
}

/// `payment_refunded` for `refund` of a payment asked for by `user_id`.
pub fn refunded(refund: &Refund, user_id: &str) -> Event {
    let data = json!({
        "payment_id": refund.payment_id,
        "order_id": refund.order_id,
        "user_id": user_id,
        "amount": refund.amount,
        "refund_id": refund.id,
        "refunded_at": refund.created_at,
    });
    Event::new(NAME, PAYMENT_REFUNDED, refund.order_id.to_string(), data)
}

/// What a captured and a declined charge both say.
fn charge_data(
    payment: &Payment,
    request: &ChargeRequest,
    method: &PaymentMethod,
) -> serde_json::Value {
    json!({
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "user_id": request.user_id,
        "amount": request.amount,
        // Named field by field: the method also holds the processor's token, which stays here.
        "payment_method": {
            "id": method.id,
            "brand": method.brand,
            "last4": method.last4,
        },
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{Brand, Currency, Expiry, Money, PaymentStatus};

    fn fixtures() -> (Payment, ChargeRequest, PaymentMethod) {
        let request = ChargeRequest {
            user_id: "u1".into(),
            payment_method_id: Uuid::now_v7(),
            amount: Money::positive(1999, Currency::parse("USD").unwrap()).unwrap(),
        };
        let payment = Payment {
            id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            status: PaymentStatus::Captured,
            request: Some(request.clone()),
            decline_code: None,
            processor_charge_id: Some("ch_1".into()),
            attempt_at: Timestamp::from_millis(0),
            created_at: Timestamp::from_millis(0),
            captured_at: Some(Timestamp::from_millis(1000)),
            refunded_at: None,
        };
        let method = PaymentMethod {
            id: request.payment_method_id,
            owner: "u1".into(),
            brand: Brand::Visa,
            last4: "4242".into(),
            expiry: Expiry {
                month: 12,
                year: 2099,
            },
            token: "tok_secret".into(),
            created_at: Timestamp::from_millis(0),
        };
        (payment, request, method)
    }

    #[test]
    fn a_capture_names_the_card_by_id_brand_and_last_four_only() {
        let (payment, request, method) = fixtures();
        let event = captured(&payment, &request, &method, Timestamp::from_millis(1000));
        assert_eq!(event.type_, PAYMENT_CAPTURED);
        assert_eq!(event.subject, payment.order_id.to_string());
        assert_eq!(
            event.data,
            json!({
                "payment_id": payment.id,
                "order_id": payment.order_id,
                "user_id": "u1",
                "amount": {"amount": 1999, "currency": "USD"},
                "payment_method": {"id": method.id, "brand": "visa", "last4": "4242"},
                "captured_at": "1970-01-01T00:00:01.000Z",
            })
        );
        assert!(!event.data.to_string().contains("tok_secret"));
    }

    #[test]
    fn a_decline_says_why() {
        let (payment, request, method) = fixtures();
        let event = declined(
            &payment,
            &request,
            &method,
            DeclineCode::InsufficientFunds,
            Timestamp::from_millis(0),
        );
        assert_eq!(event.type_, PAYMENT_DECLINED);
        assert_eq!(event.data["decline_code"], "insufficient_funds");
        assert_eq!(event.data["payment_method"]["last4"], "4242");
        assert!(event.data.get("captured_at").is_none());
    }

    #[test]
    fn a_refund_names_its_payment_and_refund() {
        let (payment, request, _) = fixtures();
        let refund = Refund {
            id: Uuid::now_v7(),
            payment_id: payment.id,
            order_id: payment.order_id,
            amount: request.amount.clone(),
            processor_refund_id: "re_1".into(),
            created_at: Timestamp::from_millis(2000),
        };
        let event = refunded(&refund, "u1");
        assert_eq!(event.type_, PAYMENT_REFUNDED);
        assert_eq!(event.data["refund_id"], refund.id.to_string());
        assert_eq!(event.data["payment_id"], payment.id.to_string());
        assert_eq!(event.data["user_id"], "u1");
        assert_eq!(event.data["refunded_at"], "1970-01-01T00:00:02.000Z");
        assert!(
            !event.data.to_string().contains("re_1"),
            "the processor's ids stay here"
        );
    }
}
