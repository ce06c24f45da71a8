//! Configuration: defaults, `SOUK_PAYMENTS__*` variables, and what is refused at start.

use souk_chassis::Env;
use souk_chassis::service::Service as _;

#[test]
fn variables_override_the_defaults() {
    let env = Env::from_pairs([
        ("SOUK_PAYMENTS__LISTEN", "127.0.0.1:9106"),
        ("SOUK_PAYMENTS__PROCESSOR__LATENCY_MS", "250"),
        ("SOUK_PAYMENTS__PROCESSOR__FAILURE_PERCENT", "30"),
    ]);
    let config = souk_payments::Service::load(&env).unwrap();
    assert_eq!(config.listen.port(), 9106);
    assert_eq!(config.processor.latency_ms, 250);
    assert_eq!(config.processor.failure_percent, 30);
    assert_eq!(config.auth.service_audience, "payments");
    let defaults = souk_payments::Service::load(&Env::default()).unwrap();
    assert_eq!(defaults, souk_payments::Config::default());
}

#[tokio::test]
async fn a_failure_share_over_100_percent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = souk_payments::Config {
        database: souk_chassis::DatabaseConfig::with_url(format!(
            "sqlite://{}/p.db",
            dir.path().display()
        )),
        ..souk_payments::Config::default()
    };
    config.processor.failure_percent = 101;
    let err = souk_payments::build(&config).await.unwrap_err();
    assert!(err.to_string().contains("failure_percent"), "{err}");
}
