//! `/v1/reservations`: units held for orders, then sold or given back. Internal: only services
//! with a service token for inventory (orders' checkout saga) may call these.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use souk_chassis::{FieldError, Json, Path, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use souk_chassis::auth::ServiceCaller;

use super::{ApiError, AppState, conflict};
use crate::domain::{Line, Lines, LinesError, Reservation, ReservationState, Timestamp};
use crate::store::{Lapsed, ReserveError, TransitionError};

/// A reservation to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReserveBody {
    /// The order (UUID); a reservation per order, so repeating the request is safe.
    order_id: Uuid,
    /// 1 to 100 lines, each product at most once (merge lines before sending).
    lines: Vec<LineBody>,
}

/// One line to reserve.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LineBody {
    /// The product (catalog id).
    product_id: Uuid,
    /// Units, 1 to 99.
    #[schema(minimum = 1, maximum = 99)]
    quantity: i64,
}

/// A reservation.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ReservationBody {
    /// The order it is for.
    order_id: Uuid,
    /// `held` (units set aside), `committed` (sold), `released` (given back; also the tombstone
    /// of an order cancelled before it reserved) or `expired` (given back when the hold lapsed).
    state: ReservationState,
    /// When the hold lapses (RFC 3339); `null` for a tombstone.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
    /// What it holds, by product id; empty for a tombstone.
    lines: Vec<Line>,
}

impl From<Reservation> for ReservationBody {
    fn from(r: Reservation) -> Self {
        Self {
            order_id: r.order_id,
            state: r.state,
            expires_at: r.expires_at,
            lines: r.lines.as_slice().to_vec(),
        }
    }
}

/// A 409 `out-of-stock`: the problem, plus the products that lack units.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OutOfStockProblem {
    #[serde(flatten)]
    problem: Problem,
    /// The products that lack the units asked for (or that inventory does not know).
    product_ids: Vec<Uuid>,
}

/// A 409 about a reservation (`reservation-conflict`, `reservation-state`): the problem, plus the
/// reservation as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ReservationProblem {
    #[serde(flatten)]
    problem: Problem,
    /// The reservation as it stands.
    reservation: ReservationBody,
}

#[derive(Serialize)]
struct OutOfStock<'a> {
    product_ids: &'a [Uuid],
}

#[derive(Serialize)]
struct Standing {
    reservation: ReservationBody,
}

/// Reserves every line, or none.
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations", request_body = ReserveBody, security(("service" = [])),
    responses(
        (status = 201, description = "Held", body = ReservationBody, headers(("location" = String, description = "The reservation"))),
        (status = 200, description = "A repeat of a reservation made before: it, as it now stands", body = ReservationBody),
        (status = 401, description = "No valid service token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`out-of-stock` (nothing was reserved), or `reservation-conflict`: the order has a reservation with other lines, or was released before", body = OutOfStockProblem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid lines", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn reservations_create(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Json(body): Json<ReserveBody>,
) -> Result<Response, ApiError> {
    let asked: Vec<Line> = body
        .lines
        .iter()
        .map(|l| Line {
            product_id: l.product_id,
            quantity: l.quantity,
        })
        .collect();
    let lines = Lines::new(asked.clone()).map_err(lines_problem)?;
    let now = Timestamp::now();
    let expires_at = now.plus(state.reservation_ttl);
    match state
        .store
        .reserve(body.order_id, &lines, expires_at, now)
        .await
    {
        Ok(reserved) if reserved.created => {
            souk_chassis::crash::point("inventory.after-commit-before-answer");
            tracing::info!(order = %body.order_id, service = %caller.service, lines = lines.as_slice().len(), "stock reserved");
            let location = format!("/v1/reservations/{}", body.order_id);
            let mut response = (
                StatusCode::CREATED,
                Json(ReservationBody::from(reserved.reservation)),
            )
                .into_response();
            if let Ok(value) = HeaderValue::try_from(location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            Ok(response)
        }
        Ok(reserved) => Ok(Json(ReservationBody::from(reserved.reservation)).into_response()),
        Err(ReserveError::OutOfStock(lacking)) => Err(out_of_stock(&asked, &lacking)),
        Err(ReserveError::Conflict(existing)) => Err(ApiError::Problem(
            conflict(
                "reservation-conflict",
                "The order has another reservation",
                format!(
                    "order {} already has a reservation ({}) with other lines",
                    existing.order_id,
                    existing.state.as_str()
                ),
            )
            .with_extensions(&Standing {
                reservation: existing.into(),
            }),
        )),
        Err(ReserveError::Store(err)) => Err(err.into()),
    }
}

/// Gives a reservation's units back: the order was cancelled.
#[utoipa::path(post, path = "/v1/reservations/{order_id}/release", tag = "reservations", security(("service" = [])),
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "Released (or released before: no change; an expired hold becomes released, its units having gone back at expiry). An order never seen is recorded as released, so a late reservation for it is refused", body = ReservationBody),
        (status = 401, description = "No valid service token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`reservation-state`: the reservation is committed", body = ReservationProblem, content_type = "application/problem+json"),
    ))]
pub(super) async fn reservations_release(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<ReservationBody>, ApiError> {
    let reservation = state
        .store
        .release(order_id, Timestamp::now())
        .await
        .map_err(transition_problem)?;
    tracing::info!(order = %order_id, service = %caller.service, state = reservation.state.as_str(), "reservation released");
    Ok(Json(reservation.into()))
}

/// Turns a reservation's units into a sale: the checkout saga calls it after the capture and
/// before it confirms the order. A hold that lapsed is sold anyway if its units are still on
/// sale.
#[utoipa::path(post, path = "/v1/reservations/{order_id}/commit", tag = "reservations", security(("service" = [])),
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "Committed (or committed before: no change); a lapsed hold whose units were still on sale is committed too", body = ReservationBody),
        (status = 401, description = "No valid service token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No reservation for this order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`out-of-stock`: the hold lapsed and its units were sold meanwhile (nothing was sold); `reservation-state`: the reservation was released", body = ReservationProblem, content_type = "application/problem+json"),
    ))]
pub(super) async fn reservations_commit(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<ReservationBody>, ApiError> {
    let reservation = state
        .store
        .commit(order_id, Timestamp::now(), Lapsed::TakeAgain)
        .await
        .map_err(transition_problem)?;
    tracing::info!(order = %order_id, service = %caller.service, "reservation committed");
    Ok(Json(reservation.into()))
}

/// One order's reservation.
#[utoipa::path(get, path = "/v1/reservations/{order_id}", tag = "reservations", security(("service" = [])),
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The reservation", body = ReservationBody),
        (status = 401, description = "No valid service token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No reservation for this order", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn reservations_get(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<ReservationBody>, ApiError> {
    match state.store.reservation(order_id).await? {
        Some(reservation) => Ok(Json(reservation.into())),
        None => Err(Problem::not_found(format!("no reservation for order {order_id}")).into()),
    }
}

fn lines_problem(errors: Vec<LinesError>) -> Problem {
    let fields = errors
        .into_iter()
        .map(|err| {
            let field = match err {
                LinesError::Count(_) => "lines".to_owned(),
                LinesError::Quantity { index } => format!("lines[{index}].quantity"),
                LinesError::Duplicate { index, .. } => format!("lines[{index}].product_id"),
            };
            FieldError::new(field, err.to_string())
        })
        .collect();
    Problem::validation(fields)
}

fn out_of_stock(asked: &[Line], lacking: &[Uuid]) -> ApiError {
    let errors = asked
        .iter()
        .enumerate()
        .filter(|(_, line)| lacking.contains(&line.product_id))
        .map(|(index, line)| {
            FieldError::new(
                format!("lines[{index}].product_id"),
                format!(
                    "fewer than {} units of {} are available",
                    line.quantity, line.product_id
                ),
            )
        })
        .collect();
    let problem = Problem::typed(StatusCode::CONFLICT, "out-of-stock", "Out of stock")
        .with_errors(errors)
        .with_detail(format!(
            "{} of the products lack the units asked for; nothing was reserved",
            lacking.len()
        ));
    ApiError::Problem(problem.with_extensions(&OutOfStock {
        product_ids: lacking,
    }))
}

fn transition_problem(err: TransitionError) -> ApiError {
    match err {
        TransitionError::NotFound => Problem::not_found("no reservation for this order").into(),
        TransitionError::OutOfStock(lacking) => {
            let problem = Problem::typed(StatusCode::CONFLICT, "out-of-stock", "Out of stock")
                .with_detail(format!(
                    "the hold lapsed and {} of its products no longer have the units; nothing was sold",
                    lacking.len()
                ));
            ApiError::Problem(problem.with_extensions(&OutOfStock {
                product_ids: &lacking,
            }))
        }
        TransitionError::Conflict(existing) => ApiError::Problem(
            conflict(
                "reservation-state",
                "The reservation cannot take this step",
                format!("the reservation is {}", existing.state.as_str()),
            )
            .with_extensions(&Standing {
                reservation: existing.into(),
            }),
        ),
        TransitionError::Store(err) => err.into(),
    }
}
