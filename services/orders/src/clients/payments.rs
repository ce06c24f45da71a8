//! Payments: whether a payment method is the caller's (`GET /v1/payment-methods/{id}` with the
//! caller's own token, at step 1), and the saga's charge (`POST /v1/payments`, once per order)
//! and refund (`POST /v1/payments/{order_id}/refund`, which leaves a tombstone so a late charge is
//! refused), with a service token.

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use souk_chassis::client::{ClientError, ServiceClient};
use uuid::Uuid;

use super::{Attempt, is_passing, problem_slug};
use crate::domain::{Failure, Money, Order, Outcome};

#[derive(Debug, Serialize)]
struct ChargeBody<'a> {
    order_id: Uuid,
    user_id: &'a str,
    payment_method_id: Uuid,
    amount: &'a Money,
}

/// A payment, as far as orders reads it.
#[derive(Debug, Deserialize)]
struct Payment {
    status: String,
}

/// A refund's result, as far as orders reads it.
#[derive(Debug, Deserialize)]
struct RefundResult {
    status: String,
}

/// Payments. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Payments {
    client: ServiceClient,
}

impl Payments {
    /// Calls payments through `client`.
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }

    /// Whether payment method `id` is the caller's (whose token is `bearer`). Another user's is
    /// as unknown to the caller as one that does not exist.
    pub async fn is_callers_method(&self, bearer: &str, id: Uuid) -> Result<bool, ClientError> {
        let path = format!("/v1/payment-methods/{id}");
        match self
            .client
            .get::<serde::de::IgnoredAny>(&path, Some(bearer))
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Charges `order`'s total to its payment method, with service token `token`.
    pub async fn charge(&self, token: &str, order: &Order) -> Attempt {
        let body = ChargeBody {
            order_id: order.id,
            user_id: &order.user_id,
            payment_method_id: order.payment_method_id,
            amount: &order.total,
        };
        let answer = self
            .client
            .send(Method::POST, "/v1/payments", Some(token), &body)
            .await;
        charge_attempt(answer)
    }

    /// Refunds `order_id`'s payment, or makes sure it is never charged.
    pub async fn refund(&self, token: &str, order_id: Uuid) -> Attempt {
        let path = format!("/v1/payments/{order_id}/refund");
        let answer = self
            .client
            .send::<_, RefundResult>(Method::POST, &path, Some(token), &serde_json::json!({}))
            .await;
        match answer {
            Ok(result) => Attempt::new(Outcome::Refunded, result.status),
            Err(err) => Attempt::failed(&err),
        }
    }
}

fn charge_attempt(answer: Result<Payment, ClientError>) -> Attempt {
    match answer {
        Ok(payment) if payment.status == "captured" => Attempt::new(Outcome::Captured, "captured"),
        Ok(payment) => Attempt::new(
            Outcome::Failed(Failure::Unavailable),
            format!("payments answered a charge with status {}", payment.status),
        ),
        Err(ClientError::Status { status, body, .. }) => {
            let slug = problem_slug(&body).unwrap_or_default();
            let note = format!("payments answered {status} {slug}");
            match (status, slug) {
                (StatusCode::PAYMENT_REQUIRED, _) => Attempt::new(Outcome::Declined, note),
                (StatusCode::CONFLICT, "order-cancelled") => {
                    Attempt::new(Outcome::OrderCancelled, note)
                }
                (StatusCode::CONFLICT, "in-progress") => {
                    Attempt::new(Outcome::Failed(Failure::Busy), note)
                }
                (StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY, _) => {
                    Attempt::new(Outcome::ChargeRefused, note)
                }
                _ => {
                    if !is_passing(status) {
                        tracing::warn!(%status, slug, "payments answered what the saga does not expect; retrying");
                    }
                    Attempt::new(Outcome::Failed(Failure::Unavailable), note)
                }
            }
        }
        Err(err) if answered_server_error(&err) => {
            Attempt::new(Outcome::Failed(Failure::Processor), err.to_string())
        }
        Err(err) => Attempt::failed(&err),
    }
}

/// Whether payments answered with a 5xx (its processor failed: `processor-unavailable`) rather
/// than not answering at all. The chassis client folds both into `Unavailable` and tells them
/// apart only in its reason ("it answered 503 …"); should that wording change, a test below
/// fails, and until fixed a charge that fails until its deadline is cancelled as `timeout`
/// instead of `payment_failed` — nothing worse.
fn answered_server_error(err: &ClientError) -> bool {
    matches!(err, ClientError::Unavailable { reason, .. } if reason.starts_with("it answered 5"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status(code: u16, slug: &str) -> Result<Payment, ClientError> {
        Err(ClientError::Status {
            service: "payments".into(),
            status: StatusCode::from_u16(code).unwrap(),
            body: serde_json::json!({"type": format!("urn:souk:problem:{slug}"), "status": code}),
        })
    }

    #[test]
    fn charge_answers_are_classified() {
        let cases = [
            (
                Ok(Payment {
                    status: "captured".into(),
                }),
                Outcome::Captured,
            ),
            (status(402, "card-declined"), Outcome::Declined),
            (status(409, "order-cancelled"), Outcome::OrderCancelled),
            (status(409, "in-progress"), Outcome::Failed(Failure::Busy)),
            (status(409, "payment-conflict"), Outcome::ChargeRefused),
            (
                status(422, "payment-method-not-owned"),
                Outcome::ChargeRefused,
            ),
            (
                status(429, "too-many"),
                Outcome::Failed(Failure::Unavailable),
            ),
            (
                status(401, "unauthorized"),
                Outcome::Failed(Failure::Unavailable),
            ),
        ];
        for (answer, outcome) in cases {
            assert_eq!(charge_attempt(answer).outcome, outcome);
        }
    }

    #[tokio::test]
    async fn a_processor_failure_is_told_from_an_unreachable_service() {
        let router = axum::Router::new().route(
            "/v1/payments",
            axum::routing::post(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        );
        let client = ServiceClient::in_process("payments", router, Duration::from_secs(1));
        let answer = client
            .send::<_, Payment>(Method::POST, "/v1/payments", None, &serde_json::json!({}))
            .await;
        assert_eq!(
            charge_attempt(answer).outcome,
            Outcome::Failed(Failure::Processor)
        );
        let unreachable = Err(ClientError::Unavailable {
            service: "payments".into(),
            reason: "connection refused".into(),
        });
        assert_eq!(
            charge_attempt(unreachable).outcome,
            Outcome::Failed(Failure::Unavailable)
        );
    }
}
