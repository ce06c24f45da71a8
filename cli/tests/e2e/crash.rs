//! Crash safety of checkout: the shop runs as processes under `souk up` while shoppers check out,
//! and payments, orders and inventory die — SIGKILLed at random moments, or aborted at named
//! crash points (`souk_chassis::crash`) at exactly the moment a step has happened in one service
//! and not yet in another. Afterwards the books of every service are read and held to the
//! invariants of DESIGN.md's checkout saga (see `souk::books`); the figures go to the test output.
//!
//! Run alone, with the figures: `cargo test -p souk --test e2e crash -- --nocapture`.
//! `SOUK_CRASH_SEED=<n>` replays another random run.

mod load;
mod long;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Shop, signal};
use load::{Api, Product, Shopper, Tally};
use souk::books::{self, Books, INVARIANTS, Known, Place, Violations};

/// Shoppers checking out at once, each one order at a time (N ≤ 8).
const SHOPPERS: usize = 6;
/// SIGKILLs in the random run, each after the previous victim is back.
const KILLS: usize = 21;
/// The services killed. Orders runs two instances in the random run, so sagas also move between
/// instances as leases lapse; the others run one.
const VICTIMS: [&str; 3] = ["payments", "orders", "inventory"];
/// After a victim is back, the load runs this long (a random share of it) before the next kill.
const BETWEEN_KILLS: Duration = Duration::from_millis(1500);
/// The default seed of the random run's choices (`SOUK_CRASH_SEED` overrides it).
const SEED: u64 = 20_240_707;
/// Units put on sale for each product bought: one runs out at once, so some orders are
/// cancelled out of stock; the others last the run.
const STOCK: [i64; 8] = [250, 250, 200, 200, 150, 150, 100, 3];
/// The crash points armed in the named run, each firing once (`@N`: at its N-th hit in a
/// process). `payments.after-charge-before-record` leaves a pending charge whose lease (30 s)
/// outlives the order's deadline (20 s here), so that order is compensated and refunded — which
/// is how `payments.after-refund-before-record` gets its hit (shoppers pay with the good card
/// until six orders are confirmed, so the third charge is a capture, never a decline).
const NAMED_POINTS: [&str; 11] = [
    "orders.after-place-before-answer@3",
    "orders.after-reserve-before-persist@4",
    "orders.after-charge-before-confirm@5",
    "orders.after-stock-commit-before-confirm@3",
    "orders.after-commit-before-publish@6",
    "orders.after-release-before-persist@2",
    "orders.after-refund-before-persist@1",
    "inventory.after-commit-before-answer@4",
    "inventory.after-event-effect-before-inbox@3",
    "payments.after-charge-before-record@3",
    "payments.after-refund-before-record@1",
];
/// How long the named run's load may take to reach every point.
const NAMED_WITHIN: Duration = Duration::from_secs(100);
/// How long the named run's load goes on once every point has fired and every process is back.
const AFTER_CRASHES: Duration = Duration::from_secs(15);
/// How long accepted orders may take to end once the load stops.
const DRAIN_FOR: Duration = Duration::from_secs(90);
/// How long the consumers may take to catch up after that.
const QUIET_FOR: Duration = Duration::from_secs(60);
/// How long a killed or crashed process may take to be back and ready.
const BACK_WITHIN: Duration = Duration::from_secs(30);

const ADMIN: (&str, &str) = ("root@example.com", "a very long admin passphrase");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_during_checkout_break_no_invariant() {
    let started = Instant::now();
    let seed = std::env::var("SOUK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let data_dir = tempfile::tempdir().unwrap();
    let env = shop_env(&[]);
    let mut shop = start(data_dir, &["--instances", "orders=2"], &env).await;
    let run = Run::prepare(&shop, seed).await;
    let load = run.start_load();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills: BTreeMap<String, u32> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    let killing = Instant::now();
    for _ in 0..KILLS {
        let victims: Vec<Value> = shop
            .processes()
            .await
            .into_iter()
            .filter(|p| VICTIMS.iter().any(|v| p["service"] == *v))
            .collect();
        let victim = &victims[rng.usize(..victims.len())];
        let label = victim["label"].as_str().unwrap().to_owned();
        let back = kill_and_wait(&shop, &label).await;
        slowest = slowest.max(back);
        *kills.entry(label).or_default() += 1;
        let gap = BETWEEN_KILLS.mul_f64(0.1 + 0.9 * rng.f64());
        tokio::time::sleep(gap).await;
    }
    let killing = killing.elapsed();
    let outcome = run.finish(&mut shop, load).await;

    println!(
        "crash harness, random kills (seed {seed}): {} SIGKILLs in {:.0} s, {}; each back and ready within {:.1} s",
        kills.values().sum::<u32>(),
        killing.as_secs_f64(),
        by_count(&kills),
        slowest.as_secs_f64()
    );
    outcome.print();
    println!("  runtime {:.0} s", started.elapsed().as_secs_f64());
    assert_eq!(outcome.restarts, kills, "every restart is one of our kills");
    outcome.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_named_points_break_no_invariant() {
    let started = Instant::now();
    let data_dir = tempfile::tempdir().unwrap();
    let spent = data_dir.path().join("crash-points");
    let points = NAMED_POINTS.join(",");
    let spent_dir = spent.display().to_string();
    let env = shop_env(&[
        (souk_chassis::crash::POINTS_VAR, &points),
        (souk_chassis::crash::SPENT_DIR_VAR, &spent_dir),
    ]);
    let mut shop = start(data_dir, &[], &env).await;
    let run = Run::prepare(&shop, SEED).await;
    let load = run.start_load();

    // Every point fires once, at its moment; the supervisor restarts the process, which finds
    // the point spent and goes on.
    let names: Vec<&str> = NAMED_POINTS
        .iter()
        .map(|p| p.split('@').next().unwrap())
        .collect();
    let deadline = Instant::now() + NAMED_WITHIN;
    let mut fired = BTreeMap::new();
    while fired.len() < names.len() && Instant::now() < deadline {
        for name in &names {
            if spent.join(name).exists() && !fired.contains_key(*name) {
                fired.insert(name.to_string(), started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let crashing = started.elapsed();
    all_back(&shop).await;
    // Recovery under load: the shoppers go on a while against the restarted processes.
    tokio::time::sleep(AFTER_CRASHES).await;
    let outcome = run.finish(&mut shop, load).await;

    println!(
        "crash harness, named crash points: {} of {} fired in {:.0} s",
        fired.len(),
        names.len(),
        crashing.as_secs_f64()
    );
    for name in &names {
        match fired.get(*name) {
            Some(at) => println!("    {name}: fired at {:.1} s", at.as_secs_f64()),
            None => println!("    {name}: NOT reached"),
        }
    }
    outcome.print();
    println!("  runtime {:.0} s", started.elapsed().as_secs_f64());
    let crashes_per_service = names.iter().filter(|n| fired.contains_key(**n)).fold(
        BTreeMap::new(),
        |mut m: BTreeMap<String, u32>, n| {
            *m.entry(format!("{}.1", n.split('.').next().unwrap()))
                .or_default() += 1;
            m
        },
    );
    assert_eq!(
        fired.len(),
        names.len(),
        "every armed point fired (SOUK_CRASH_POINTS reached the services)"
    );
    assert_eq!(
        outcome.restarts, crashes_per_service,
        "each point crashed its process once, and nothing else did"
    );
    outcome.assert_clean();
}

/// The environment of the shops under test: an administrator, and saga timings shortened so a
/// run takes a couple of minutes (a 20 s deadline, retries at most 1 s apart, 5 s leases).
fn shop_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("SOUK_ADMIN_EMAIL", ADMIN.0),
        ("SOUK_ADMIN_PASSWORD", ADMIN.1),
        ("SOUK_ORDERS__SAGA__DEADLINE_SECS", "20"),
        ("SOUK_ORDERS__SAGA__RETRY_MAX_MS", "1000"),
        ("SOUK_ORDERS__SAGA__LEASE_MS", "5000"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.sort();
    env
}

async fn start(data_dir: tempfile::TempDir, extra: &[&str], env: &[(String, String)]) -> Shop {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Shop::start_in(data_dir, "up", extra, &env).await
}

/// SIGKILLs the process `label` (by its pid, one `souk up` started), then waits until the
/// supervisor has started it again and it answers `/readyz`. How long it was gone.
async fn kill_and_wait(shop: &Shop, label: &str) -> Duration {
    let before = process(shop, label).await;
    let pid = before["pid"].as_u64().unwrap();
    assert_ne!(pid, 0, "{label} is not running");
    signal(u32::try_from(pid).unwrap(), Signal::SIGKILL);
    let killed = Instant::now();
    while killed.elapsed() < BACK_WITHIN {
        let now = process(shop, label).await["pid"].as_u64().unwrap();
        if now != 0 && now != pid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ready(shop, &before, killed + BACK_WITHIN).await;
    killed.elapsed()
}

/// Waits until every process runs and answers `/readyz`.
async fn all_back(shop: &Shop) {
    let deadline = Instant::now() + BACK_WITHIN;
    loop {
        let processes = shop.processes().await;
        if processes.iter().all(|p| p["pid"] != 0) {
            for p in &processes {
                ready(shop, p, deadline).await;
            }
            return;
        }
        assert!(Instant::now() < deadline, "not all back: {processes:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ready(shop: &Shop, process: &Value, deadline: Instant) {
    let url = if process["service"] == "gateway" {
        format!("http://{}/readyz", shop.admin)
    } else {
        format!("http://{}/readyz", process["addr"].as_str().unwrap())
    };
    loop {
        let answer = shop.client.get(&url).send().await;
        if answer.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not ready again",
            process["label"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn process(shop: &Shop, label: &str) -> Value {
    shop.processes()
        .await
        .into_iter()
        .find(|p| p["label"] == label)
        .unwrap_or_else(|| panic!("no process {label}"))
}

/// A run's shoppers, products and what they are told.
struct Run {
    api: Api,
    shoppers: Vec<Shopper>,
    products: Vec<Product>,
    seed: u64,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    /// Where the shop keeps its books, when not in its data dir's SQLite files.
    place: Option<Place>,
}

impl Run {
    /// Puts [`STOCK`] on sale for a few products and signs up the shoppers.
    async fn prepare(shop: &Shop, seed: u64) -> Run {
        let api = Api::new(shop.client.clone(), format!("http://{}", shop.gateway));
        let identity = process(shop, "identity.1").await;
        let identity = Api::new(
            shop.client.clone(),
            format!("http://{}", identity["addr"].as_str().unwrap()),
        );
        let products = stock_products(&api, &identity).await;
        let (gateway, direct) = (&api, &identity);
        let shoppers = futures::future::join_all((1..=SHOPPERS).map(|n| async move {
            Shopper::sign_up(gateway, direct, &format!("shopper{n}")).await
        }))
        .await;
        Run {
            api,
            shoppers,
            products,
            seed,
            stop: Arc::new(AtomicBool::new(false)),
            tally: Arc::new(Mutex::new(Tally::default())),
            place: None,
        }
    }

    fn start_load(&self) -> Vec<tokio::task::JoinHandle<()>> {
        load::spawn(
            &self.api,
            &self.shoppers,
            &self.products,
            self.seed,
            &self.stop,
            &self.tally,
        )
    }

    /// Stops the load, waits for every order to end and every consumer to catch up, reads the
    /// books, stops the shop and checks the invariants.
    async fn finish(&self, shop: &mut Shop, load: Vec<tokio::task::JoinHandle<()>>) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        for shopper in load {
            tokio::time::timeout(Duration::from_secs(60), shopper)
                .await
                .expect("a shopper did not stop within 60 s")
                .unwrap();
        }
        let drain = Instant::now();
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        let seen = self.drain(&tally).await;
        let place = self
            .place
            .clone()
            .unwrap_or_else(|| Place::Sqlite(shop.data_dir.path().to_owned()));
        let books = quiet_books(&place).await;
        let carts_not_emptied = self.carts_not_emptied(&tally).await;
        let drained = drain.elapsed();
        let restarts = shop
            .processes()
            .await
            .iter()
            .filter(|p| p["restarts"].as_u64().unwrap() > 0)
            .map(|p| {
                let restarts = u32::try_from(p["restarts"].as_u64().unwrap()).unwrap();
                (p["label"].as_str().unwrap().to_owned(), restarts)
            })
            .collect();
        let (status, _) = shop.stop();
        assert!(status.success(), "souk up stopped with {status}");
        let users: Vec<String> = self.shoppers.iter().map(|s| s.user_id.clone()).collect();
        let placed: Vec<books::Placed> = tally
            .placed
            .iter()
            .map(|p| books::Placed {
                key: p.key.clone(),
                id: p.id.clone(),
                lines: p.lines.clone(),
            })
            .collect();
        let known = Known {
            placed: &placed,
            users: &users,
            products: &self.products,
            refused: &tally.refused,
            seen: &seen,
            carts_not_emptied: &carts_not_emptied,
        };
        let violations = books::check(&books, &known);
        if violations.iter().any(|v| !v.is_empty()) || !tally.retired.is_empty() {
            // Kept for a post-mortem: every database, and every process's log under logs/.
            let dir = std::mem::replace(&mut shop.data_dir, tempfile::tempdir().unwrap());
            println!(
                "  the shop's data and logs are kept in {}",
                dir.keep().display()
            );
        }
        Outcome {
            tally,
            books,
            violations,
            restarts,
            drained,
        }
    }

    /// Waits until every accepted order has ended, as its owner reads it through the gateway;
    /// each order's last status read.
    async fn drain(&self, tally: &Tally) -> BTreeMap<String, String> {
        let deadline = Instant::now() + DRAIN_FOR;
        let mut seen = BTreeMap::new();
        for placed in &tally.placed {
            let token = &self.shoppers[placed.shopper].token;
            let path = format!("/api/v1/orders/{}", placed.id);
            loop {
                let answer = self
                    .api
                    .send(Method::GET, &path, Some(token), None, None)
                    .await;
                let status = match &answer {
                    Ok((200, order)) => order["status"].as_str().unwrap_or("?").to_owned(),
                    _ => "unreadable".to_owned(),
                };
                let ended = status == "confirmed" || status == "cancelled";
                if ended || Instant::now() > deadline {
                    seen.insert(placed.id.clone(), status);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        seen
    }

    /// The orders whose products are still in the cart of the shopper who last saw them
    /// confirmed (after the drain, every consumer has caught up).
    async fn carts_not_emptied(&self, tally: &Tally) -> Vec<String> {
        let mut left = Vec::new();
        for (index, placed) in &tally.last_confirmed {
            let token = &self.shoppers[*index].token;
            let (answer, _) = self
                .api
                .persist(
                    Method::GET,
                    "/api/v1/cart",
                    Some(token),
                    None,
                    None,
                    BACK_WITHIN,
                )
                .await;
            let cart = answer.map(|(_, cart)| cart).unwrap_or(Value::Null);
            if load::holds_any(&cart, placed.lines.keys()) {
                left.push(format!(
                    "confirmed order {} left its products in the cart: {cart}",
                    placed.id
                ));
            }
        }
        left
    }
}

/// Reads the books until nothing is left moving (every order ended, every event consumed), for
/// at most [`QUIET_FOR`]; the last reading.
async fn quiet_books(place: &Place) -> Books {
    let deadline = Instant::now() + QUIET_FOR;
    loop {
        let books = Books::read(place).await.unwrap();
        if books.quiet() || Instant::now() > deadline {
            return books;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Finds products, waits until inventory knows them, and puts [`STOCK`] on sale.
async fn stock_products(api: &Api, identity: &Api) -> Vec<Product> {
    let login = json!({ "email": ADMIN.0, "password": ADMIN.1 });
    let (answer, _) = identity
        .persist(
            Method::POST,
            "/v1/auth/login",
            None,
            None,
            Some(&login),
            BACK_WITHIN,
        )
        .await;
    let admin = answer.unwrap().1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (answer, _) = api
        .persist(
            Method::GET,
            "/api/v1/products?limit=20",
            None,
            None,
            None,
            BACK_WITHIN,
        )
        .await;
    let page = answer.unwrap().1;
    let mut products = Vec::new();
    for (item, stock) in page["items"].as_array().unwrap().iter().skip(3).zip(STOCK) {
        let product = Product {
            id: item["id"].as_str().unwrap().to_owned(),
            sku: item["sku"].as_str().unwrap().to_owned(),
            stock,
        };
        // A ready shop's inventory knows them; an answer that fails is tried again all the same.
        // The count is set from the version read.
        let path = format!("/api/v1/admin/stock/{}", product.sku);
        let body = json!({ "quantity": stock });
        let deadline = Instant::now() + BACK_WITHIN;
        loop {
            let answer = match api.send(Method::GET, &path, Some(&admin), None, None).await {
                Ok((200, read)) => {
                    let version = format!("\"{}\"", read["version"]);
                    api.send_with(
                        Method::PUT,
                        &path,
                        Some(&admin),
                        &[("if-match", &version)],
                        Some(&body),
                    )
                    .await
                }
                other => other,
            };
            if matches!(answer, Ok((200, _))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "stock of {}: {answer:?}",
                product.sku
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        products.push(product);
    }
    products
}

/// What a run came to.
struct Outcome {
    tally: Tally,
    books: Books,
    violations: Violations,
    /// Restarts per process label, from the supervisor.
    restarts: BTreeMap<String, u32>,
    drained: Duration,
}

impl Outcome {
    fn print(&self) {
        let t = &self.tally;
        let b = &self.books;
        println!(
            "  checkouts {}: {} accepted, {} refused {:?}; sent again under the same key {} times; abandoned {}",
            t.checkouts,
            t.placed.len(),
            t.refused.values().sum::<u32>(),
            t.refused,
            t.resent,
            t.abandoned
        );
        let mut cards: BTreeMap<String, u32> = BTreeMap::new();
        for placed in &t.placed {
            *cards.entry(format!("{:?}", placed.card)).or_default() += 1;
        }
        println!("  accepted orders by card: {}", by_count(&cards));
        let mut ends: BTreeMap<String, u32> = BTreeMap::new();
        for order in b.orders.values() {
            let end = match &order.cancel_reason {
                Some(reason) => format!("cancelled {reason}"),
                None => order.status.clone(),
            };
            *ends.entry(end).or_default() += 1;
        }
        let unacknowledged = b.orders.len() - t.placed.len().min(b.orders.len());
        println!(
            "  orders stored {} ({} never acknowledged to a shopper): {}",
            b.orders.len(),
            unacknowledged,
            by_count(&ends)
        );
        let approved = b
            .charges
            .values()
            .filter(|c| c.outcome == "approved")
            .count();
        println!(
            "  processor: {} charges asked ({} approved), {} refunded; stock sold {:?}",
            b.charges.len(),
            approved,
            b.processor_refunds.len(),
            b.stock
                .iter()
                .filter(|(_, s)| s.sold > 0)
                .map(|(_, s)| s.sold)
                .collect::<Vec<_>>()
        );
        println!(
            "  events: orders {}, payments {}; drained and consumed in {:.1} s",
            b.order_events.len(),
            b.payment_events.len(),
            self.drained.as_secs_f64()
        );
        if !t.retired.is_empty() {
            println!("  shoppers who stopped early: {:?}", t.retired);
        }
        println!("  restarts by the supervisor: {}", by_count(&self.restarts));
        println!(
            "  violations: {}",
            self.violations.iter().map(Vec::len).sum::<usize>()
        );
        for (name, found) in INVARIANTS.iter().zip(&self.violations) {
            println!("    {:>3}  {name}", found.len());
            for v in found.iter().take(10) {
                println!("           {v}");
            }
        }
    }

    fn assert_clean(&self) {
        assert!(
            !self.books.orders.is_empty() && !self.tally.placed.is_empty(),
            "no order was placed"
        );
        let total: usize = self.violations.iter().map(Vec::len).sum();
        assert_eq!(
            total, 0,
            "violations of the checkout saga's invariants: see above"
        );
        assert!(
            self.tally.retired.is_empty(),
            "shoppers stopped early: {:?}",
            self.tally.retired
        );
    }
}

fn by_count(counts: &BTreeMap<String, u32>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
