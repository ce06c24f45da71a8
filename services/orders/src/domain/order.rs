//! Orders and their lines, and pricing: a cart's lines priced by the catalog's answers, which is
//! the only place an order's prices may come from.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Currency, Money, ShippingAddress, Timestamp};

/// Most units of one product in one order (the cart's limit too).
pub const MAX_QUANTITY: i64 = 99;
/// Most lines in one order (the cart's limit, and inventory's).
pub const MAX_LINES: usize = 100;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted; the checkout saga is running.
    Pending,
    /// Stock reserved and payment captured.
    Confirmed,
    /// Given up; whatever was reserved or charged was given back.
    Cancelled,
}

impl OrderStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    /// From storage.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Confirmed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Inventory could not hold every line.
    OutOfStock,
    /// The card was declined.
    PaymentDeclined,
    /// Payments refused the charge, or its processor kept failing until the deadline.
    PaymentFailed,
    /// A step could not be done before the deadline (a service was unreachable, a hold lapsed).
    Timeout,
}

impl CancelReason {
    /// Every reason, for metrics and tests.
    pub const ALL: [Self; 4] = [
        Self::OutOfStock,
        Self::PaymentDeclined,
        Self::PaymentFailed,
        Self::Timeout,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::PaymentDeclined => "payment_declined",
            Self::PaymentFailed => "payment_failed",
            Self::Timeout => "timeout",
        }
    }

    /// From storage.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// One line of an order, priced by the catalog when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderLine {
    /// The catalog's product id.
    pub product_id: Uuid,
    /// The product's SKU.
    pub sku: String,
    /// The product's name when ordered.
    pub name: String,
    /// Units, 1 to 99.
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: i64,
    /// The catalog's price when ordered.
    pub unit_price: Money,
    /// `unit_price` × `quantity`.
    pub line_total: Money,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// UUIDv7.
    pub id: Uuid,
    /// Whose it is.
    pub user_id: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// Why it was cancelled (`cancelled` only).
    pub cancel_reason: Option<CancelReason>,
    /// Its lines, in the cart's order.
    pub lines: Vec<OrderLine>,
    /// The sum of the line totals.
    pub total: Money,
    /// Where it goes.
    pub shipping_address: ShippingAddress,
    /// The card it is paid with (payments' id).
    pub payment_method_id: Uuid,
    /// When it was placed.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
}

/// A line of the caller's cart: a product and how many (never a price).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartLine {
    /// The product.
    pub product_id: Uuid,
    /// How many.
    pub quantity: i64,
}

/// A product as the catalog answered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProduct {
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its price.
    pub price: Money,
}

/// Lines and total, priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    /// The lines, one per product, in the cart's order.
    pub lines: Vec<OrderLine>,
    /// Their sum.
    pub total: Money,
}

/// Why a cart cannot be priced into an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PricingError {
    /// The cart has no lines.
    Empty,
    /// More lines than an order may have.
    TooManyLines,
    /// These products' quantities are out of 1..=99.
    BadQuantity(Vec<Uuid>),
    /// The catalog no longer has these products.
    Missing(Vec<Uuid>),
    /// The lines are priced in more than one currency.
    MixedCurrencies(Vec<Currency>),
    /// The total does not fit in 64 bits of minor units.
    Overflow,
}

/// Prices `cart` from `catalog` (the catalog's answers by product id). A product listed twice
/// is one line with the quantities added.
pub fn price(
    cart: &[CartLine],
    catalog: &HashMap<Uuid, CatalogProduct>,
) -> Result<Priced, PricingError> {
    let merged = merge(cart);
    if merged.is_empty() {
        return Err(PricingError::Empty);
    }
    if merged.len() > MAX_LINES {
        return Err(PricingError::TooManyLines);
    }
    let bad: Vec<Uuid> = merged
        .iter()
        .filter(|l| !(1..=MAX_QUANTITY).contains(&l.quantity))
        .map(|l| l.product_id)
        .collect();
    if !bad.is_empty() {
        return Err(PricingError::BadQuantity(bad));
    }
    let missing: Vec<Uuid> = merged
        .iter()
        .filter(|l| !catalog.contains_key(&l.product_id))
        .map(|l| l.product_id)
        .collect();
    if !missing.is_empty() {
        return Err(PricingError::Missing(missing));
    }
    let mut currencies: Vec<Currency> = Vec::new();
    for line in &merged {
        let currency = &catalog[&line.product_id].price.currency;
        if !currencies.contains(currency) {
            currencies.push(currency.clone());
        }
    }
    let [currency] = currencies.as_slice() else {
        return Err(PricingError::MixedCurrencies(currencies));
    };
    let mut total = Money::zero(currency.clone());
    let mut lines = Vec::with_capacity(merged.len());
    for line in merged {
        let product = &catalog[&line.product_id];
        let line_total = product
            .price
            .times(line.quantity)
            .ok_or(PricingError::Overflow)?;
        total = total.plus(&line_total).ok_or(PricingError::Overflow)?;
        lines.push(OrderLine {
            product_id: line.product_id,
            sku: product.sku.clone(),
            name: product.name.clone(),
            quantity: line.quantity,
            unit_price: product.price.clone(),
            line_total,
        });
    }
    Ok(Priced { lines, total })
}

/// One line per product, in order of first appearance, quantities added (saturating).
fn merge(cart: &[CartLine]) -> Vec<CartLine> {
    let mut merged: Vec<CartLine> = Vec::with_capacity(cart.len());
    for line in cart {
        match merged.iter_mut().find(|m| m.product_id == line.product_id) {
            Some(existing) => existing.quantity = existing.quantity.saturating_add(line.quantity),
            None => merged.push(*line),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn product(amount: i64, currency: &str) -> CatalogProduct {
        CatalogProduct {
            sku: "SKU-1".into(),
            name: "Mug".into(),
            price: Money::new(amount, Currency::parse(currency).unwrap()).unwrap(),
        }
    }

    #[test]
    fn statuses_and_reasons_round_trip_through_storage() {
        for s in [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        for r in CancelReason::ALL {
            assert_eq!(CancelReason::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }

    #[test]
    fn what_cannot_be_priced_is_named() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let catalog = HashMap::from([(a, product(100, "USD")), (b, product(100, "EUR"))]);
        let line = |product_id, quantity| CartLine {
            product_id,
            quantity,
        };
        assert_eq!(price(&[], &catalog), Err(PricingError::Empty));
        let gone = Uuid::now_v7();
        assert_eq!(
            price(&[line(a, 1), line(gone, 1)], &catalog),
            Err(PricingError::Missing(vec![gone]))
        );
        assert!(matches!(
            price(&[line(a, 1), line(b, 1)], &catalog),
            Err(PricingError::MixedCurrencies(c)) if c.len() == 2
        ));
        assert_eq!(
            price(&[line(a, 60), line(a, 40)], &catalog),
            Err(PricingError::BadQuantity(vec![a]))
        );
        let huge = HashMap::from([(a, product(i64::MAX / 2, "USD"))]);
        assert_eq!(price(&[line(a, 3)], &huge), Err(PricingError::Overflow));
    }

    proptest! {
        #[test]
        fn totals_are_the_sum_of_catalog_prices_times_quantities(
            lines in proptest::collection::vec((0usize..8, 1i64..=20, 0i64..100_000), 1..20)
        ) {
            let ids: Vec<Uuid> = (0..8).map(|_| Uuid::now_v7()).collect();
            let mut catalog = HashMap::new();
            let mut cart = Vec::new();
            for &(i, quantity, amount) in &lines {
                catalog.entry(ids[i]).or_insert_with(|| product(amount, "USD"));
                cart.push(CartLine { product_id: ids[i], quantity });
            }
            let priced = price(&cart, &catalog);
            let mut expected = HashMap::<Uuid, i64>::new();
            for line in &cart {
                *expected.entry(line.product_id).or_default() += line.quantity;
            }
            if expected.values().any(|q| *q > MAX_QUANTITY) {
                prop_assert!(matches!(priced, Err(PricingError::BadQuantity(_))));
                return Ok(());
            }
            let priced = priced.unwrap();
            prop_assert_eq!(priced.lines.len(), expected.len());
            let mut sum = 0;
            for line in &priced.lines {
                let unit = catalog[&line.product_id].price.amount;
                prop_assert_eq!(&line.unit_price, &catalog[&line.product_id].price);
                prop_assert_eq!(line.quantity, expected[&line.product_id]);
                prop_assert_eq!(line.line_total.amount, unit * line.quantity);
                sum += line.line_total.amount;
            }
            prop_assert_eq!(priced.total.amount, sum);
        }
    }
}
