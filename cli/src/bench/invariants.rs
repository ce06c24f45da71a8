//! The checkout saga's invariants, held against the books of a shop on the embedded backend:
//! its services' SQLite files under the data dir, opened read-only.
//!
//! No service reads another's tables; a check of the whole shop must, as the end-to-end crash
//! harness does (cli/tests/e2e/crash/books.rs): the simulated processor's ledger is the only
//! witness of the money that really moved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// One invariant and what broke it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) invariant: &'static str,
    pub(crate) violations: Vec<String>,
}

/// What the books hold.
#[derive(Debug, Default)]
struct Books {
    /// Order → (status, total).
    orders: BTreeMap<String, (String, i64)>,
    /// Order → product → quantity.
    lines: BTreeMap<String, BTreeMap<String, i64>>,
    /// Idempotency key (the order id) → (charge id, outcome, amount).
    charges: BTreeMap<String, (String, String, i64)>,
    refunds: BTreeSet<String>,
    /// Product → (available, reserved, sold, received).
    stock: BTreeMap<String, (i64, i64, i64, i64)>,
}

/// Waits (up to `within`) until no order is pending and no stock is reserved, then checks every
/// invariant. `accepted` are the ids of the orders the load was told were accepted.
pub(crate) async fn check(
    data_dir: &Path,
    accepted: &[String],
    within: Duration,
) -> Result<Vec<Check>, String> {
    let deadline = Instant::now() + within;
    loop {
        let books = Books::read(data_dir).await?;
        let pending = books.orders.values().any(|(status, _)| status == "pending");
        let reserved = books.stock.values().any(|s| s.1 != 0);
        if (!pending && !reserved) || Instant::now() > deadline {
            return Ok(books.check(accepted));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the shop on `data_dir` keeps its books in SQLite files there.
pub(crate) fn readable(data_dir: &Path) -> bool {
    ["orders.db", "payments.db", "inventory.db"]
        .iter()
        .all(|f| data_dir.join(f).is_file())
}

async fn open(path: &Path) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

fn failed(what: &str) -> impl Fn(sqlx::Error) -> String + '_ {
    move |e| format!("cannot read {what}: {e}")
}

impl Books {
    async fn read(dir: &Path) -> Result<Self, String> {
        let mut books = Self::default();
        let orders = open(&dir.join("orders.db")).await?;
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT id, status, total_amount FROM orders")
                .fetch_all(&orders)
                .await
                .map_err(failed("orders"))?;
        books.orders = rows.into_iter().map(|(id, s, t)| (id, (s, t))).collect();
        let lines: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT order_id, product_id, quantity FROM order_lines")
                .fetch_all(&orders)
                .await
                .map_err(failed("order lines"))?;
        for (order, product, quantity) in lines {
            books
                .lines
                .entry(order)
                .or_default()
                .insert(product, quantity);
        }
        orders.close().await;
        let payments = open(&dir.join("payments.db")).await?;
        let charges: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT idempotency_key, charge_id, outcome, amount FROM processor_charges",
        )
        .fetch_all(&payments)
        .await
        .map_err(failed("the processor's charges"))?;
        books.charges = charges
            .into_iter()
            .map(|(k, c, o, a)| (k, (c, o, a)))
            .collect();
        let refunds: Vec<(String,)> = sqlx::query_as("SELECT charge_id FROM processor_refunds")
            .fetch_all(&payments)
            .await
            .map_err(failed("the processor's refunds"))?;
        books.refunds = refunds.into_iter().map(|(c,)| c).collect();
        payments.close().await;
        let inventory = open(&dir.join("inventory.db")).await?;
        let stock: Vec<(String, i64, i64, i64, i64)> =
            sqlx::query_as("SELECT product_id, available, reserved, sold, received FROM stock")
                .fetch_all(&inventory)
                .await
                .map_err(failed("stock"))?;
        books.stock = stock
            .into_iter()
            .map(|(p, a, r, s, n)| (p, (a, r, s, n)))
            .collect();
        inventory.close().await;
        Ok(books)
    }

    fn check(&self, accepted: &[String]) -> Vec<Check> {
        vec![
            Check {
                invariant: "every accepted order ended confirmed or cancelled",
                violations: self.ends(accepted),
            },
            Check {
                invariant: "one capture per confirmed order, none kept for a cancelled one",
                violations: self.money(),
            },
            Check {
                invariant: "stock conserved (received = available + reserved + sold), never negative, sold = confirmed lines, nothing left reserved",
                violations: self.stock(),
            },
        ]
    }

    fn ends(&self, accepted: &[String]) -> Vec<String> {
        let mut v = Vec::new();
        for id in accepted {
            match self.orders.get(id) {
                None => v.push(format!("accepted order {id} is not stored")),
                Some((status, _)) if status == "pending" => {
                    v.push(format!("order {id} is still pending"))
                }
                Some(_) => {}
            }
        }
        v
    }

    fn money(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (id, (status, total)) in &self.orders {
            let approved = self.charges.get(id).filter(|c| c.1 == "approved");
            let kept = approved.filter(|c| !self.refunds.contains(&c.0));
            match status.as_str() {
                "confirmed" => match kept {
                    Some(c) if c.2 == *total => {}
                    _ => v.push(format!(
                        "confirmed order {id} (total {total}): charge {approved:?}, kept {}",
                        kept.is_some()
                    )),
                },
                "cancelled" if kept.is_some() => {
                    v.push(format!("cancelled order {id} kept its charge {kept:?}"))
                }
                _ => {}
            }
        }
        v
    }

    fn stock(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut sold: BTreeMap<&str, i64> = BTreeMap::new();
        for (id, (status, _)) in &self.orders {
            if status == "confirmed" {
                for (product, quantity) in self.lines.get(id).into_iter().flatten() {
                    *sold.entry(product.as_str()).or_default() += quantity;
                }
            }
        }
        for (product, &(available, reserved, sold_here, received)) in &self.stock {
            let parts = [available, reserved, sold_here, received];
            if parts.iter().any(|&n| n < 0) || received != available + reserved + sold_here {
                v.push(format!("stock of {product} does not add up: {parts:?} (available, reserved, sold, received)"));
            }
            if reserved != 0 {
                v.push(format!("{product}: {reserved} units still reserved"));
            }
            let confirmed = sold.get(product.as_str()).copied().unwrap_or(0);
            if sold_here != confirmed {
                v.push(format!(
                    "{product}: inventory sold {sold_here}, confirmed orders bought {confirmed}"
                ));
            }
        }
        v
    }
}
