//! Issue 16: faults longer than inventory's hold, on the production backends — PostgreSQL for
//! every service, Redis for carts, NATS JetStream for every event — with two orders instances.
//! One after another, while shoppers check out: the bus down longer than the hold, orders (both
//! instances) down longer than the hold while sagas are at the charge step, payments paused past
//! its pending-charge lease, Redis cut away from the cart; then every invariant is checked on the
//! services' PostgreSQL books, the new one (no order confirmed before its stock was committed)
//! included. Timings are shortened so the run takes about two minutes: a 12 s hold, a 4 s
//! deadline, 2 s leases.
//!
//! It runs when `SOUK_TEST_POSTGRES_URL`, `SOUK_TEST_REDIS_URL` and `SOUK_TEST_NATS_URL` are set,
//! on databases and keys of its own and a nats-server of its own (the shared ones untouched).

use super::*;
use crate::helpers::{CuttableProxy, NatsServer};

/// Inventory's hold, shortened: every fault below outlasts it.
const HOLD: Duration = Duration::from_secs(12);
/// A hold outlasted: how long the bus and orders stay down.
const LONGER_THAN_THE_HOLD: Duration = Duration::from_secs(15);
/// Payments' pending-charge lease, shortened; it is paused twice that.
const CHARGE_LEASE: Duration = Duration::from_secs(2);
/// How long Redis is away ("a minute", shortened: far past the cart consumer's two quick tries).
const REDIS_DOWN: Duration = Duration::from_secs(10);
/// The load between two faults.
const BETWEEN_FAULTS: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_faults_on_postgres_and_nats_break_no_invariant() {
    let started = Instant::now();
    let (Ok(server), Ok(redis)) = (
        std::env::var("SOUK_TEST_POSTGRES_URL"),
        std::env::var("SOUK_TEST_REDIS_URL"),
    ) else {
        eprintln!(
            "skipped: SOUK_TEST_POSTGRES_URL and SOUK_TEST_REDIS_URL are not both set, so the long-fault crash harness did not run"
        );
        return;
    };
    let Some(mut nats) = NatsServer::start_if_enabled("the long-fault crash harness").await else {
        return;
    };
    let authority = redis
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap();
    let upstream = tokio::net::lookup_host(authority)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = CuttableProxy::start(upstream).await;
    let backends = Backends {
        server: server.clone(),
        prefix: format!("souk_crash_{}_", std::process::id()),
        redis: redis.clone(),
    };
    let env = long_env(&backends, &proxy, &nats);
    let data_dir = tempfile::tempdir().unwrap();
    let mut shop = start(
        data_dir,
        &["--backend", "postgres", "--instances", "orders=2"],
        &env,
    )
    .await;
    let mut run = Run::prepare(&shop, SEED).await;
    run.place = Some(Place::Postgres {
        server: server.clone(),
        prefix: backends.prefix.clone(),
    });
    let load = run.start_load();
    tokio::time::sleep(BETWEEN_FAULTS).await;
    let mut faults = Vec::new();

    // The bus away longer than a hold: checkout goes on over HTTP (the commit is synchronous),
    // the events wait in the outboxes.
    let at = started.elapsed();
    nats.stop();
    tokio::time::sleep(LONGER_THAN_THE_HOLD).await;
    nats.restart().await;
    faults.push(format!("NATS down {LONGER_THAN_THE_HOLD:?} at {at:.0?}"));
    tokio::time::sleep(BETWEEN_FAULTS).await;

    // Both orders instances killed and kept down longer than a hold: sagas caught at the charge
    // step resume past their deadline.
    let at = started.elapsed();
    shop.hold("orders", true).await;
    for process in shop.processes().await {
        if process["service"] == "orders" {
            signal(
                u32::try_from(process["pid"].as_u64().unwrap()).unwrap(),
                Signal::SIGKILL,
            );
        }
    }
    let charging = backends
        .count("orders", "SELECT COUNT(*) FROM sagas WHERE step = 'charge'")
        .await;
    tokio::time::sleep(LONGER_THAN_THE_HOLD).await;
    shop.hold("orders", false).await;
    all_back(&shop).await;
    faults.push(format!(
        "orders (both instances) SIGKILLed and kept down {LONGER_THAN_THE_HOLD:?} at {at:.0?}, {charging} sagas at the charge step"
    ));
    tokio::time::sleep(BETWEEN_FAULTS).await;

    // Payments paused past its pending-charge lease while charges are inside the processor.
    let at = started.elapsed();
    let payments = shop.pid_of("payments").await;
    signal(payments, Signal::SIGSTOP);
    let pending = backends
        .count(
            "payments",
            "SELECT COUNT(*) FROM payments WHERE status = 'pending'",
        )
        .await;
    tokio::time::sleep(CHARGE_LEASE * 2).await;
    signal(payments, Signal::SIGCONT);
    faults.push(format!(
        "payments SIGSTOPped {:?} at {at:.0?}, {pending} charges pending",
        CHARGE_LEASE * 2
    ));
    tokio::time::sleep(BETWEEN_FAULTS).await;

    // Redis away from the cart: changes fail and are sent again; confirmed orders' events wait.
    let at = started.elapsed();
    proxy.cut();
    tokio::time::sleep(REDIS_DOWN).await;
    proxy.restore();
    faults.push(format!("Redis cut {REDIS_DOWN:?} at {at:.0?}"));
    tokio::time::sleep(BETWEEN_FAULTS).await;

    let outcome = run.finish(&mut shop, load).await;
    println!(
        "crash harness, long faults on PostgreSQL + NATS + Redis, orders ×2 (hold {HOLD:?}): {} faults",
        faults.len()
    );
    for fault in &faults {
        println!("    {fault}");
    }
    outcome.print();
    println!("  runtime {:.0} s", started.elapsed().as_secs_f64());
    let killed = BTreeMap::from([("orders.1".to_owned(), 1), ("orders.2".to_owned(), 1)]);
    assert_eq!(
        outcome.restarts, killed,
        "every restart is one of our kills"
    );
    outcome.assert_clean();
    backends.drop_all().await;
}

/// The servers the run uses, under names of its own.
struct Backends {
    server: String,
    prefix: String,
    redis: String,
}

impl Backends {
    /// `sql`'s one number, on `service`'s database.
    async fn count(&self, service: &str, sql: &'static str) -> i64 {
        let (base, _) = self.server.rsplit_once('/').unwrap();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{base}/{}{service}", self.prefix))
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }

    /// Drops the run's databases and Redis keys (kept when the run failed: the test panics
    /// before this).
    async fn drop_all(&self) {
        for service in [
            "identity",
            "catalog",
            "inventory",
            "cart",
            "payments",
            "orders",
            "history",
        ] {
            let _ = std::process::Command::new("psql")
                .arg(&self.server)
                .args([
                    "-q",
                    "-c",
                    &format!(
                        "DROP DATABASE IF EXISTS {}{service} WITH (FORCE)",
                        self.prefix
                    ),
                ])
                .output();
        }
        let keys = std::process::Command::new("redis-cli")
            .args(["-u", &self.redis, "--scan", "--pattern"])
            .arg(format!("{}cart:*", self.prefix))
            .output();
        if let Ok(keys) = keys {
            for key in String::from_utf8_lossy(&keys.stdout).lines() {
                let _ = std::process::Command::new("redis-cli")
                    .args(["-u", &self.redis, "del", key])
                    .output();
            }
        }
    }
}

/// The shop's environment for this run: the production backends under the run's own names, every
/// event over the run's own NATS, and timings short enough that each fault outlasts a hold.
fn long_env(
    backends: &Backends,
    proxy: &CuttableProxy,
    nats: &NatsServer,
) -> Vec<(String, String)> {
    let hold = HOLD.as_secs().to_string();
    let lease = CHARGE_LEASE.as_millis().to_string();
    let redis = format!("redis://{}", proxy.addr);
    let pairs: Vec<(&str, &str)> = vec![
        ("SOUK_ADMIN_EMAIL", ADMIN.0),
        ("SOUK_ADMIN_PASSWORD", ADMIN.1),
        ("SOUK_POSTGRES_URL", &backends.server),
        ("SOUK_POSTGRES_DATABASE_PREFIX", &backends.prefix),
        ("SOUK_REDIS_URL", &redis),
        // A hold of 12 s, at least twice the deadline plus the lease (souk checks).
        ("SOUK_INVENTORY__RESERVATION_TTL_SECS", &hold),
        ("SOUK_ORDERS__SAGA__DEADLINE_SECS", "4"),
        ("SOUK_ORDERS__SAGA__LEASE_MS", "2000"),
        ("SOUK_ORDERS__SAGA__RETRY_MAX_MS", "500"),
        ("SOUK_ORDERS__SERVICE_TOKEN__IDENTITY__TIMEOUT_MS", "500"),
        ("SOUK_ORDERS__INVENTORY__TIMEOUT_MS", "1000"),
        ("SOUK_ORDERS__PAYMENTS__TIMEOUT_MS", "1000"),
        // Charges spend a while inside the processor, and their lease is short.
        ("SOUK_PAYMENTS__PROCESSOR__LATENCY_MS", "300"),
        ("SOUK_PAYMENTS__HTTP__REQUEST_TIMEOUT_MS", "2000"),
        ("SOUK_PAYMENTS__CHARGE_LEASE_MS", &lease),
        ("SOUK_PAYMENTS__LATE_CAPTURE_SWEEP_MS", "1000"),
        // The cart's consumer gives up after two quick tries: only an outage it waits out
        // instead of parking keeps carts right through Redis's absence.
        ("SOUK_CART__CONSUMERS__MAX_ATTEMPTS", "2"),
        ("SOUK_CART__CONSUMERS__RETRY_MAX_MS", "500"),
    ];
    let mut env: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.extend(nats.shop_env());
    env
}
