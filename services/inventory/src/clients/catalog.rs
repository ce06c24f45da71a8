//! The catalog, as inventory reads it: pages of `{id, sku}` from `GET /v1/products`, one product
//! from `GET /v1/products/{id}`, and (through the chassis consumer) its product events.
//!
//! Only the fields read here are declared; the catalog may add others freely.

use serde::Deserialize;
use souk_chassis::client::{ClientError, ServiceClient};
use uuid::Uuid;

/// Products asked for per page (the catalog's maximum).
pub const PAGE_SIZE: u32 = 100;

/// A product as inventory needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatalogProduct {
    /// The catalog's id.
    pub id: Uuid,
    /// Its SKU.
    pub sku: String,
}

/// One page of the catalog's product list.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductPage {
    /// The products.
    pub items: Vec<CatalogProduct>,
    /// Where the next page starts; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Reads the catalog's product list.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    client: ServiceClient,
}

impl CatalogClient {
    /// Reads through `client` (HTTP, or the catalog's router in this process).
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }

    /// The client it reads through (its service name is the producer of the product events).
    pub fn client(&self) -> &ServiceClient {
        &self.client
    }

    /// Product `id` as the catalog has it now; `None` when the catalog has no such product.
    pub async fn product(&self, id: Uuid) -> Result<Option<CatalogProduct>, ClientError> {
        match self.client.get(&format!("/v1/products/{id}"), None).await {
            Ok(product) => Ok(Some(product)),
            Err(err) if err.status() == Some(http::StatusCode::NOT_FOUND) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The page after `cursor` (the first page for `None`).
    pub async fn products(&self, cursor: Option<&str>) -> Result<ProductPage, ClientError> {
        let mut path = format!("/v1/products?limit={PAGE_SIZE}");
        if let Some(cursor) = cursor {
            path.push_str("&cursor=");
            path.push_str(&percent_encode(cursor));
        }
        self.client.get(&path, None).await
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters. The catalog's cursors are
/// base64url and pass unchanged; anything else still makes a valid query string.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_encoded_for_the_query_string() {
        assert_eq!(percent_encode("eyJhIjoxfQ-_"), "eyJhIjoxfQ-_");
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn pages_read_only_the_fields_inventory_needs() {
        let page: ProductPage = serde_json::from_str(
            r#"{"items":[{"id":"0190b3a0-0000-7000-8000-000000000001","sku":"KIT-0001","name":"Kettle","price":{"amount":1,"currency":"USD"}}],"next_cursor":null}"#,
        )
        .unwrap();
        assert_eq!(page.items[0].sku, "KIT-0001");
        assert!(page.next_cursor.is_none());
    }
}
