//! The catalog, the only source of prices: products looked up by id (`GET /v1/products?ids=…`,
//! at most 100 per call), read for their SKU, name and price. Never cached: an order is priced
//! by the catalog's answer at the moment it is placed.

use std::collections::HashMap;

use serde::Deserialize;
use souk_chassis::client::{ClientError, ServiceClient};
use uuid::Uuid;

use crate::domain::{CatalogProduct, Money};

/// Most ids the catalog answers in one call.
const MAX_IDS: usize = 100;

#[derive(Debug, Deserialize)]
struct ProductPage {
    items: Vec<Product>,
}

#[derive(Debug, Deserialize)]
struct Product {
    id: Uuid,
    sku: String,
    name: String,
    price: Money,
}

/// The catalog service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    client: ServiceClient,
}

impl Catalog {
    /// Calls the catalog through `client`.
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }

    /// What the catalog has of `ids`, by id; ids it does not know are left out.
    pub async fn products(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, CatalogProduct>, ClientError> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_IDS) {
            let list: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
            let path = format!("/v1/products?ids={}", list.join(","));
            let page: ProductPage = self.client.get(&path, None).await?;
            for product in page.items {
                if product.price.amount < 0 {
                    return Err(ClientError::Decode {
                        service: self.client.service().to_owned(),
                        reason: format!("product {} has a negative price", product.id),
                    });
                }
                // Only what was asked for: a catalog answering more must not price other lines.
                if chunk.contains(&product.id) {
                    found.insert(
                        product.id,
                        CatalogProduct {
                            sku: product.sku,
                            name: product.name,
                            price: product.price,
                        },
                    );
                }
            }
        }
        Ok(found)
    }
}
