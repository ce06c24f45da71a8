//! The event bus as an attacker meets it: the NATS users of the deployments (Compose's
//! deploy/nats/souk-users.conf and Kubernetes' deploy/k8s/prerequisites/nats-values.yaml), each
//! loaded into a private `nats-server` started for the test, with the chassis relay and
//! consumers connecting as the services do. A compromised pod holding one service's credentials
//! tries to publish a forged `order_cancelled` for a live order (its stock would be released
//! while its card is charged), to read a stream it does not consume, and to read everyone's
//! replies; nobody connects without a password. Every attempt must fail, and the services' own
//! traffic must go through.

// Test helpers outside #[test] functions: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use souk_chassis::Secret;
use souk_chassis::events::{
    Consumer, Event, HandleError, Handler, NatsConfig, Outbox, Source, append_sqlite,
};
use souk_chassis::server::Shutdown;
use souk_chassis::test_util::{Backend, TestDatabase};

const SERVICES: [&str; 6] = [
    "orders",
    "payments",
    "catalog",
    "inventory",
    "cart",
    "history",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The password each service has in the test (`SOUK_NATS_<SERVICE>_PASSWORD`).
fn password(service: &str) -> String {
    format!("{service}-password-for-the-test")
}

/// The `nats-server` binary: `SOUK_TEST_NATS_SERVER`, else Debian's, else one on `PATH`.
fn nats_server() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("SOUK_TEST_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let debian = PathBuf::from("/usr/sbin/nats-server");
    if debian.exists() {
        return Some(debian);
    }
    Command::new("nats-server")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("nats-server"))
}

/// A nats-server of the test's own, on a free port, killed (by its pid) when dropped; its log
/// is shown when the test fails.
struct PrivateNats {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default();
            eprintln!("nats-server's log:\n{log}");
        }
    }
}

/// Starts `server` with `accounts` (the body of an `accounts { … }` block) and JetStream.
fn start(server: &Path, accounts: &str) -> PrivateNats {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\naccounts {{\n{accounts}\n}}\n",
        dir.path().join("js").display()
    );
    let file = dir.path().join("nats.conf");
    std::fs::write(&file, config).unwrap();
    // Includes are relative to the including file: the shipped users sit beside it.
    std::fs::copy(
        workspace_root().join("deploy/nats/souk-users.conf"),
        dir.path().join("souk-users.conf"),
    )
    .unwrap();
    let mut command = Command::new(server);
    command
        .arg("-c")
        .arg(&file)
        .arg("-l")
        .arg(dir.path().join("nats.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for service in SERVICES {
        command.env(
            format!("SOUK_NATS_{}_PASSWORD", service.to_uppercase()),
            password(service),
        );
    }
    let child = command.spawn().expect("nats-server starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    PrivateNats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        dir,
    }
}

/// How `service` connects (what its deployment's environment gives it).
fn config_of(nats: &PrivateNats, service: &str) -> NatsConfig {
    NatsConfig {
        user: service.to_owned(),
        password: Secret::new(password(service)),
        request_timeout_ms: 2_000,
        ..NatsConfig::with_url(&nats.url)
    }
}

/// A JetStream context connected as `service`, the way a compromised pod of it would.
async fn connect_as(nats: &PrivateNats, service: &str) -> async_nats::jetstream::Context {
    let client =
        async_nats::ConnectOptions::with_user_and_password(service.to_owned(), password(service))
            .custom_inbox_prefix(format!("_INBOX_{service}"))
            .connect(nats.url.as_str())
            .await
            .expect("the service's own credentials connect");
    let mut context = async_nats::jetstream::new(client);
    context.set_timeout(Duration::from_secs(2));
    context
}

/// Events a consumer was handed.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Event>>>);

impl Handler for Seen {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

impl Seen {
    fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id.clone())
            .collect()
    }
}

/// A SQLite database with an outbox and a consumer's tables.
async fn database() -> (TestDatabase, souk_chassis::Database) {
    let test = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let db = souk_chassis::Database::connect(&test.config).await.unwrap();
    db.migrate(&souk_chassis::db::Migrations {
        sqlite: &[
            souk_chassis::events::OUTBOX_MIGRATION_SQLITE,
            souk_chassis::events::INBOX_MIGRATION_SQLITE,
            souk_chassis::events::OUTBOX_META_MIGRATION_SQLITE,
            souk_chassis::events::INBOX_RETENTION_MIGRATION_SQLITE,
        ],
        postgres: &[],
    })
    .await
    .unwrap();
    (test, db)
}

async fn append(db: &souk_chassis::Database, event: &Event) {
    let souk_chassis::Database::Sqlite(pool) = db else {
        unreachable!("a SQLite test database")
    };
    let mut tx = pool.begin().await.unwrap();
    append_sqlite(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Messages in `stream`, read with `reader`'s credentials (which may read it).
async fn stored(reader: &async_nats::jetstream::Context, stream: &str) -> u64 {
    let mut stream = reader.get_stream(stream).await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// Performs every attack against a server holding the shop's users, and checks that the
/// services' own traffic flows.
async fn the_bus_refuses_every_attack(nats: &PrivateNats) {
    let (_orders_db_file, orders_db) = database().await;
    let (_payments_db_file, payments_db) = database().await;
    let (_consumers_db_file, consumers_db) = database().await;
    let (trigger, shutdown) = Shutdown::manual(Duration::from_secs(5));

    // The producers relay their outboxes as themselves.
    let orders = Outbox::new(orders_db.clone(), "orders");
    let payments = Outbox::new(payments_db.clone(), "payments");
    let order = uuid::Uuid::now_v7().to_string();
    let placed = Event::new(
        "orders",
        "souk.orders.order_placed.v1",
        order.clone(),
        json!({ "order_id": order }),
    );
    append(&orders_db, &placed).await;
    let captured = Event::new(
        "payments",
        "souk.payments.payment_captured.v1",
        order.clone(),
        json!({ "order_id": order }),
    );
    append(&payments_db, &captured).await;
    let relays = [
        orders.spawn_relay(config_of(nats, "orders"), shutdown.clone()),
        payments.spawn_relay(config_of(nats, "payments"), shutdown.clone()),
    ];

    // The consumers read what they consume, as themselves.
    let inventory = Seen::default();
    let history = Seen::default();
    let consumers = [
        Consumer::new(
            "inventory.orders",
            "orders",
            Source::Nats(config_of(nats, "inventory")),
            consumers_db.clone(),
        )
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .spawn(inventory.clone(), shutdown.clone()),
        Consumer::new(
            "history.payments",
            "payments",
            Source::Nats(config_of(nats, "history")),
            consumers_db.clone(),
        )
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .spawn(history.clone(), shutdown.clone()),
    ];
    eventually("inventory reads orders' events", || {
        inventory.ids() == [placed.id.clone()]
    })
    .await;
    eventually("history reads payments' events", || {
        history.ids() == [captured.id.clone()]
    })
    .await;

    // A pod with inventory's credentials forges orders' `order_cancelled` for the live order:
    // through JetStream, and as a plain publish.
    let orders_reader = connect_as(nats, "history").await;
    let before = stored(&orders_reader, "SOUK_ORDERS").await;
    let forged = Event::new(
        "orders",
        "souk.orders.order_cancelled.v1",
        order.clone(),
        json!({ "order_id": order, "reason": "payment_declined" }),
    );
    let payload = serde_json::to_vec(&forged).unwrap();
    for attacker in ["inventory", "cart", "history", "payments"] {
        let context = connect_as(nats, attacker).await;
        let published = context
            .publish("souk.orders.order_cancelled.v1", payload.clone().into())
            .await;
        let acknowledged = match published {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!acknowledged, "{attacker} published into orders' stream");
        let client = async_nats::ConnectOptions::with_user_and_password(
            attacker.to_owned(),
            password(attacker),
        )
        .connect(nats.url.as_str())
        .await
        .unwrap();
        let _ = client
            .publish("souk.orders.order_cancelled.v1", payload.clone().into())
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    }
    // Nor may anyone but orders delete or purge its stream or its messages.
    for attacker in ["inventory", "history"] {
        let context = connect_as(nats, attacker).await;
        assert!(
            context.delete_stream("SOUK_ORDERS").await.is_err(),
            "{attacker} deleted orders' stream"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stored(&orders_reader, "SOUK_ORDERS").await,
        before,
        "nothing forged was stored"
    );
    assert_eq!(
        inventory.ids(),
        std::slice::from_ref(&placed.id),
        "inventory handled nothing forged"
    );

    // A pod with inventory's credentials tries to read payments' events (it consumes only
    // orders'): no consumer on that stream, and no plain subscription sees them.
    let inventory_context = connect_as(nats, "inventory").await;
    let payments_stream = inventory_context.get_stream("SOUK_PAYMENTS").await;
    assert!(
        payments_stream.is_err(),
        "inventory could look at payments' stream"
    );
    let snoop_client = async_nats::ConnectOptions::with_user_and_password(
        "inventory".into(),
        password("inventory"),
    )
    .connect(nats.url.as_str())
    .await
    .unwrap();
    let mut snoops = Vec::new();
    for subject in [
        "souk.payments.>",
        "souk.orders.>",
        "_INBOX.>",
        "_INBOX_history.>",
        "$JS.ACK.>",
        ">",
    ] {
        if let Ok(subscriber) = snoop_client.subscribe(subject).await {
            snoops.push(subscriber);
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), snoop_client.flush()).await;
    let refund = Event::new(
        "payments",
        "souk.payments.payment_refunded.v1",
        order.clone(),
        json!({ "order_id": order }),
    );
    append(&payments_db, &refund).await;
    payments.notify();
    eventually("history reads the next payment event", || {
        history.ids().len() == 2
    })
    .await;
    for mut subscriber in snoops {
        let got = tokio::time::timeout(
            Duration::from_millis(300),
            futures::StreamExt::next(&mut subscriber),
        )
        .await;
        assert!(
            !matches!(got, Ok(Some(_))),
            "inventory read a message it may not: {got:?}"
        );
    }

    // Nobody connects without a password, or with another service's.
    let anonymous = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(1))
        .connect(nats.url.as_str());
    let anonymous = tokio::time::timeout(Duration::from_secs(3), anonymous).await;
    assert!(
        !matches!(anonymous, Ok(Ok(_))),
        "connected without credentials"
    );
    let wrong =
        async_nats::ConnectOptions::with_user_and_password("orders".into(), password("history"))
            .connect(nats.url.as_str())
            .await;
    assert!(
        wrong.is_err(),
        "connected as orders with history's password"
    );

    trigger.trigger();
    for task in relays.into_iter().chain(consumers) {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
}

/// The users of deploy/nats/souk-users.conf, as Compose's nats.conf includes them.
fn compose_accounts() -> String {
    "SOUK {\n jetstream: enabled\n include souk-users.conf\n}".to_owned()
}

/// The `accounts` of the Kubernetes values, as JSON (NATS reads JSON), the chart's
/// `<< $VAR >>` written as the bare variable the chart renders.
fn kubernetes_accounts() -> (String, Value) {
    let text =
        std::fs::read_to_string(workspace_root().join("deploy/k8s/prerequisites/nats-values.yaml"))
            .unwrap();
    let values: Value = serde_norway::from_str(&text).unwrap();
    let accounts = values["config"]["merge"]["accounts"].clone();
    let json = accounts.to_string();
    let mut rendered = json.clone();
    for service in SERVICES {
        let var = format!("SOUK_NATS_{}_PASSWORD", service.to_uppercase());
        rendered = rendered.replace(&format!("\"<< ${var} >>\""), &format!("${var}"));
    }
    let inner = rendered
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap()
        .to_owned();
    (inner, accounts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_bus_of_both_deployments_refuses_a_compromised_pod() {
    let Some(server) = nats_server() else {
        eprintln!(
            "skipped: no nats-server (install Debian's nats-server, or name it in SOUK_TEST_NATS_SERVER)"
        );
        return;
    };
    // Compose's nats.conf is one the server accepts, its users beside it as compose.yaml mounts
    // them (/etc/nats).
    let etc = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("deploy/compose/nats.conf", "nats.conf"),
        ("deploy/nats/souk-users.conf", "souk-users.conf"),
    ] {
        std::fs::copy(workspace_root().join(from), etc.path().join(to)).unwrap();
    }
    let check = Command::new(&server)
        .arg("-c")
        .arg(etc.path().join("nats.conf"))
        .arg("-t")
        .envs(SERVICES.map(|s| {
            (
                format!("SOUK_NATS_{}_PASSWORD", s.to_uppercase()),
                password(s),
            )
        }))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let compose = start(&server, &compose_accounts());
    the_bus_refuses_every_attack(&compose).await;
    drop(compose);
    let (kubernetes, _) = kubernetes_accounts();
    let kubernetes = start(&server, &kubernetes);
    the_bus_refuses_every_attack(&kubernetes).await;
}

#[test]
fn both_deployments_give_the_services_the_same_users_and_permissions() {
    let (_, accounts) = kubernetes_accounts();
    let users = accounts["SOUK"]["users"].as_array().unwrap();
    let text =
        std::fs::read_to_string(workspace_root().join("deploy/nats/souk-users.conf")).unwrap();
    let mut names = Vec::new();
    for user in users {
        let name = user["user"].as_str().unwrap();
        names.push(name.to_owned());
        let block = text
            .split("user: ")
            .find(|b| b.starts_with(&format!("{name}\n")))
            .unwrap_or_else(|| panic!("{name} is not in souk-users.conf"));
        for (kind, list) in [
            ("publish", &user["permissions"]["publish"]["allow"]),
            ("subscribe", &user["permissions"]["subscribe"]["allow"]),
        ] {
            let line = block
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{kind}:")))
                .unwrap();
            let wanted: Vec<String> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|v| format!("\"{}\"", v.as_str().unwrap()))
                .collect();
            assert_eq!(
                line.trim(),
                format!("{kind}: {{ allow: [{}] }}", wanted.join(", ")),
                "{name} {kind}"
            );
        }
        assert_eq!(
            user["password"],
            format!("<< $SOUK_NATS_{}_PASSWORD >>", name.to_uppercase())
        );
    }
    names.sort();
    let mut expected: Vec<String> = SERVICES.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(text.matches("user: ").count(), SERVICES.len());
}
