//! The cart: the caller's lines, read with the caller's own token (`GET /v1/cart`). Only product
//! ids, quantities and each line's status are read — never a name or a price, which come from
//! the catalog.

use serde::Deserialize;
use souk_chassis::client::{ClientError, ServiceClient};
use uuid::Uuid;

/// The cart as orders reads it.
#[derive(Debug, Deserialize)]
struct CartView {
    items: Vec<CartItem>,
}

/// A line of the caller's cart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CartItem {
    /// The product.
    pub product_id: Uuid,
    /// How many.
    pub quantity: i64,
    /// The cart's view of the line: `ok`, `unavailable` (the catalog no longer has it) or
    /// `price_unavailable` (the catalog could not answer the cart).
    pub status: String,
}

/// The cart service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cart {
    client: ServiceClient,
}

impl Cart {
    /// Calls the cart through `client`.
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }

    /// The lines of the cart of the user whose access token is `bearer`.
    pub async fn items(&self, bearer: &str) -> Result<Vec<CartItem>, ClientError> {
        let cart: CartView = self.client.get("/v1/cart", Some(bearer)).await?;
        Ok(cart.items)
    }
}
