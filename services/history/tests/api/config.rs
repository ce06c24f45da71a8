//! Configuration: defaults, `SOUK_HISTORY__*` variables, and what is refused at start.

use souk_chassis::Env;
use souk_chassis::events::Transport;
use souk_chassis::service::Service as _;

#[test]
fn variables_override_the_defaults() {
    let env = Env::from_pairs([
        ("SOUK_HISTORY__LISTEN", "127.0.0.1:9107"),
        ("SOUK_HISTORY__ORDERS__URL", "http://orders:8105"),
        ("SOUK_HISTORY__EVENTS__TRANSPORT", "nats"),
        ("SOUK_HISTORY__EVENTS__NATS__URL", "nats://nats:4222"),
        ("SOUK_HISTORY__SERVICE_TOKEN__CLIENT_SECRET", "s3cret"),
        ("SOUK_HISTORY__CONSUMERS__MAX_ATTEMPTS", "4"),
    ]);
    let config = souk_history::Service::load(&env).unwrap();
    assert_eq!(config.listen.port(), 9107);
    assert_eq!(config.orders.url, "http://orders:8105");
    assert_eq!(config.payments.url, "http://127.0.0.1:8106");
    assert_eq!(config.events.transport, Transport::Nats);
    assert_eq!(config.events.nats.url, "nats://nats:4222");
    assert_eq!(config.service_token.client_secret.expose(), "s3cret");
    assert_eq!(config.service_token.client_id, "history");
    assert_eq!(config.consumers.max_attempts, 4);
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "secrets never print"
    );
    let defaults = souk_history::Service::load(&Env::default()).unwrap();
    assert_eq!(defaults, souk_history::Config::default());
}

#[test]
fn a_config_file_is_read_and_unknown_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("souk.toml");
    std::fs::write(
        &file,
        "[history]\nlisten = \"127.0.0.1:9999\"\n[history.consumers]\nlong_poll_ms = 1000\n",
    )
    .unwrap();
    let env = Env::from_pairs([("SOUK_CONFIG", file.to_str().unwrap())]);
    let config = souk_history::Service::load(&env).unwrap();
    assert_eq!(config.listen.port(), 9999);
    assert_eq!(config.consumers.long_poll_ms, 1000);
    std::fs::write(&file, "[history]\nlisten_on = \"127.0.0.1:9999\"\n").unwrap();
    assert!(souk_history::Service::load(&env).is_err());
}

#[tokio::test]
async fn nonsense_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = souk_history::Config {
        database: souk_chassis::DatabaseConfig::with_url(format!(
            "sqlite://{}/h.db",
            dir.path().display()
        )),
        ..souk_history::Config::default()
    };
    config.consumers.max_attempts = 0;
    let err = souk_history::build(&config).await.unwrap_err();
    assert!(err.to_string().contains("max_attempts"), "{err}");
}
