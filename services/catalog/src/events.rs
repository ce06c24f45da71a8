//! The events the catalog emits, each written to its outbox in the transaction that makes the
//! change. The catalog owns their data (versioned in the type); consumers read the fields they
//! need (inventory reads `id` and `sku`).
//!
//! | type | when | data |
//! |---|---|---|
//! | `souk.catalog.product_created.v1` | an administrator adds a product | the product: `id`, `sku`, `name`, `description`, `category`, `price`, `image_url` |
//! | `souk.catalog.product_updated.v1` | an administrator replaces a product's fields | the product as it now is |
//! | `souk.catalog.product_deleted.v1` | an administrator removes a product | `id`, `sku` (the one it had) |
//!
//! Money is `{amount, currency}` in minor units; the subject is the product id. The demo catalog,
//! and products stored before the catalog had an outbox, have no `product_created`: consumers
//! learn those from the product list (inventory's reconciliation does).

use serde_json::json;
use souk_chassis::events::Event;
use uuid::Uuid;

use crate::NAME;
use crate::domain::Product;

/// A product was added.
pub const PRODUCT_CREATED: &str = "souk.catalog.product_created.v1";
/// A product's fields were replaced (its SKU among them, perhaps).
pub const PRODUCT_UPDATED: &str = "souk.catalog.product_updated.v1";
/// A product was removed.
pub const PRODUCT_DELETED: &str = "souk.catalog.product_deleted.v1";

/// `product_created` for `product`.
pub fn created(product: &Product) -> Event {
    product_event(PRODUCT_CREATED, product)
}

/// `product_updated` for `product`, as it now is.
pub fn updated(product: &Product) -> Event {
    product_event(PRODUCT_UPDATED, product)
}

/// `product_deleted` for product `id`, which had `sku`.
pub fn deleted(id: Uuid, sku: &str) -> Event {
    Event::new(
        NAME,
        PRODUCT_DELETED,
        id.to_string(),
        json!({ "id": id, "sku": sku }),
    )
}

fn product_event(type_: &str, product: &Product) -> Event {
    // A struct of strings, integers and a UUID always serialises.
    let data = serde_json::to_value(product).unwrap_or_default();
    Event::new(NAME, type_, product.id.to_string(), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, Money};

    #[test]
    fn events_carry_the_product_as_the_api_shows_it() {
        let product = Product {
            id: Uuid::now_v7(),
            sku: "KIT-0001".into(),
            name: "Kettle".into(),
            description: "Boils.".into(),
            category: "kitchen".into(),
            price: Money::price(1999, Currency::parse("USD").unwrap()).unwrap(),
            image_url: "/assets/products/kit-0001.svg".into(),
        };
        let event = created(&product);
        assert_eq!(event.type_, "souk.catalog.product_created.v1");
        assert_eq!(event.source, "souk/catalog");
        assert_eq!(event.subject, product.id.to_string());
        assert_eq!(event.data, serde_json::to_value(&product).unwrap());
        assert_eq!(event.data["price"]["amount"], 1999);
        assert_eq!(updated(&product).type_, PRODUCT_UPDATED);
        let gone = deleted(product.id, "KIT-0001");
        assert_eq!(gone.type_, "souk.catalog.product_deleted.v1");
        assert_eq!(
            gone.data,
            json!({ "id": product.id.to_string(), "sku": "KIT-0001" })
        );
    }
}
