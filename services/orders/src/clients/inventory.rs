//! Inventory's internal reservation endpoints, called by the saga with a service token:
//! `POST /v1/reservations` (hold every line or none, idempotent on the order id),
//! `POST /v1/reservations/{order_id}/commit` (sell what is held, or take the units again if the
//! hold lapsed and they are still there) and `POST /v1/reservations/{order_id}/release` (give the
//! units back, or leave a tombstone).

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use souk_chassis::client::{ClientError, ServiceClient};
use uuid::Uuid;

use super::{Attempt, is_passing, problem_slug};
use crate::domain::{Failure, Order, Outcome, Timestamp};

#[derive(Debug, Serialize)]
struct ReserveBody {
    order_id: Uuid,
    lines: Vec<LineBody>,
}

#[derive(Debug, Serialize)]
struct LineBody {
    product_id: Uuid,
    quantity: i64,
}

/// A reservation, as far as orders reads it.
#[derive(Debug, Deserialize)]
struct Reservation {
    state: String,
    /// When the hold lapses (RFC 3339), for the saga's check that it outlives the deadline.
    #[serde(default)]
    expires_at: Option<String>,
}

/// Inventory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Inventory {
    client: ServiceClient,
}

impl Inventory {
    /// Calls inventory through `client`.
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }

    /// Holds every line of `order`, with service token `token`.
    pub async fn reserve(&self, token: &str, order: &Order) -> Attempt {
        let body = ReserveBody {
            order_id: order.id,
            lines: order
                .lines
                .iter()
                .map(|l| LineBody {
                    product_id: l.product_id,
                    quantity: l.quantity,
                })
                .collect(),
        };
        let answer = self
            .client
            .send(Method::POST, "/v1/reservations", Some(token), &body)
            .await;
        reserve_attempt(answer)
    }

    /// Turns `order_id`'s reservation into a sale: synchronously, before the order is confirmed.
    pub async fn commit(&self, token: &str, order_id: Uuid) -> Attempt {
        let path = format!("/v1/reservations/{order_id}/commit");
        let answer = self
            .client
            .send::<_, Reservation>(Method::POST, &path, Some(token), &serde_json::json!({}))
            .await;
        commit_attempt(answer)
    }

    /// Gives `order_id`'s units back (or records that it must never hold any).
    pub async fn release(&self, token: &str, order_id: Uuid) -> Attempt {
        let path = format!("/v1/reservations/{order_id}/release");
        let answer = self
            .client
            .send::<_, Reservation>(Method::POST, &path, Some(token), &serde_json::json!({}))
            .await;
        release_attempt(answer)
    }
}

fn reserve_attempt(answer: Result<Reservation, ClientError>) -> Attempt {
    match answer {
        Ok(r) if matches!(r.state.as_str(), "held" | "committed") => {
            let mut attempt = Attempt::new(Outcome::Reserved, format!("reservation {}", r.state));
            attempt.hold_until = r
                .expires_at
                .as_deref()
                .and_then(|at| Timestamp::parse(at).ok());
            attempt
        }
        Ok(r) => Attempt::new(
            Outcome::ReservationRefused,
            format!("the reservation is {} already", r.state),
        ),
        Err(ClientError::Status { status, body, .. }) => {
            let slug = problem_slug(&body).unwrap_or_default();
            let note = format!("inventory answered {status} {slug}");
            match (status, slug) {
                (StatusCode::CONFLICT, "out-of-stock") => Attempt::new(Outcome::OutOfStock, note),
                // Released or expired before (a tombstone), or lines it will never take:
                // inventory will not hold for this order.
                (StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY, _) => {
                    Attempt::new(Outcome::ReservationRefused, note)
                }
                _ => {
                    if !is_passing(status) {
                        tracing::warn!(%status, slug, "inventory answered what the saga does not expect; retrying");
                    }
                    Attempt::new(Outcome::Failed(Failure::Unavailable), note)
                }
            }
        }
        Err(err) => Attempt::failed(&err),
    }
}

fn commit_attempt(answer: Result<Reservation, ClientError>) -> Attempt {
    match answer {
        Ok(r) if r.state == "committed" => Attempt::new(Outcome::Committed, "stock committed"),
        Ok(r) => Attempt::new(
            Outcome::Failed(Failure::Unavailable),
            format!("inventory answered a commit with state {}", r.state),
        ),
        Err(ClientError::Status { status, body, .. }) => {
            let slug = problem_slug(&body).unwrap_or_default();
            let note = format!("inventory answered {status} {slug}");
            match (status, slug) {
                // The hold lapsed and its units were sold meanwhile, or the reservation is gone
                // for good (released; unknown): inventory will not sell to this order.
                (StatusCode::CONFLICT | StatusCode::NOT_FOUND, _) => {
                    Attempt::new(Outcome::CommitRefused, note)
                }
                _ => {
                    if !is_passing(status) {
                        tracing::warn!(%status, slug, "inventory answered a commit with what the saga does not expect; retrying");
                    }
                    Attempt::new(Outcome::Failed(Failure::Unavailable), note)
                }
            }
        }
        Err(err) => Attempt::failed(&err),
    }
}

fn release_attempt(answer: Result<Reservation, ClientError>) -> Attempt {
    match answer {
        Ok(r) => Attempt::new(Outcome::Released, format!("reservation {}", r.state)),
        Err(ClientError::Status { status, body, .. })
            if status == StatusCode::CONFLICT
                && problem_slug(&body) == Some("reservation-state") =>
        {
            // Committed: only a confirmed order's reservation is, and a confirmed order is never
            // compensated. Nothing to give back, and retrying would never end.
            tracing::error!(%body, "a reservation being released is committed; leaving it");
            Attempt::new(Outcome::Released, "the reservation was committed")
        }
        Err(err) => Attempt::failed(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, slug: &str) -> Result<Reservation, ClientError> {
        Err(ClientError::Status {
            service: "inventory".into(),
            status: StatusCode::from_u16(code).unwrap(),
            body: serde_json::json!({"type": format!("urn:souk:problem:{slug}"), "status": code}),
        })
    }

    fn state(state: &str) -> Result<Reservation, ClientError> {
        Ok(Reservation {
            state: state.into(),
            expires_at: None,
        })
    }

    #[test]
    fn commit_answers_are_classified() {
        let cases = [
            (state("committed"), Outcome::Committed),
            (status(409, "out-of-stock"), Outcome::CommitRefused),
            (status(409, "reservation-state"), Outcome::CommitRefused),
            (status(404, "not-found"), Outcome::CommitRefused),
            (
                status(401, "unauthorized"),
                Outcome::Failed(Failure::Unavailable),
            ),
            (state("held"), Outcome::Failed(Failure::Unavailable)),
        ];
        for (answer, outcome) in cases {
            assert_eq!(commit_attempt(answer).outcome, outcome);
        }
    }

    #[test]
    fn a_reservation_says_when_its_hold_lapses() {
        let answer = Ok(Reservation {
            state: "held".into(),
            expires_at: Some("2030-01-01T00:00:00Z".into()),
        });
        let attempt = reserve_attempt(answer);
        assert_eq!(
            attempt.hold_until,
            Some(Timestamp::parse("2030-01-01T00:00:00Z").unwrap())
        );
    }

    #[test]
    fn reservation_answers_are_classified() {
        let cases = [
            (state("held"), Outcome::Reserved),
            (state("released"), Outcome::ReservationRefused),
            (state("expired"), Outcome::ReservationRefused),
            (status(409, "out-of-stock"), Outcome::OutOfStock),
            (
                status(409, "reservation-conflict"),
                Outcome::ReservationRefused,
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
            assert_eq!(reserve_attempt(answer).outcome, outcome);
        }
        let down = Err(ClientError::Unavailable {
            service: "inventory".into(),
            reason: "refused".into(),
        });
        assert_eq!(
            reserve_attempt(down).outcome,
            Outcome::Failed(Failure::Unavailable)
        );
    }

    #[test]
    fn releases_end_unless_inventory_cannot_answer() {
        assert_eq!(
            release_attempt(state("released")).outcome,
            Outcome::Released
        );
        assert_eq!(release_attempt(state("expired")).outcome, Outcome::Released);
        assert_eq!(
            release_attempt(status(409, "reservation-state")).outcome,
            Outcome::Released
        );
        assert_eq!(
            release_attempt(status(403, "forbidden")).outcome,
            Outcome::Failed(Failure::Unavailable)
        );
    }
}
