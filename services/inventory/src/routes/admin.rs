//! `/v1/admin/stock/{sku}`: administrators read a product's stock (with its version as `ETag`),
//! set how many units are on sale — only if nothing changed since they read it (`If-Match`) —
//! and record goods received or written off as adjustments, which never race reservations.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use souk_chassis::auth::Caller;
use souk_chassis::{FieldError, Json, Path, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, AppState, conflict};
use crate::domain::{Adjustment, MAX_STOCK, Stock, Timestamp};
use crate::store::{AdjustError, AdjustRequest, Adjusted, SetOutcome};

/// Longest reason of an adjustment, in characters.
const MAX_REASON: usize = 200;
/// Longest `Idempotency-Key`, in characters.
const MAX_KEY: usize = 255;

/// The units to put on sale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StockBody {
    /// Units one can buy from now on, 0 to 1 000 000. Units held for orders and units sold are
    /// not counted here and do not change.
    #[schema(minimum = 0, maximum = 1_000_000, example = 25)]
    quantity: i64,
}

/// Goods received or written off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AdjustmentBody {
    /// Units received (positive) or written off (negative), at most 1 000 000 either way, not 0.
    /// A write-off takes only units on sale: held and sold ones are not the administrator's.
    #[schema(minimum = -1_000_000, maximum = 1_000_000, example = 5)]
    delta: i64,
    /// Why (1 to 200 characters, no control characters): "delivery 2031-04", "damaged".
    #[schema(example = "delivery from the supplier")]
    reason: String,
}

/// A product's stock, as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StockLevel {
    /// Its SKU.
    #[schema(example = "KIT-0001")]
    sku: String,
    /// The product (catalog id).
    product_id: Uuid,
    /// Units one can buy now.
    available: i64,
    /// Units held for orders not yet confirmed.
    reserved: i64,
    /// Units sold.
    sold: i64,
    /// Units ever put on sale: always `available + reserved + sold`.
    received: i64,
    /// Moves on every change (a reservation, a sale, an adjustment): the `ETag`, quoted.
    version: i64,
}

impl From<Stock> for StockLevel {
    fn from(stock: Stock) -> Self {
        Self {
            sku: stock.sku,
            product_id: stock.product_id,
            available: stock.available,
            reserved: stock.reserved,
            sold: stock.sold,
            received: stock.received,
            version: stock.version,
        }
    }
}

/// An adjustment recorded, and the stock after it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AdjustmentResult {
    /// The adjustment's id (UUIDv7).
    id: Uuid,
    /// Units received (positive) or written off (negative).
    delta: i64,
    /// Why.
    reason: String,
    /// When (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// The product's stock now (for a replay: as it stands now).
    stock: StockLevel,
}

/// A 409 or 412 about the stock: the problem, plus the stock as it stands (and, for a 412, its
/// `ETag`).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StockProblem {
    #[serde(flatten)]
    problem: Problem,
    /// The stock as it stands now.
    stock: StockLevel,
}

#[derive(Serialize)]
struct Current {
    stock: StockLevel,
}

/// One product's stock, with its version as `ETag`.
#[utoipa::path(get, path = "/v1/admin/stock/{sku}", tag = "admin", security(("bearer" = [])),
    params(("sku" = String, Path, pattern = r"^[A-Z0-9-]{1,64}$", description = "The product's SKU")),
    responses(
        (status = 200, description = "The product's stock", body = StockLevel, headers(("etag" = String, description = "Its version, to send back in `If-Match`"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No product with that SKU", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn stock_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let Some(stock) = state.store.stock_by_sku(&sku).await? else {
        return Err(Problem::not_found("no product with this SKU").into());
    };
    Ok(with_etag(StatusCode::OK, stock))
}

/// Sets the units on sale of one product, if its stock is still the version the administrator
/// read: a reservation, release, sale or adjustment since then makes it a 412, so a count made
/// from a stale reading never creates or loses units.
#[utoipa::path(put, path = "/v1/admin/stock/{sku}", tag = "admin", request_body = StockBody, security(("bearer" = [])),
    params(
        ("sku" = String, Path, pattern = r"^[A-Z0-9-]{1,64}$", description = "The product's SKU"),
        ("if-match" = String, Header, pattern = r#"^(W/)?"[^"]*"( *, *(W/)?"[^"]*")*$"#, description = "The `ETag` of the stock read before (`\"42\"`); required"),
    ),
    responses(
        (status = 200, description = "The product's stock now", body = StockLevel, headers(("etag" = String, description = "Its new version"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No product with that SKU", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`stale-stock`: the stock changed since that version; nothing was set. The stock as it stands and its `ETag` come with it", body = StockProblem, content_type = "application/problem+json"),
        (status = 422, description = "The quantity is out of range", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "`precondition-required`: no `If-Match` naming a version", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "`If-Match` is not a list of entity tags", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn stock_set(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
    headers: HeaderMap,
    Json(body): Json<StockBody>,
) -> Result<Response, ApiError> {
    let caller = caller.require_admin()?;
    let versions = if_match(&headers)?;
    if !(0..=MAX_STOCK).contains(&body.quantity) {
        return Err(Problem::validation(vec![FieldError::new(
            "quantity",
            format!("must be 0 to {MAX_STOCK}"),
        )])
        .into());
    }
    let now = Timestamp::now();
    // Several tags: the one naming the current version, if any does.
    let version = match versions.as_slice() {
        [] => -1,
        [one] => *one,
        many => state
            .store
            .stock_by_sku(&sku)
            .await?
            .map(|stock| stock.version)
            .filter(|current| many.contains(current))
            .unwrap_or(many[0]),
    };
    match state
        .store
        .set_available_if(&sku, body.quantity, version, now)
        .await?
    {
        SetOutcome::Set(stock) => {
            tracing::info!(admin = %caller.id, sku = %stock.sku, available = stock.available, version = stock.version, "stock set");
            Ok(with_etag(StatusCode::OK, stock))
        }
        SetOutcome::Stale(stock) => Err(stale(stock)),
        SetOutcome::NotFound => Err(Problem::not_found("no product with this SKU").into()),
    }
}

/// Records goods received (a positive `delta`) or written off (negative): what is on sale and
/// what was received move together, and reservations are never touched, so it never races a
/// checkout. With an `Idempotency-Key`, a repeat answers the first adjustment.
#[utoipa::path(post, path = "/v1/admin/stock/{sku}/adjustments", tag = "admin", request_body = AdjustmentBody, security(("bearer" = [])),
    params(
        ("sku" = String, Path, pattern = r"^[A-Z0-9-]{1,64}$", description = "The product's SKU"),
        ("idempotency-key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters: a repeat of the same adjustment answers the first (200)"),
    ),
    responses(
        (status = 201, description = "Recorded", body = AdjustmentResult, headers(("etag" = String, description = "The stock's new version"))),
        (status = 200, description = "A repeat under the same `Idempotency-Key`: the adjustment made before, nothing changed", body = AdjustmentResult),
        (status = 400, description = "The `Idempotency-Key` is not 1 to 255 visible ASCII characters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No product with that SKU", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`insufficient-stock`: writing off more units than are on sale; nothing changed. The stock comes with it", body = StockProblem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or `idempotency-key-reused`: the key was used for another adjustment", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn adjustments_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
    headers: HeaderMap,
    Json(body): Json<AdjustmentBody>,
) -> Result<Response, ApiError> {
    let caller = caller.require_admin()?;
    let key = idempotency_key(&headers)?;
    let reason = body.reason.trim();
    let mut errors = Vec::new();
    if body.delta == 0 || body.delta.abs() > MAX_STOCK {
        errors.push(FieldError::new(
            "delta",
            format!("must be 1 to {MAX_STOCK} units either way"),
        ));
    }
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON
        || reason.chars().any(char::is_control)
    {
        errors.push(FieldError::new(
            "reason",
            format!("must be 1 to {MAX_REASON} characters, without control characters"),
        ));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors).into());
    }
    let request = AdjustRequest {
        sku: &sku,
        delta: body.delta,
        reason,
        actor: &caller.id,
        key: key.as_deref(),
    };
    match state.store.adjust(request, Timestamp::now()).await {
        Ok(adjusted) => {
            if !adjusted.replayed {
                tracing::info!(admin = %caller.id, sku = %adjusted.stock.sku, delta = adjusted.adjustment.delta, available = adjusted.stock.available, "stock adjusted");
            }
            Ok(adjustment_answer(adjusted))
        }
        Err(AdjustError::NotFound) => Err(Problem::not_found("no product with this SKU").into()),
        Err(AdjustError::Insufficient(stock)) => Err(ApiError::Problem(
            conflict(
                "insufficient-stock",
                "Not that many units on sale",
                format!(
                    "{} units are on sale; held and sold units cannot be written off",
                    stock.available
                ),
            )
            .with_extensions(&Current {
                stock: stock.into(),
            }),
        )),
        Err(AdjustError::KeyReused) => Err(Problem::typed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
        )
        .with_detail("this key was used for another adjustment of this product")
        .into()),
        Err(AdjustError::Store(err)) => Err(err.into()),
    }
}

fn adjustment_answer(adjusted: Adjusted) -> Response {
    let Adjusted {
        adjustment,
        stock,
        replayed,
    } = adjusted;
    let Adjustment {
        id,
        delta,
        reason,
        created_at,
        ..
    } = adjustment;
    let etag = etag(&stock);
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = AdjustmentResult {
        id,
        delta,
        reason,
        created_at,
        stock: stock.into(),
    };
    let mut response = (status, Json(body)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// `stock` as the answer, with its `ETag`.
fn with_etag(status: StatusCode, stock: Stock) -> Response {
    let etag = etag(&stock);
    let mut response = (status, Json(StockLevel::from(stock))).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn etag(stock: &Stock) -> Option<HeaderValue> {
    HeaderValue::try_from(format!("\"{}\"", stock.version)).ok()
}

/// A 412: the version named is not the stock's; the stock as it stands, with its `ETag`.
fn stale(stock: Stock) -> ApiError {
    let mut problem = Problem::typed(
        StatusCode::PRECONDITION_FAILED,
        "stale-stock",
        "The stock changed",
    )
    .with_detail(format!(
        "the stock is at version {} now; read it again and decide anew",
        stock.version
    ));
    if let Some(etag) = etag(&stock) {
        problem = problem.with_header(header::ETAG, etag);
    }
    ApiError::Problem(problem.with_extensions(&Current {
        stock: stock.into(),
    }))
}

/// The versions `If-Match` names: a 428 without it (or with `*`, which names none); a tag that
/// is not one of ours names no version and will not match.
fn if_match(headers: &HeaderMap) -> Result<Vec<i64>, ApiError> {
    let required = || {
        Problem::typed(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "If-Match required",
        )
        .with_detail("send If-Match with the ETag of the stock you read (GET), so that a change made since is not overwritten")
    };
    let values: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() || values.contains(&"*") {
        return Err(required().into());
    }
    // An entity tag is `"…"` or `W/"…"` (RFC 9110 §8.8.3); anything else is a malformed header,
    // not a version that moved on.
    let quoted = |tag: &str| {
        tag.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|inner| !inner.contains('"'))
            .map(str::to_owned)
    };
    if values
        .iter()
        .any(|tag| quoted(tag.strip_prefix("W/").unwrap_or(tag)).is_none())
    {
        return Err(Problem::bad_request(
            "If-Match must list entity tags, such as the ETag a GET answered (\"42\")",
        )
        .into());
    }
    // Strong comparison: weak tags (`W/"…"`) never match.
    Ok(values
        .iter()
        .filter_map(|tag| quoted(tag)?.parse().ok())
        .collect())
}

/// The request's `Idempotency-Key`, if any: 1 to 255 visible ASCII characters, else a 400.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters"
        ))
        .into());
    }
    Ok(Some(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn if_match_names_versions_and_is_required() {
        assert_eq!(if_match(&headers(&["\"7\""])).unwrap(), vec![7]);
        assert_eq!(if_match(&headers(&["\"7\", \"8\""])).unwrap(), vec![7, 8]);
        assert_eq!(if_match(&headers(&["W/\"7\""])).unwrap(), Vec::<i64>::new());
        assert_eq!(if_match(&headers(&["\"x\""])).unwrap(), Vec::<i64>::new());
        assert!(
            if_match(&headers(&["7"])).is_err(),
            "not an entity tag: a 400"
        );
        assert!(if_match(&headers(&["M!jg"])).is_err());
        assert!(if_match(&headers(&[])).is_err());
        assert!(if_match(&headers(&["*"])).is_err());
    }
}
