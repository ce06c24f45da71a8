//! Step 1 of checkout, before anything is stored: the caller's cart (read with their own token),
//! every line priced by the catalog, and the payment method checked to be the caller's.
//!
//! Prices come from the catalog's answer of this moment only — never from the cart's answer or
//! the client. A cart line the catalog no longer has stops the order; one the cart could not price
//! (`price_unavailable`: the catalog did not answer the cart) is priced here like any other, so a
//! catalog hiccup seen by the cart costs nothing if the catalog answers us.

use souk_chassis::client::ClientError;
use uuid::Uuid;

use crate::clients::{Cart, CartItem, Catalog, Payments};
use crate::domain::order::price;
use crate::domain::{CartLine, Priced, PricingError};

/// Why a cart cannot become an order now.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The cart has no lines.
    #[error("the cart is empty")]
    CartEmpty,
    /// Some lines cannot be ordered as they stand: `(index in the cart, product, cart status)`.
    #[error("some cart lines cannot be ordered")]
    CartNotReady(Vec<(usize, Uuid, String)>),
    /// The lines could not be priced into an order.
    #[error("the cart cannot be priced")]
    Pricing(PricingError),
    /// The payment method is not one of the caller's.
    #[error("payment method {0} is not the caller's")]
    PaymentMethodInvalid(Uuid),
    /// A neighbour could not answer (or answered what orders cannot use): nothing was done.
    #[error("a service orders needs could not answer")]
    Unavailable(#[source] ClientError),
}

/// The services step 1 reads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Checkout {
    cart: Cart,
    catalog: Catalog,
    payments: Payments,
}

impl Checkout {
    /// Step 1 over these neighbours.
    pub fn new(cart: Cart, catalog: Catalog, payments: Payments) -> Self {
        Self {
            cart,
            catalog,
            payments,
        }
    }

    /// The caller's cart priced into order lines, once `payment_method_id` is known to be
    /// theirs. `bearer` is the caller's access token, forwarded to the cart and payments.
    pub async fn price(
        &self,
        bearer: &str,
        payment_method_id: Uuid,
    ) -> Result<Priced, CheckoutError> {
        let items = self
            .cart
            .items(bearer)
            .await
            .map_err(CheckoutError::Unavailable)?;
        let lines = ready_lines(&items)?;
        let mut ids: Vec<Uuid> = Vec::with_capacity(lines.len());
        for line in &lines {
            if !ids.contains(&line.product_id) {
                ids.push(line.product_id);
            }
        }
        let (products, method) = tokio::join!(
            self.catalog.products(&ids),
            self.payments.is_callers_method(bearer, payment_method_id),
        );
        let products = products.map_err(CheckoutError::Unavailable)?;
        let owned = match method {
            Ok(owned) => owned,
            // Payments cannot say right now: take the order anyway rather than refuse checkout
            // while payments is down. Nothing is lost by it: the charge step asks payments
            // again, and a method that is not the caller's is refused there
            // (`payment-method-not-owned`), which cancels the order unpaid.
            Err(err @ ClientError::Unavailable { .. }) => {
                tracing::info!(%err, "payment method unchecked: payments is unavailable; the charge will check it");
                true
            }
            Err(err) => return Err(CheckoutError::Unavailable(err)),
        };
        if !owned {
            return Err(CheckoutError::PaymentMethodInvalid(payment_method_id));
        }
        price(&lines, &products).map_err(CheckoutError::Pricing)
    }
}

/// The cart's lines, unless it is empty or some line is one the catalog no longer has.
fn ready_lines(items: &[CartItem]) -> Result<Vec<CartLine>, CheckoutError> {
    if items.is_empty() {
        return Err(CheckoutError::CartEmpty);
    }
    let not_ready: Vec<(usize, Uuid, String)> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| !matches!(item.status.as_str(), "ok" | "price_unavailable"))
        .map(|(index, item)| (index, item.product_id, item.status.clone()))
        .collect();
    if !not_ready.is_empty() {
        return Err(CheckoutError::CartNotReady(not_ready));
    }
    Ok(items
        .iter()
        .map(|item| CartLine {
            product_id: item.product_id,
            quantity: item.quantity,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(status: &str) -> CartItem {
        CartItem {
            product_id: Uuid::now_v7(),
            quantity: 1,
            status: status.into(),
        }
    }

    #[test]
    fn empty_carts_and_vanished_products_stop_the_order() {
        assert!(matches!(ready_lines(&[]), Err(CheckoutError::CartEmpty)));
        let items = [item("ok"), item("unavailable"), item("price_unavailable")];
        let Err(CheckoutError::CartNotReady(lines)) = ready_lines(&items) else {
            panic!("expected cart-not-ready");
        };
        assert_eq!(lines, vec![(1, items[1].product_id, "unavailable".into())]);
        let fine = ready_lines(&[item("ok"), item("price_unavailable")]).unwrap();
        assert_eq!(fine.len(), 2);
    }
}
