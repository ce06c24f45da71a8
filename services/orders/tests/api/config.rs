//! Configuration: defaults, `SOUK_ORDERS__*` variables, and what is refused at start.

use souk_chassis::Env;
use souk_chassis::service::Service as _;

#[test]
fn variables_override_the_defaults() {
    let env = Env::from_pairs([
        ("SOUK_ORDERS__LISTEN", "127.0.0.1:9105"),
        ("SOUK_ORDERS__SAGA__DEADLINE_SECS", "90"),
        ("SOUK_ORDERS__PAYMENTS__URL", "http://payments:8106"),
        ("SOUK_ORDERS__SERVICE_TOKEN__CLIENT_SECRET", "s3cret"),
        ("SOUK_ORDERS__EVENTS__TRANSPORT", "nats"),
        ("SOUK_ORDERS__PUBLIC_PREFIX", ""),
    ]);
    let config = souk_orders::Service::load(&env).unwrap();
    assert_eq!(config.listen.port(), 9105);
    assert_eq!(config.saga.deadline_secs, 90);
    assert_eq!(config.payments.url, "http://payments:8106");
    assert_eq!(config.service_token.client_secret.expose(), "s3cret");
    assert_eq!(
        config.events.transport,
        souk_chassis::events::Transport::Nats
    );
    assert_eq!(config.public_prefix, "");
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "secrets never print"
    );
    let defaults = souk_orders::Service::load(&Env::default()).unwrap();
    assert_eq!(defaults, souk_orders::Config::default());
}

#[tokio::test]
async fn a_lease_shorter_than_a_call_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = souk_orders::Config {
        database: souk_chassis::DatabaseConfig::with_url(format!(
            "sqlite://{}/o.db",
            dir.path().display()
        )),
        ..souk_orders::Config::default()
    };
    config.saga.lease_ms = 1000;
    let err = souk_orders::build(&config).await.unwrap_err();
    assert!(err.to_string().contains("lease_ms"), "{err}");
}
