//! `/v1/payment-methods`: a user registers cards and lists their own. The card number goes to the
//! processor's vault and nowhere else; the CVC is checked for shape and forgotten.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use souk_chassis::auth::Caller;
use souk_chassis::{FieldError, Json, Path, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, AppState, conflict};
use crate::domain::{Brand, CardNumber, Cvc, Expiry, PaymentMethod, Timestamp};

/// Most cards one user may register.
const MAX_METHODS: i64 = 20;

/// A card to register. Every field is read as raw JSON and checked here, so that a wrongly typed
/// card number is a field error like any other, and never echoed back in a parser's message.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CardBody {
    /// 12 to 19 digits; spaces and dashes are ignored. Must pass the Luhn check.
    #[schema(value_type = String, pattern = r"^[ -]*([0-9][ -]*){12,19}$", example = "4242 4242 4242 4242")]
    card_number: Value,
    /// 1 to 12.
    #[schema(value_type = i64, minimum = 1, maximum = 12, example = 12)]
    exp_month: Value,
    /// Four digits; the card is valid through the end of `exp_month` of this year (UTC), and
    /// not for more than 50 years.
    #[schema(value_type = i64, minimum = 1000, maximum = 9999, example = 2030)]
    exp_year: Value,
    /// 3 or 4 digits. Checked, never stored.
    #[schema(value_type = String, pattern = r"^[0-9]{3,4}$", example = "123")]
    cvc: Value,
}

impl std::fmt::Debug for CardBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardBody")
            .field("card_number", &"[redacted]")
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .field("cvc", &"[redacted]")
            .finish()
    }
}

impl CardBody {
    /// The card's number and expiry, or a 422 naming every invalid field.
    fn validate(&self, now: Timestamp) -> Result<(CardNumber, Expiry), Problem> {
        let mut errors = Vec::new();
        let mut check = |field: &'static str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push(FieldError::new(field, message));
            }
        };
        let number = text(&self.card_number, "a string of digits").and_then(CardNumber::parse);
        check(
            "card_number",
            number.as_ref().map(drop).map_err(Clone::clone),
        );
        let month = integer(&self.exp_month);
        check("exp_month", month.as_ref().map(drop).map_err(Clone::clone));
        let year = integer(&self.exp_year);
        check("exp_year", year.as_ref().map(drop).map_err(Clone::clone));
        let expiry = match (month, year) {
            (Ok(month), Ok(year)) => Expiry::new(month, year, now)
                .map_err(|(field, message)| check(field, Err(message)))
                .ok(),
            _ => None,
        };
        let cvc = text(&self.cvc, "a string of 3 or 4 digits").and_then(Cvc::parse);
        check("cvc", cvc.map(drop));
        match (number, expiry) {
            (Ok(number), Some(expiry)) if errors.is_empty() => Ok((number, expiry)),
            _ => Err(Problem::validation(errors)),
        }
    }
}

fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, String> {
    value.as_str().ok_or_else(|| format!("must be {what}"))
}

/// An integer, written as one or as a number without a fraction (`12.0`: JSON Schema's
/// `integer`, which the document promises).
fn integer(value: &Value) -> Result<i64, String> {
    #[allow(clippy::cast_possible_truncation, clippy::float_cmp)]
    let integral = |f: f64| (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64);
    value
        .as_i64()
        .or_else(|| value.as_f64().and_then(integral))
        .ok_or_else(|| "must be an integer".to_owned())
}

/// A registered card, as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PaymentMethodBody {
    /// UUIDv7: what an order names to pay with this card.
    id: Uuid,
    /// The card network: `visa`, `mastercard`, `amex` or `unknown`.
    brand: Brand,
    /// The last four digits.
    #[schema(example = "4242")]
    last4: String,
    /// Expiry month, 1 to 12.
    exp_month: i64,
    /// Expiry year.
    exp_year: i64,
}

impl From<PaymentMethod> for PaymentMethodBody {
    fn from(method: PaymentMethod) -> Self {
        Self {
            id: method.id,
            brand: method.brand,
            last4: method.last4,
            exp_month: method.expiry.month,
            exp_year: method.expiry.year,
        }
    }
}

/// The caller's cards, oldest first (at most 20: no paging needed).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PaymentMethodList {
    /// The cards.
    items: Vec<PaymentMethodBody>,
}

/// Registers a card for the caller.
#[utoipa::path(post, path = "/v1/payment-methods", tag = "payment-methods", request_body = CardBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered; the number went to the processor's vault", body = PaymentMethodBody, headers(("location" = String, description = "The new payment method"))),
        (status = 401, description = "No valid user token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`payment-method-limit`: the caller has 20 cards already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields: a non-Luhn number, a past expiry, a malformed CVC (`errors` names each)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn payment_methods_create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CardBody>,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    let (number, expiry) = body.validate(now)?;
    if state.store.count_methods(&caller.id).await? >= MAX_METHODS {
        return Err(conflict(
            "payment-method-limit",
            "Too many payment methods",
            format!("a user may register at most {MAX_METHODS} cards"),
        )
        .into());
    }
    let token = state.processor.tokenize(&number, now).await?;
    let method = PaymentMethod {
        id: Uuid::now_v7(),
        owner: caller.id,
        brand: number.brand(),
        last4: number.last4().to_owned(),
        expiry,
        token,
        created_at: now,
    };
    state.store.add_method(&method).await?;
    tracing::info!(payment_method = %method.id, user = %method.owner, brand = method.brand.as_str(), "payment method registered");
    let mut response = (
        StatusCode::CREATED,
        Json(PaymentMethodBody::from(method.clone())),
    )
        .into_response();
    if let Ok(location) = HeaderValue::try_from(format!("/v1/payment-methods/{}", method.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The caller's cards.
#[utoipa::path(get, path = "/v1/payment-methods", tag = "payment-methods", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's cards, oldest first", body = PaymentMethodList),
        (status = 401, description = "No valid user token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn payment_methods_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PaymentMethodList>, ApiError> {
    // The cap on registration bounds the list; the limit only guards against a raised cap.
    let methods = state.store.methods_of(&caller.id, 100).await?;
    Ok(Json(PaymentMethodList {
        items: methods.into_iter().map(Into::into).collect(),
    }))
}

/// One of the caller's cards. Another user's card is a 404, as if it did not exist.
#[utoipa::path(get, path = "/v1/payment-methods/{id}", tag = "payment-methods", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Payment method id")),
    responses(
        (status = 200, description = "The card", body = PaymentMethodBody),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid user token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn payment_methods_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<PaymentMethodBody>, ApiError> {
    match state.store.method(id).await? {
        Some(method) if method.owner == caller.id => Ok(Json(method.into())),
        _ => Err(Problem::not_found(format!("no payment method with id {id}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_body_never_prints_its_number_or_cvc() {
        let body: CardBody = serde_json::from_str(
            r#"{"card_number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2030, "cvc": "987"}"#,
        )
        .unwrap();
        let shown = format!("{body:?} {body:#?}");
        assert!(!shown.contains("4242"), "{shown}");
        assert!(!shown.contains("987"), "{shown}");
        assert!(shown.contains("2030"), "the rest still shows: {shown}");
    }
}
