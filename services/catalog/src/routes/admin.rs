//! `/v1/admin/products`: create, replace and delete products. Administrators only (checked by the
//! gateway's route policy, and again here). Stock is inventory's, not the catalog's.

use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use souk_chassis::auth::Caller;
use souk_chassis::{FieldError, Json, Path, Problem};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::domain::{CategorySlug, Currency, Money, Product, Sku};
use crate::store::{ProductInput, WriteError};

/// A product as an administrator writes it. Prices are integer minor units.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProductBody {
    /// 1 to 32 capital letters, digits or dashes; unique.
    #[schema(pattern = r"^[A-Z0-9-]{1,32}$", example = "KIT-0100")]
    sku: String,
    /// 1 to 200 characters (spaces around it are trimmed), in the text rule below.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*[^\s\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069][^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$",
        example = "Enamel mug"
    )]
    name: String,
    /// Up to 4,000 characters: no control characters (newlines included), line or paragraph
    /// separators or bidirectional overrides.
    #[schema(
        max_length = 4000,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$"
    )]
    description: String,
    /// The slug of an existing category.
    #[schema(pattern = r"^[a-z0-9-]{1,64}$", example = "kitchen")]
    category: String,
    price: PriceBody,
}

/// A price.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PriceBody {
    /// Minor units (cents), not negative.
    #[schema(minimum = 0)]
    amount: i64,
    /// An ISO 4217 code.
    #[schema(pattern = r"^[A-Z]{3}$", example = "USD")]
    currency: String,
}

impl ProductBody {
    fn validate(self) -> Result<ProductInput, Problem> {
        let mut errors = Vec::new();
        let mut check = |field: &str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push(FieldError::new(field, message));
            }
        };
        let sku = Sku::parse(&self.sku);
        check("sku", sku.as_ref().map(drop).map_err(Clone::clone));
        let category = CategorySlug::parse(&self.category);
        check(
            "category",
            category.as_ref().map(drop).map_err(Clone::clone),
        );
        let name = self.name.trim().to_owned();
        check("name", text(&name, 1, 200));
        let description = self.description.trim().to_owned();
        check("description", text(&description, 0, 4000));
        let price = Currency::parse(&self.price.currency)
            .and_then(|currency| Money::price(self.price.amount, currency));
        check("price", price.as_ref().map(drop).map_err(Clone::clone));
        match (sku, category, price) {
            (Ok(sku), Ok(category), Ok(price)) if errors.is_empty() => Ok(ProductInput {
                sku,
                name,
                description,
                category,
                price,
            }),
            _ => Err(Problem::validation(errors)),
        }
    }
}

/// The one rule for the catalog's display text (names, descriptions): `min` to `max` characters
/// and nothing that breaks a line of text where other services show or copy it — no control
/// characters (tabs and newlines included), no line or paragraph separators, no bidirectional
/// overrides that would make a name read differently from what it is.
fn text(value: &str, min: usize, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars < min || chars > max {
        return Err(format!("must be {min} to {max} characters"));
    }
    if value.chars().any(breaks_text) {
        return Err(
            "must not contain control characters, line breaks or bidirectional overrides".into(),
        );
    }
    Ok(())
}

fn breaks_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

fn write_problem(err: WriteError) -> ApiError {
    match err {
        WriteError::UnknownCategory => {
            Problem::validation(vec![FieldError::new("category", "no such category")]).into()
        }
        WriteError::SkuTaken => {
            Problem::typed(StatusCode::CONFLICT, "sku-taken", "SKU already used")
                .with_detail("another product has this SKU")
                .into()
        }
        WriteError::NotFound => Problem::not_found("no such product").into(),
        WriteError::Store(err) => err.into(),
    }
}

/// Adds a product.
#[utoipa::path(post, path = "/v1/admin/products", tag = "admin", request_body = ProductBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Product),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The SKU is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn products_create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ProductBody>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    let caller = caller.require_admin()?;
    let product = state
        .store
        .create(&body.validate()?)
        .await
        .map_err(write_problem)?;
    tracing::info!(admin = %caller.id, product = %product.id, "product created");
    Ok((StatusCode::CREATED, Json(product)))
}

/// Replaces a product's fields.
#[utoipa::path(put, path = "/v1/admin/products/{id}", tag = "admin", request_body = ProductBody, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "Updated", body = Product),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The SKU is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn products_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<ProductBody>,
) -> Result<Json<Product>, ApiError> {
    let caller = caller.require_admin()?;
    let product = state
        .store
        .update(id, &body.validate()?)
        .await
        .map_err(write_problem)?;
    tracing::info!(admin = %caller.id, product = %product.id, "product updated");
    Ok(Json(product))
}

/// Removes a product.
#[utoipa::path(delete, path = "/v1/admin/products/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn products_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let caller = caller.require_admin()?;
    if !state.store.delete(id).await? {
        return Err(Problem::not_found("no such product").into());
    }
    tracing::info!(admin = %caller.id, product = %id, "product deleted");
    Ok(StatusCode::NO_CONTENT)
}
