//! Checkout and after: the address and card form, placing the order once however often it is
//! sent, the order's page (which follows it until it settles) and the purchase history.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use souk_chassis::Path;

use super::{App, form, id, query};
use crate::gateway::{Address, NewCard, Who};
use crate::pages::{
    self, CheckoutForm, CheckoutPage, FieldErrors, HistoryView, OrderPage, PageError, see_other,
};
use crate::session::Shopper;

/// `GET /checkout`: the form, with a fresh idempotency key.
pub(super) async fn page(State(app): State<App>, mut shopper: Shopper) -> Response {
    let result = async {
        let form = CheckoutForm {
            country: "US".into(),
            ..CheckoutForm::default()
        };
        checkout_page(
            &app,
            &mut shopper,
            form,
            None,
            FieldErrors::default(),
            StatusCode::OK,
        )
        .await
    }
    .await;
    shopper.finish(result)
}

async fn checkout_page(
    app: &App,
    shopper: &mut Shopper,
    mut form: CheckoutForm,
    error: Option<String>,
    fields: FieldErrors,
    status: StatusCode,
) -> Result<Response, PageError> {
    let gateway = app.gateway.clone();
    let cart = shopper
        .authorized(app, |who| {
            let gateway = gateway.clone();
            async move { gateway.cart(&who).await }
        })
        .await?;
    if cart.items.is_empty() && error.is_none() {
        return Ok(see_other("/cart"));
    }
    // The card's secrets are never written back into a page.
    form.card_number.clear();
    form.cvc.clear();
    pages::render_with(
        status,
        &CheckoutPage {
            chrome: shopper.chrome(),
            cart,
            key: uuid::Uuid::now_v7().to_string(),
            form,
            error,
            fields,
        },
    )
}

/// `POST /checkout`: registers the card, then places the order with the form's idempotency key,
/// and sends the shopper to the order's page.
pub(super) async fn place(State(app): State<App>, mut shopper: Shopper, body: Bytes) -> Response {
    let result = async {
        let asked: CheckoutForm = form(&shopper, &body)?;
        shopper.return_to = "/checkout".into();
        let key = uuid::Uuid::parse_str(&asked.key)
            .map_err(|_| {
                PageError::BadRequest("This checkout form is incomplete; reload it.".into())
            })?
            .to_string();
        let (card, mut fields) = read_card(&asked);
        let address = read_address(&asked, &mut fields);
        let Some(card) = card.filter(|_| fields.is_empty()) else {
            return invalid(&app, &mut shopper, asked, None, fields).await;
        };
        let method = match payment_method(&app, &mut shopper, &key, &card).await {
            Ok(method) => method,
            Err(Rejection::Fields(fields, detail)) => {
                return invalid(&app, &mut shopper, asked, detail, fields).await;
            }
            Err(Rejection::Page(error)) => return Err(error),
        };
        let gateway = app.gateway.clone();
        let placed = shopper
            .authorized(&app, |who: Who| {
                let (gateway, method, address, key) = (
                    gateway.clone(),
                    method.clone(),
                    address.clone(),
                    key.clone(),
                );
                async move { gateway.place_order(&method, &address, &key, &who).await }
            })
            .await;
        match placed {
            Ok(accepted) => Ok(see_other(&format!("/orders/{}", accepted.id))),
            Err(PageError::Refused { status, detail })
                if status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::CONFLICT =>
            {
                invalid(
                    &app,
                    &mut shopper,
                    asked,
                    Some(detail),
                    FieldErrors::default(),
                )
                .await
            }
            Err(other) => Err(other),
        }
    }
    .await;
    shopper.finish(result)
}

/// Why a card was not registered.
enum Rejection {
    /// The card's fields are wrong (422).
    Fields(FieldErrors, Option<String>),
    /// Anything else.
    Page(PageError),
}

/// The card for this checkout key: registered once, however many times the form arrives.
async fn payment_method(
    app: &App,
    shopper: &mut Shopper,
    key: &str,
    card: &NewCard,
) -> Result<String, Rejection> {
    // Per browser as well as per key: a key seen in another browser names nothing here.
    let remembered = format!("{}:{key}", shopper.browser_id());
    let cell = app
        .cards
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .cell(&remembered);
    let gateway = app.gateway.clone();
    let registered = cell
        .get_or_try_init(|| async {
            shopper
                .authorized(app, |who| {
                    let (gateway, card) = (gateway.clone(), card.clone());
                    async move { gateway.add_card(&card, &who).await.map(|method| method.id) }
                })
                .await
        })
        .await;
    match registered {
        Ok(id) => Ok(id.clone()),
        Err(PageError::Refused { status, detail })
            if status == StatusCode::UNPROCESSABLE_ENTITY =>
        {
            let mut fields = FieldErrors::default();
            fields.push("card_number", detail.clone());
            Err(Rejection::Fields(fields, Some(detail)))
        }
        Err(other) => Err(Rejection::Page(other)),
    }
}

async fn invalid(
    app: &App,
    shopper: &mut Shopper,
    asked: CheckoutForm,
    error: Option<String>,
    fields: FieldErrors,
) -> Result<Response, PageError> {
    let error = error.or_else(|| Some("Please check the fields marked below.".into()));
    checkout_page(
        app,
        shopper,
        asked,
        error,
        fields,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// The card as the API wants it, and what is wrong with the form's card fields.
fn read_card(asked: &CheckoutForm) -> (Option<NewCard>, FieldErrors) {
    let mut fields = FieldErrors::default();
    let number: String = asked
        .card_number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if !(12..=19).contains(&number.len()) || !number.chars().all(|c| c.is_ascii_digit()) {
        fields.push(
            "card_number",
            "Enter the 12 to 19 digits on the front of the card.",
        );
    }
    let month = asked
        .exp_month
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=12).contains(m));
    if month.is_none() {
        fields.push("exp_month", "Enter the expiry month, 1 to 12.");
    }
    let year = asked
        .exp_year
        .trim()
        .parse::<u32>()
        .ok()
        .map(|y| if y < 100 { 2000 + y } else { y });
    if year.is_none() {
        fields.push("exp_year", "Enter the expiry year, e.g. 2031.");
    }
    let cvc = asked.cvc.trim().to_owned();
    if !(3..=4).contains(&cvc.len()) || !cvc.chars().all(|c| c.is_ascii_digit()) {
        fields.push("cvc", "Enter the 3 or 4 digits on the back of the card.");
    }
    let card = match (month, year) {
        (Some(exp_month), Some(exp_year)) => Some(NewCard {
            card_number: number,
            exp_month,
            exp_year,
            cvc,
        }),
        _ => None,
    };
    (card, fields)
}

/// The shipping address, noting empty required fields.
fn read_address(asked: &CheckoutForm, fields: &mut FieldErrors) -> Address {
    let required = [
        ("name", &asked.name, "Enter the recipient's name."),
        ("line1", &asked.line1, "Enter the street address."),
        ("city", &asked.city, "Enter the city."),
        ("postal_code", &asked.postal_code, "Enter the postal code."),
    ];
    for (field, value, message) in required {
        if value.trim().is_empty() {
            fields.push(field, message);
        }
    }
    let country = asked.country.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
        fields.push("country", "Choose a country.");
    }
    let line2 = asked.line2.trim();
    Address {
        name: asked.name.trim().to_owned(),
        line1: asked.line1.trim().to_owned(),
        line2: (!line2.is_empty()).then(|| line2.to_owned()),
        city: asked.city.trim().to_owned(),
        postal_code: asked.postal_code.trim().to_owned(),
        country,
    }
}

/// `GET /orders/{id}`: the order; while it is pending the page reloads itself every second.
pub(super) async fn order(
    State(app): State<App>,
    mut shopper: Shopper,
    Path(raw_id): Path<String>,
) -> Response {
    let result = async {
        let order_id = id(&raw_id)?;
        let gateway = app.gateway.clone();
        let order = shopper
            .authorized(&app, |who| {
                let (gateway, order_id) = (gateway.clone(), order_id.clone());
                async move { gateway.order(&order_id, &who).await }
            })
            .await?;
        pages::render(&OrderPage {
            chrome: shopper.chrome(),
            order,
        })
    }
    .await;
    shopper.finish(result)
}

/// The history page's query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct HistoryQuery {
    cursor: String,
}

/// `GET /orders?cursor=`: the purchase history.
pub(super) async fn history(
    State(app): State<App>,
    mut shopper: Shopper,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = async {
        let asked: HistoryQuery = query(raw.as_deref())?;
        let cursor = (!asked.cursor.is_empty()).then_some(asked.cursor);
        let gateway = app.gateway.clone();
        let page = shopper
            .authorized(&app, |who| {
                let (gateway, cursor) = (gateway.clone(), cursor.clone());
                async move { gateway.history(cursor.as_deref(), &who).await }
            })
            .await
            .map_err(|e| match e {
                PageError::Refused { .. } => PageError::BadRequest(
                    "This history link is out of date. Start again from the first page.".into(),
                ),
                other => other,
            })?;
        pages::render(&HistoryView::new(shopper.chrome(), page))
    }
    .await;
    shopper.finish(result)
}
