//! Bad input: one line naming the problem and the fix, a non-zero exit, nothing left running.

use std::process::Output;

use crate::helpers::{free_port, souk};

fn up(args: &[&str], data_dir: &std::path::Path) -> Output {
    souk()
        .arg("up")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[test]
fn unknown_services_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = up(&["--instances", "basket=2"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no service named \"basket\""),
        "{}",
        stderr(&output)
    );
    let output = souk().args(["scale", "catalog=lots"]).output().unwrap();
    assert!(
        !output.status.success() && stderr(&output).contains("not a number"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_busy_port_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let output = up(&["--port", &port], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&port) && message.contains("--port"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(!dir.path().join("catalog.db").exists(), "nothing started");
}

#[test]
fn an_unwritable_data_dir_is_refused() {
    let output = up(
        &["--port", &free_port().to_string()],
        std::path::Path::new("/proc/souk-cannot-be-here"),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--data-dir"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn postgres_without_a_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = up(
        &["--backend", "postgres", "--port", &free_port().to_string()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("SOUK_POSTGRES_URL"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_hold_shorter_than_the_checkout_is_refused_in_both_topologies() {
    for topology in ["up", "monolith"] {
        let dir = tempfile::tempdir().unwrap();
        let output = souk()
            .args([topology, "--port", &free_port().to_string(), "--data-dir"])
            .arg(dir.path())
            .env("SOUK_INVENTORY__RESERVATION_TTL_SECS", "60")
            .env("SOUK_ORDERS__SAGA__DEADLINE_SECS", "60")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{topology}");
        let message = stderr(&output);
        assert!(
            message.contains("inventory.reservation_ttl_secs")
                && message.contains("orders.saga.deadline_secs"),
            "{topology}: {message}"
        );
        assert!(!dir.path().join("inventory.db").exists(), "nothing started");
    }
}

#[test]
fn status_without_a_running_shop_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = souk()
        .args(["status", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        !output.status.success() && stderr(&output).contains("souk up"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_service_that_cannot_start_stops_souk_up_quickly_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let output = souk()
        .args([
            "up",
            "--quiet",
            "--port",
            &free_port().to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SOUK_CATALOG__HTTP__REQUEST_TIMEOUT_MS", "not-a-number")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("catalog.1 keeps exiting") && message.contains("catalog.1.log"),
        "{message}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
