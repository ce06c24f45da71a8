//! Pricing a cart: its stored lines plus what the catalog said about each product, as the
//! shopper sees it. Pure, so the arithmetic is property-tested without a catalog.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Line, Money, Quantity};

/// What the catalog said about one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// It exists, with this name and unit price.
    Found {
        /// Display name.
        name: String,
        /// Unit price.
        price: Money,
    },
    /// The catalog has no such product (any more).
    Missing,
    /// The catalog could not answer.
    Unavailable,
}

/// Whether a line could be priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    /// Priced from the catalog.
    Ok,
    /// The product no longer exists in the catalog; the line stays until the shopper removes it.
    Unavailable,
    /// The catalog could not answer; the line is kept and priced again on the next read.
    PriceUnavailable,
}

/// One line of a priced cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineView {
    /// The catalog's product id.
    pub product_id: Uuid,
    /// The product's name; `null` when the catalog could not say.
    #[schema(required = true)]
    pub name: Option<String>,
    /// How many, 1 to 99.
    pub quantity: Quantity,
    /// The catalog's current unit price; `null` unless `status` is `ok`.
    #[schema(required = true)]
    pub unit_price: Option<Money>,
    /// `unit_price` × `quantity`; `null` unless `status` is `ok`.
    #[schema(required = true)]
    pub line_total: Option<Money>,
    /// Whether the line could be priced.
    pub status: LineStatus,
}

/// A cart as the shopper sees it, priced from the catalog on this read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CartView {
    /// The lines, in the order they were first added.
    pub items: Vec<LineView>,
    /// The sum of the line totals; `null` when the cart is empty, when a line could not be
    /// priced, or when lines are priced in different currencies.
    #[schema(required = true)]
    pub total: Option<Money>,
    /// Parts of the answer that are missing because a dependency failed: `["prices"]` when the
    /// catalog could not answer, else empty.
    #[schema(example = json!([]))]
    pub degraded: Vec<&'static str>,
}

/// Prices `lines` (in order) with what the catalog said; a product it was not asked about counts
/// as unavailable.
pub fn price(lines: &[Line], lookups: &HashMap<Uuid, Lookup>) -> CartView {
    let items: Vec<LineView> = lines
        .iter()
        .map(|line| price_line(line, lookups.get(&line.product_id)))
        .collect();
    let degraded = if items
        .iter()
        .any(|l| l.status == LineStatus::PriceUnavailable)
    {
        vec!["prices"]
    } else {
        Vec::new()
    };
    CartView {
        total: total(&items),
        items,
        degraded,
    }
}

fn price_line(line: &Line, lookup: Option<&Lookup>) -> LineView {
    let (name, unit_price, status) = match lookup {
        Some(Lookup::Found { name, price }) => {
            (Some(name.clone()), Some(price.clone()), LineStatus::Ok)
        }
        Some(Lookup::Missing) => (None, None, LineStatus::Unavailable),
        Some(Lookup::Unavailable) | None => (None, None, LineStatus::PriceUnavailable),
    };
    let line_total = unit_price
        .as_ref()
        .and_then(|p| p.times(line.quantity.get()));
    LineView {
        product_id: line.product_id,
        name,
        quantity: line.quantity,
        // An overflowing line total (absurd prices) is as good as no price.
        status: if unit_price.is_some() && line_total.is_none() {
            LineStatus::PriceUnavailable
        } else {
            status
        },
        unit_price: unit_price.filter(|_| line_total.is_some()),
        line_total,
    }
}

fn total(items: &[LineView]) -> Option<Money> {
    let (first, rest) = items.split_first()?;
    rest.iter()
        .try_fold(first.line_total.clone()?, |sum, line| {
            sum.plus(line.line_total.as_ref()?)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd(amount: i64) -> Money {
        Money {
            amount,
            currency: "USD".into(),
        }
    }

    fn line(quantity: u8) -> Line {
        Line {
            product_id: Uuid::now_v7(),
            quantity: Quantity::new(i64::from(quantity)).unwrap(),
        }
    }

    fn found(price: Money) -> Lookup {
        Lookup::Found {
            name: "thing".into(),
            price,
        }
    }

    proptest! {
        #[test]
        fn the_total_is_the_sum_of_unit_times_quantity(
            lines in proptest::collection::vec((0..1_000_000i64, 1..=99u8), 1..=100)
        ) {
            let stored: Vec<Line> = lines.iter().map(|&(_, q)| line(q)).collect();
            let lookups = stored.iter().zip(&lines)
                .map(|(l, &(amount, _))| (l.product_id, found(usd(amount))))
                .collect();
            let cart = price(&stored, &lookups);
            let expected: i64 = lines.iter().map(|&(a, q)| a * i64::from(q)).sum();
            prop_assert_eq!(cart.total, Some(usd(expected)));
            prop_assert!(cart.degraded.is_empty());
            for (view, &(amount, q)) in cart.items.iter().zip(&lines) {
                prop_assert_eq!(view.line_total.clone(), Some(usd(amount * i64::from(q))));
            }
        }
    }

    #[test]
    fn an_empty_cart_has_no_total() {
        let cart = price(&[], &HashMap::new());
        assert_eq!(cart.total, None);
        assert!(cart.items.is_empty() && cart.degraded.is_empty());
    }

    #[test]
    fn missing_and_unanswered_products_keep_their_lines_without_a_total() {
        let lines = [line(1), line(2), line(3)];
        let lookups = HashMap::from([
            (lines[0].product_id, found(usd(100))),
            (lines[1].product_id, Lookup::Missing),
            (lines[2].product_id, Lookup::Unavailable),
        ]);
        let cart = price(&lines, &lookups);
        let statuses: Vec<_> = cart.items.iter().map(|l| l.status).collect();
        assert_eq!(
            statuses,
            [
                LineStatus::Ok,
                LineStatus::Unavailable,
                LineStatus::PriceUnavailable
            ]
        );
        assert_eq!(cart.total, None);
        assert_eq!(cart.degraded, ["prices"]);
        assert_eq!(cart.items[0].line_total, Some(usd(100)));
    }

    #[test]
    fn mixed_currencies_or_overflow_have_no_total() {
        let lines = [line(1), line(1)];
        let eur = Money {
            amount: 5,
            currency: "EUR".into(),
        };
        let lookups = HashMap::from([
            (lines[0].product_id, found(usd(1))),
            (lines[1].product_id, found(eur)),
        ]);
        assert_eq!(price(&lines, &lookups).total, None);
        let lookups = HashMap::from([
            (lines[0].product_id, found(usd(i64::MAX))),
            (lines[1].product_id, found(usd(1))),
        ]);
        assert_eq!(price(&lines, &lookups).total, None);
    }
}
