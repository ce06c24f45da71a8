//! `souk chaos` (and so `souk bench`) end to end: a 5-second bench against a `souk up` on random
//! ports while payments is killed and kept down for 2 s, then the report read back — every file
//! written, every endpoint measured, the fault's window, and the saga's invariants held.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Shop, souk};

const ADMIN: (&str, &str) = ("root@example.com", "a very long admin passphrase");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_with_payments_killed_reports_its_blast_radius_and_keeps_the_invariants() {
    let env = [
        ("SOUK_ADMIN_EMAIL", ADMIN.0),
        ("SOUK_ADMIN_PASSWORD", ADMIN.1),
    ];
    let mut shop = Shop::start_with_env("up", &[], &env).await;
    let report = tempfile::tempdir().unwrap();
    let mut chaos = souk();
    chaos
        .args(["chaos", "--kill", "payments", "--at", "1s", "--for", "2s"])
        .args(["--duration", "5s", "--rate", "20", "--users", "4"])
        .arg("--data-dir")
        .arg(shop.data_dir.path())
        .arg("--report")
        .arg(report.path())
        .envs(env);
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || chaos.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "souk chaos failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(60));

    let text = std::fs::read_to_string(report.path().join("chaos.json")).unwrap();
    let blast: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(blast["fault"]["kind"], "kill");
    assert_eq!(blast["fault"]["service"], "payments");
    let (from, until) = (
        blast["fault_from_s"].as_f64().unwrap(),
        blast["fault_until_s"].as_f64().unwrap(),
    );
    assert!(
        (0.9..1.5).contains(&from) && (2.9..3.6).contains(&until),
        "{from}..{until}"
    );
    for endpoint in ["browse", "search", "product", "add_to_cart", "checkout"] {
        let windows = &blast["endpoints"][endpoint];
        for window in ["before", "during", "after"] {
            assert!(
                windows[window]["requests"].as_u64().unwrap() > 0 || endpoint == "checkout",
                "{endpoint} {window}: {windows}"
            );
        }
    }
    // Browsing and searching never reach payments: the kill must not fail them. (Whether they
    // count as touched also weighs their p99, which a busy machine moves on its own.)
    for endpoint in ["browse", "search"] {
        let errors = &blast["endpoints"][endpoint]["during"]["errors"];
        assert_eq!(errors, &serde_json::json!({}), "{endpoint}");
    }
    // Every endpoint is placed in exactly one of the report's three lists.
    let listed: Vec<&Value> = ["touched", "untouched", "unexercised"]
        .iter()
        .flat_map(|list| blast[list].as_array().unwrap())
        .collect();
    let endpoints = blast["endpoints"].as_object().unwrap();
    assert_eq!(listed.len(), endpoints.len(), "{listed:?}");
    assert!(
        endpoints
            .keys()
            .all(|e| listed.contains(&&Value::from(e.as_str())))
    );
    let checks = blast["invariants"]["Ok"]
        .as_array()
        .expect("invariants checked");
    // Every invariant the books can hold alone (all but the carts').
    assert_eq!(checks.len(), souk::books::INVARIANTS.len() - 1);
    for check in checks {
        assert_eq!(check["violations"], serde_json::json!([]), "{check}");
    }
    assert!(stdout.contains("Blast radius: payments killed"));

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(report.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["sent"], 100);
    assert!(
        results["endpoints"]["reads (all)"]["p99_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    for plot in [
        "latency-over-time.svg",
        "latency-distribution.svg",
        "throughput.svg",
    ] {
        let svg = std::fs::read_to_string(report.path().join(plot)).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{plot}"
        );
    }
    let markdown = std::fs::read_to_string(report.path().join("blast-radius.md")).unwrap();
    assert!(markdown.contains("Not touched:"));

    // The hold was lifted: payments runs again.
    let payments = shop
        .processes()
        .await
        .into_iter()
        .find(|p| p["service"] == "payments")
        .unwrap();
    assert_ne!(payments["pid"], 0);
    let (status, _) = shop.stop();
    assert!(status.success());
}
