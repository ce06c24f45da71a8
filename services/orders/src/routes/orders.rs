//! `/v1/orders`: checking out the caller's cart, and the caller's orders. Another user's order is
//! a 404, never a 403 that would confirm it exists.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use souk_chassis::auth::Caller;
use souk_chassis::{FieldError, Json, Path, Problem, Query, pagination};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::idempotency::{KeyHeader, KeyHold, in_progress, key_reused, respond};
use super::{ApiError, AppState, User, retry_soon};
use crate::checkout::CheckoutError;
use crate::domain::{
    CancelReason, IdempotencyKey, Money, Order, OrderLine, OrderStatus, PricingError,
    ShippingAddress, Timestamp, fingerprint,
};
use crate::store::{KeyClaim, NewOrder, Placed, StoredAnswer};
use crate::{events, metrics};

/// A checkout: the caller's cart becomes an order paid with this payment method. Prices come
/// from the catalog; nothing price-like is accepted here.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateOrderBody {
    /// One of the caller's payment methods (payments' id).
    payment_method_id: Uuid,
    /// Where the order goes.
    shipping_address: AddressBody,
}

/// A shipping address as sent. Text is trimmed; `line2` may be left out.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddressBody {
    /// The recipient, 1 to 200 characters, not only spaces, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        example = "Ada Lovelace"
    )]
    name: String,
    /// Street and number, 1 to 200 characters, not only spaces, no control characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        example = "12 St James's Square"
    )]
    line1: String,
    /// More of the address, up to 200 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    line2: Option<String>,
    /// 1 to 100 characters, not only spaces, no control characters.
    #[schema(
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        example = "London"
    )]
    city: String,
    /// 1 to 20 letters, digits, spaces and dashes.
    #[schema(
        max_length = 20,
        pattern = r"^[A-Za-z0-9 -]*[A-Za-z0-9-][A-Za-z0-9 -]*$",
        example = "SW1Y 4JH"
    )]
    postal_code: String,
    /// ISO 3166-1 alpha-2, in capitals (the document lists them).
    #[schema(example = "GB")]
    country: String,
}

/// An order accepted: its saga runs on, so poll `Location` for how it ends.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Accepted {
    /// The order (UUIDv7).
    id: Uuid,
    /// Always `pending` here.
    status: OrderStatus,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrderView {
    /// UUIDv7.
    id: Uuid,
    /// `pending` while the checkout saga runs, then `confirmed` or `cancelled`.
    status: OrderStatus,
    /// Why it was cancelled; `null` unless `cancelled`.
    cancel_reason: Option<CancelReason>,
    /// What was ordered, priced by the catalog when the order was placed.
    lines: Vec<OrderLine>,
    /// The sum of the line totals.
    total: Money,
    /// Where it goes.
    shipping_address: ShippingAddress,
    /// The card it is paid with.
    payment_method_id: Uuid,
    /// When it was placed (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// When its status last changed (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl From<Order> for OrderView {
    fn from(order: Order) -> Self {
        Self {
            id: order.id,
            status: order.status,
            cancel_reason: order.cancel_reason,
            lines: order.lines,
            total: order.total,
            shipping_address: order.shipping_address,
            payment_method_id: order.payment_method_id,
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

/// A page of the caller's orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrderPage {
    /// The orders.
    items: Vec<OrderView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// Paging of the caller's orders.
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

/// Extra members of a problem about products.
#[derive(Debug, Serialize)]
struct ProductIds {
    product_ids: Vec<Uuid>,
}

/// Checks out the caller's cart.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = CreateOrderBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters naming this attempt: a repeat with the same key and body gets the first answer again (with `Idempotent-Replayed: true`); kept at least 24 hours")),
    responses(
        (status = 202, description = "Accepted: the order is pending while stock is reserved and the card charged; poll `Location`", body = Accepted, headers(("location" = String, description = "The order"))),
        (status = 400, description = "Malformed JSON, or an invalid `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cart-not-ready`: lines the catalog no longer has (named in `errors`); `product-unavailable`: products the catalog no longer has (`product_ids`); `mixed-currencies`; `total-too-large`; `request-in-progress`: a request with this key is still running (retry after `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation` or `invalid-body`: fields out of bounds, unknown fields; `cart-empty`; `payment-method-invalid`: not one of the caller's payment methods; `idempotency-key-reused`: the key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The cart, the catalog, payments or the database could not answer: nothing was stored; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn orders_create(
    State(state): State<AppState>,
    user: User,
    KeyHeader(key): KeyHeader,
    Json(body): Json<CreateOrderBody>,
) -> Response {
    let request = match validate(&body) {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    let Some(key) = key else {
        return match place(&state, &user, &request, None).await {
            Ok(answer) => respond(&answer, false),
            Err(err) => err.into_response(),
        };
    };
    match idempotent(&state, &user, &request, &body, &key).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// One of the caller's orders.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order among the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn orders_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<OrderView>, ApiError> {
    match state.store.order(id).await? {
        Some(order) if order.user_id == caller.id => Ok(Json(order.into())),
        _ => Err(Problem::not_found(format!("you have no order {id}")).into()),
    }
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "A bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn orders_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let before = pagination::position::<Uuid>(params.cursor.as_deref())?;
    let mut orders = state.store.orders_of(&caller.id, before, limit + 1).await?;
    let more = orders.len() > limit as usize;
    orders.truncate(limit as usize);
    let next_cursor = more
        .then(|| orders.last().map(|o| pagination::encode_cursor(&o.id)))
        .flatten();
    Ok(Json(OrderPage {
        items: orders.into_iter().map(OrderView::from).collect(),
        next_cursor,
    }))
}

/// A checkout request, validated.
#[derive(Debug)]
struct PlaceRequest {
    payment_method_id: Uuid,
    address: ShippingAddress,
}

fn validate(body: &CreateOrderBody) -> Result<PlaceRequest, Problem> {
    let a = &body.shipping_address;
    let raw = ShippingAddress {
        name: a.name.clone(),
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
    };
    let address = ShippingAddress::parse(raw, "shipping_address.").map_err(Problem::validation)?;
    Ok(PlaceRequest {
        payment_method_id: body.payment_method_id,
        address,
    })
}

/// Runs the request under its key: once, whoever asks how often.
async fn idempotent(
    state: &AppState,
    user: &User,
    request: &PlaceRequest,
    body: &CreateOrderBody,
    key: &IdempotencyKey,
) -> Result<Response, ApiError> {
    // The body as parsed, re-serialised: the same request whatever its spacing or key order.
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    let claim = state
        .store
        .claim_key(
            &user.id,
            key.as_str(),
            &fingerprint(&canonical),
            Timestamp::now(),
            state.settings.key_lock,
        )
        .await?;
    let owner = match claim {
        KeyClaim::Run { owner } => owner,
        KeyClaim::Replay(answer) => {
            metrics::replayed();
            return Ok(respond(&answer, true));
        }
        KeyClaim::InProgress => return Err(ApiError::Transient(in_progress())),
        KeyClaim::Mismatch => return Err(ApiError::Transient(key_reused())),
    };
    let hold = KeyHold::new(state.store.clone(), &user.id, key, owner);
    match place(state, user, request, Some(&hold)).await {
        Ok(answer) => {
            hold.settle();
            Ok(respond(&answer, false))
        }
        Err(err) => match err.final_answer() {
            Some((status, body)) => {
                let answer = StoredAnswer {
                    status: status.as_u16(),
                    body,
                    location: None,
                };
                let kept = state.store.finish_key(&hold.done(answer.clone())).await;
                match kept {
                    Ok(_) => hold.settle(),
                    Err(store) => {
                        tracing::warn!(error = %souk_chassis::problem::ErrorChain(&store), "cannot keep an answer for its idempotency key");
                        hold.release().await;
                    }
                }
                Ok(respond(&answer, false))
            }
            None => {
                hold.release().await;
                Err(err)
            }
        },
    }
}

/// Step 1 of the saga: price the cart, then store the order, its saga, its event and (with a
/// key) its answer in one transaction. Returns the 202 answer.
async fn place(
    state: &AppState,
    user: &User,
    request: &PlaceRequest,
    hold: Option<&KeyHold>,
) -> Result<StoredAnswer, ApiError> {
    let priced = state
        .checkout
        .price(&user.token, request.payment_method_id)
        .await
        .map_err(checkout_problem)?;
    let now = Timestamp::now();
    let order = Order {
        id: Uuid::now_v7(),
        user_id: user.id.clone(),
        status: OrderStatus::Pending,
        cancel_reason: None,
        lines: priced.lines,
        total: priced.total,
        shipping_address: request.address.clone(),
        payment_method_id: request.payment_method_id,
        created_at: now,
        updated_at: now,
    };
    let answer = StoredAnswer {
        status: StatusCode::ACCEPTED.as_u16(),
        body: serde_json::json!({ "id": order.id, "status": OrderStatus::Pending }).to_string(),
        location: Some(format!(
            "{}/v1/orders/{}",
            state.settings.public_prefix, order.id
        )),
    };
    let key = hold.map(|hold| hold.done(answer.clone()));
    let event = events::placed(&order);
    let placed = state
        .store
        .place(NewOrder {
            order: &order,
            deadline_at: now.plus(state.settings.deadline),
            event: &event,
            key: key.as_ref(),
        })
        .await?;
    if placed == Placed::KeyLost {
        return Err(ApiError::Transient(in_progress()));
    }
    souk_chassis::crash::point("orders.after-place-before-answer");
    state.outbox.notify();
    state.saga.wake();
    metrics::placed();
    tracing::info!(order = %order.id, lines = order.lines.len(), total = order.total.amount, currency = order.total.currency.as_str(), "order placed");
    Ok(answer)
}

/// The one mapping of step 1's refusals to problems.
fn checkout_problem(err: CheckoutError) -> ApiError {
    let conflict = |slug: &str, title: &str| Problem::typed(StatusCode::CONFLICT, slug, title);
    match err {
        CheckoutError::CartEmpty | CheckoutError::Pricing(PricingError::Empty) => Problem::typed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cart-empty",
            "The cart is empty",
        )
        .with_detail("add something to the cart before checking out")
        .into(),
        CheckoutError::CartNotReady(lines) => {
            let errors = lines
                .iter()
                .map(|(index, product, status)| {
                    FieldError::new(
                        format!("cart.items[{index}]"),
                        format!("product {product} is {status}: remove it from the cart"),
                    )
                })
                .collect();
            let product_ids = lines.into_iter().map(|(_, id, _)| id).collect();
            ApiError::Problem(conflict("cart-not-ready", "The cart cannot be ordered as it is")
                    .with_errors(errors).with_extensions(&ProductIds { product_ids }))
        }
        CheckoutError::Pricing(PricingError::Missing(product_ids)) => ApiError::Problem(conflict("product-unavailable", "Products are no longer sold").with_detail(format!(
                "{} of the cart's products are no longer in the catalog: remove them from the cart",
                product_ids.len()
            )).with_extensions(&ProductIds { product_ids })),
        CheckoutError::Pricing(PricingError::BadQuantity(product_ids)) => ApiError::Problem(conflict("cart-not-ready", "The cart cannot be ordered as it is")
                .with_detail("some lines ask for more than 99 units").with_extensions(&ProductIds { product_ids })),
        CheckoutError::Pricing(PricingError::TooManyLines) => {
            conflict("cart-not-ready", "The cart cannot be ordered as it is")
                .with_detail("an order holds at most 100 products")
                .into()
        }
        CheckoutError::Pricing(PricingError::MixedCurrencies(currencies)) => {
            let codes: Vec<&str> = currencies.iter().map(|c| c.as_str()).collect();
            conflict("mixed-currencies", "The cart mixes currencies")
                .with_detail(format!(
                    "the cart's products are priced in {}; an order is paid in one currency",
                    codes.join(", ")
                ))
                .into()
        }
        CheckoutError::Pricing(PricingError::Overflow) => {
            conflict("total-too-large", "The order total is too large")
                .with_detail("the order's total does not fit in an amount payments can take")
                .into()
        }
        CheckoutError::PaymentMethodInvalid(id) => Problem::typed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment-method-invalid",
            "Payment method not usable",
        )
        .with_errors(vec![FieldError::new(
            "payment_method_id",
            format!("you have no payment method {id}"),
        )])
        .into(),
        CheckoutError::Unavailable(cause) => {
            tracing::warn!(error = %souk_chassis::problem::ErrorChain(&cause), "checkout cannot reach a neighbour");
            let service = match &cause {
                souk_chassis::client::ClientError::Unavailable { service, .. }
                | souk_chassis::client::ClientError::Status { service, .. }
                | souk_chassis::client::ClientError::Decode { service, .. } => service.clone(),
            };
            ApiError::Transient(retry_soon(Problem::unavailable(format!(
                "the {service} service could not answer; nothing was stored, try again shortly"
            ))))
        }
    }
}
