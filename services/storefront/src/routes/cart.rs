//! The cart: showing it, adding a product, changing a quantity, removing a line.

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use souk_chassis::Path;

use super::{App, EmptyForm, form, id};
use crate::pages::{self, CartPage, PageError, see_other};
use crate::session::Shopper;

/// Most of one product in a cart (the cart's own limit).
const MAX_QUANTITY: u32 = 99;

/// `GET /cart`.
pub(super) async fn show(State(app): State<App>, mut shopper: Shopper) -> Response {
    let result = async {
        let gateway = app.gateway.clone();
        let cart = shopper
            .authorized(&app, |who| {
                let gateway = gateway.clone();
                async move { gateway.cart(&who).await }
            })
            .await?;
        pages::render(&CartPage {
            chrome: shopper.chrome(),
            cart,
        })
    }
    .await;
    shopper.finish(result)
}

/// The add-to-cart form.
#[derive(Debug, Deserialize)]
pub(super) struct AddForm {
    product_id: String,
    #[serde(default = "one")]
    quantity: String,
}

fn one() -> String {
    "1".into()
}

/// `POST /cart/add`: adds `quantity` to what the cart already holds of the product.
pub(super) async fn add(State(app): State<App>, mut shopper: Shopper, body: Bytes) -> Response {
    let result = async {
        let asked: AddForm = form(&shopper, &body)?;
        let product_id = id(&asked.product_id)?;
        shopper.return_to = format!("/products/{product_id}");
        let quantity = quantity(&asked.quantity)?.max(1);
        let gateway = app.gateway.clone();
        shopper
            .authorized(&app, |who| {
                let (gateway, product_id) = (gateway.clone(), product_id.clone());
                async move {
                    let cart = gateway.cart(&who).await?;
                    let held = cart
                        .items
                        .iter()
                        .find(|line| line.product_id == product_id)
                        .map_or(0, |line| line.quantity);
                    let wanted = (held + quantity).min(MAX_QUANTITY);
                    gateway.set_line(&product_id, wanted, &who).await
                }
            })
            .await?;
        Ok(see_other("/cart"))
    }
    .await;
    shopper.finish(result)
}

/// The quantity form.
#[derive(Debug, Deserialize)]
pub(super) struct QuantityForm {
    quantity: String,
}

/// `POST /cart/items/{id}`: sets a line's quantity (0 removes it).
pub(super) async fn update(
    State(app): State<App>,
    mut shopper: Shopper,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let asked: QuantityForm = form(&shopper, &body)?;
        let product_id = id(&raw_id)?;
        shopper.return_to = "/cart".into();
        let quantity = quantity(&asked.quantity)?;
        let gateway = app.gateway.clone();
        shopper
            .authorized(&app, |who| {
                let (gateway, product_id) = (gateway.clone(), product_id.clone());
                async move { gateway.set_line(&product_id, quantity, &who).await }
            })
            .await?;
        Ok(see_other("/cart"))
    }
    .await;
    shopper.finish(result)
}

/// `POST /cart/items/{id}/remove`.
pub(super) async fn remove(
    State(app): State<App>,
    mut shopper: Shopper,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let _: EmptyForm = form(&shopper, &body)?;
        let product_id = id(&raw_id)?;
        shopper.return_to = "/cart".into();
        let gateway = app.gateway.clone();
        let removed = shopper
            .authorized(&app, |who| {
                let (gateway, product_id) = (gateway.clone(), product_id.clone());
                async move { gateway.remove_line(&product_id, &who).await }
            })
            .await;
        match removed {
            // Already gone (a second click): the cart shows what is left.
            Ok(()) | Err(PageError::NotFound) => Ok(see_other("/cart")),
            Err(other) => Err(other),
        }
    }
    .await;
    shopper.finish(result)
}

/// A quantity as typed: 0–99.
fn quantity(text: &str) -> Result<u32, PageError> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|q| *q <= MAX_QUANTITY)
        .ok_or_else(|| {
            PageError::BadRequest(format!(
                "A quantity is a whole number from 0 to {MAX_QUANTITY}."
            ))
        })
}
