//! `/v1/history`: the caller's purchases, newest first, as the projection holds them. Another
//! user's purchase is a 404, never a 403 that would confirm it exists.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use souk_chassis::auth::Caller;
use souk_chassis::{Json, Path, Problem, Query, pagination};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::domain::{Card, Instant, Line, Money, Purchase, Status};
use crate::store::Position;

/// A purchase.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PurchaseView {
    /// The order (UUIDv7).
    order_id: Uuid,
    /// `pending` while the checkout runs, then `confirmed` or `cancelled`.
    status: Status,
    /// Why it was cancelled (`out_of_stock`, `payment_declined`, `payment_failed`, `timeout`);
    /// `null` unless `cancelled`.
    cancel_reason: Option<String>,
    /// What was bought, with names and prices as they were then.
    lines: Vec<Line>,
    /// The sum of the line totals.
    total: Money,
    /// The card it was paid with, once the payment is captured; `null` before (or never).
    payment: Option<Card>,
    /// When it was placed (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    placed_at: Instant,
    /// When it was confirmed.
    #[schema(value_type = Option<String>, format = DateTime)]
    confirmed_at: Option<Instant>,
    /// When its payment was refunded.
    #[schema(value_type = Option<String>, format = DateTime)]
    refunded_at: Option<Instant>,
}

impl From<Purchase> for PurchaseView {
    fn from(purchase: Purchase) -> Self {
        Self {
            order_id: purchase.order_id,
            status: purchase.status,
            cancel_reason: purchase.cancel_reason,
            lines: purchase.lines,
            total: purchase.total,
            payment: purchase.payment,
            placed_at: purchase.placed_at,
            confirmed_at: purchase.confirmed_at,
            refunded_at: purchase.refunded_at,
        }
    }
}

/// A page of the caller's purchases, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct HistoryPage {
    /// The purchases.
    items: Vec<PurchaseView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// Paging of the caller's purchases.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The caller's purchases, newest first.
#[utoipa::path(get, path = "/v1/history", tag = "history", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of purchases", body = HistoryPage),
        (status = 400, description = "A bad limit or cursor, or an unknown parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn history_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<HistoryPage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let after = pagination::position::<(i64, Uuid)>(params.cursor.as_deref())?.map(
        |(placed_at, order_id)| Position {
            placed_at,
            order_id: order_id.to_string(),
        },
    );
    let mut purchases = state
        .store
        .purchases_of(&caller.id, after.as_ref(), limit + 1)
        .await?;
    let more = purchases.len() > limit as usize;
    purchases.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            purchases
                .last()
                .map(|p| pagination::encode_cursor(&(p.placed_at.millis(), p.order_id)))
        })
        .flatten();
    Ok(Json(HistoryPage {
        items: purchases.into_iter().map(PurchaseView::from).collect(),
        next_cursor,
    }))
}

/// One of the caller's purchases.
#[utoipa::path(get, path = "/v1/history/{order_id}", tag = "history", security(("bearer" = [])),
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The purchase", body = PurchaseView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The caller has no such purchase (another user's is a 404 too)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn history_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<PurchaseView>, ApiError> {
    match state.store.purchase(&caller.id, order_id).await? {
        Some(purchase) => Ok(Json(purchase.into())),
        None => Err(Problem::not_found(format!("you have no purchase {order_id}")).into()),
    }
}
