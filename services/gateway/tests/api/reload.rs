//! Changing the configuration while the gateway serves: reloads and endpoint changes under load
//! lose no request; an invalid configuration is refused and the old one stays in force.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{PROBLEM_JSON, Stub, TestGateway, server_section, toml_list};

fn config(endpoint: SocketAddr, timeout_ms: u64) -> String {
    format!(
        r#"{}
        [[routes]]
        name = "reloaded"
        prefix = "/"
        upstream = "svc"
        timeout_ms = {timeout_ms}
        [upstreams.svc]
        endpoints = {}
        "#,
        server_section(false),
        toml_list(&[endpoint])
    )
}

/// Clients sending requests one after another until `stop`; every answer's stub name, or the
/// failure.
fn load(gateway: &TestGateway, stop: &Arc<AtomicBool>) -> tokio::task::JoinSet<Vec<String>> {
    let mut clients = tokio::task::JoinSet::new();
    for task in 0..3 {
        let (client, stop) = (gateway.client.clone(), Arc::clone(stop));
        let url = gateway.url(&format!("/load/{task}"));
        clients.spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        let echo: Value = response.json().await.unwrap_or_default();
                        echo["stub"].as_str().unwrap_or("unreadable").to_owned()
                    }
                    Ok(response) => format!("status {}", response.status()),
                    Err(err) => format!("error {err}"),
                };
                seen.push(answer);
            }
            seen
        });
    }
    clients
}

async fn answers(mut clients: tokio::task::JoinSet<Vec<String>>) -> Vec<String> {
    let mut all = Vec::new();
    while let Some(seen) = clients.join_next().await {
        all.extend(seen.unwrap());
    }
    all
}

/// The stub names of `n` requests sent now.
async fn next_answers(gateway: &TestGateway, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..n {
        let echo: Value = gateway.get("/after").await.json().await.unwrap();
        names.push(echo["stub"].as_str().unwrap().to_owned());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_request_and_move_the_traffic() {
    let (a, b) = (Stub::start("a").await, Stub::start("b").await);
    let gateway = TestGateway::start_with(&config(a.addr, 5_000));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&gateway, &stop);

    for round in 0..8u64 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let to = if round % 2 == 0 { b.addr } else { a.addr };
        let applied = gateway.put_config(&config(to, 5_000 + round)).await;
        assert_eq!(applied.status(), 200, "{}", applied.text().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = answers(clients).await;

    let failed: Vec<&String> = seen.iter().filter(|s| *s != "a" && *s != "b").collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        seen.len()
    );
    assert!(seen.len() >= 50, "too little load to tell: {}", seen.len());
    assert!(seen.iter().any(|s| s == "a") && seen.iter().any(|s| s == "b"));
    // The last configuration sent everything to a, with the last timeout.
    let a_hits = a.hits();
    let b_hits = b.hits();
    assert_eq!(next_answers(&gateway, 10).await, ["a"; 10]);
    assert_eq!((a.hits(), b.hits()), (a_hits + 10, b_hits));
    let in_force: Value = gateway
        .admin
        .get(gateway.admin_url("/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(in_force["routes"][0]["timeout_ms"], 5_007);
    assert_eq!(
        in_force["upstreams"]["svc"]["endpoints"],
        json!([a.addr.to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_changes_under_load_lose_no_request() {
    let (a, b) = (Stub::start("a").await, Stub::start("b").await);
    let gateway = TestGateway::start_with(&config(a.addr, 5_000));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&gateway, &stop);

    let url = gateway.admin_url("/upstreams/svc/endpoints");
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let to = match round % 3 {
            0 => vec![b.addr],
            1 => vec![a.addr, b.addr],
            _ => vec![a.addr],
        };
        let put = gateway
            .admin
            .put(&url)
            .json(&json!({ "endpoints": to }))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
    }
    // Round 7 left both in: finish on b alone.
    let put = gateway
        .admin
        .put(&url)
        .json(&json!({ "endpoints": [b.addr] }))
        .send();
    assert_eq!(put.await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = answers(clients).await;

    let failed: Vec<&String> = seen.iter().filter(|s| *s != "a" && *s != "b").collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        seen.len()
    );
    assert!(seen.len() >= 50, "too little load to tell: {}", seen.len());
    let a_hits = a.hits();
    assert_eq!(next_answers(&gateway, 10).await, ["b"; 10]);
    assert_eq!(a.hits(), a_hits);

    let unknown = gateway
        .admin
        .put(gateway.admin_url("/upstreams/nope/endpoints"))
        .json(&json!({ "endpoints": [a.addr] }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let empty = gateway
        .admin
        .put(&url)
        .json(&json!({ "endpoints": [] }))
        .send();
    assert_eq!(empty.await.unwrap().status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_configuration_is_refused_and_the_old_one_stays() {
    let stub = Stub::start("kept").await;
    let good = config(stub.addr, 5_000);
    let gateway = TestGateway::start_with(&good);

    let bad = good.replace("upstream = \"svc\"", "upstream = \"svcc\"");
    let refused = gateway.put_config(&bad).await;
    assert_eq!(refused.status(), 422);
    assert_eq!(refused.headers()["content-type"], PROBLEM_JSON);
    let problem: Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.starts_with("routes[0].upstream"), "{detail}");
    assert!(detail.contains("svcc"), "{detail}");

    let moved = good.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    let refused = gateway.put_config(&moved).await;
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("server.listen"),
        "{problem}"
    );

    let unparsable = gateway.put_config("[[routes]\nname = ").await;
    assert_eq!(unparsable.status(), 422);

    let in_force: Value = gateway
        .admin
        .get(gateway.admin_url("/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(in_force["routes"][0]["upstream"], "svc");
    assert_eq!(gateway.get_status("/still-works").await, 200);
    assert_eq!(stub.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_endpoint_state_and_injected_faults() {
    let stub = Stub::start("kept").await;
    let gateway = TestGateway::start_with(&config(stub.addr, 5_000));
    for _ in 0..3 {
        assert_eq!(gateway.get_status("/x").await, 200);
    }
    let fault = gateway
        .admin
        .put(gateway.admin_url("/faults/routes/reloaded"))
        .json(&json!({"abort_status": 418, "abort_percent": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 200);

    // Change both the route and the upstream's settings.
    let changed = config(stub.addr, 6_000).replace(
        "[upstreams.svc]",
        "[upstreams.svc]\nper_try_timeout_ms = 4000",
    );
    assert_eq!(gateway.put_config(&changed).await.status(), 200);
    assert_eq!(
        gateway.get_status("/x").await,
        418,
        "the fault survives the reload"
    );
    let endpoint = gateway.endpoint("svc", stub.addr).await;
    assert_eq!(
        endpoint["requests"], 3,
        "the endpoint's counts survive: {endpoint}"
    );

    let cleared = gateway
        .admin
        .delete(gateway.admin_url("/faults/routes/reloaded"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert_eq!(gateway.get_status("/x").await, 200);
    assert_eq!(gateway.endpoint("svc", stub.addr).await["requests"], 4);
    assert_eq!(stub.hits(), 4);
}

#[test]
fn check_config_refuses_a_bad_file_naming_the_key_and_accepts_the_example() {
    let binary = env!("CARGO_BIN_EXE_souk-gateway");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway.toml");
    let ok = Command::new(binary)
        .args(["--check-config", example])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let text = std::fs::read_to_string(example).unwrap();
    // Misspell the upstream of the second route only.
    let second = text
        .match_indices("upstream = \"catalog\"")
        .nth(1)
        .unwrap()
        .0;
    let bad_text = format!(
        "{}{}",
        &text[..second],
        text[second..].replacen("\"catalog\"", "\"catlog\"", 1)
    );
    let bad = std::env::temp_dir().join(format!("souk-gateway-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, bad_text).unwrap();
    let refused = Command::new(binary)
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("routes[1].upstream"), "{stderr}");
    assert!(stderr.contains("catlog"), "{stderr}");
}

/// `kill -HUP` makes a gateway process re-read its configuration file; a bad file is refused and
/// the configuration in force stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_configuration_file() {
    let upstream = crate::helpers::Stub::start("shop").await;
    let (addr, admin) = (
        crate::helpers::refused_addr(),
        crate::helpers::refused_addr(),
    );
    let path = std::env::temp_dir().join(format!(
        "souk-gateway-sighup-{}-{}.toml",
        std::process::id(),
        addr.port()
    ));
    let config = |prefix: &str| {
        format!(
            "[server]\nlisten = \"{addr}\"\nadmin_listen = \"{admin}\"\nthreads = 1\naccess_log = false\n\n\
             [[routes]]\nname = \"r\"\nprefix = \"{prefix}\"\nupstream = \"shop\"\nrewrite = \"/\"\n\n\
             [upstreams.shop]\nendpoints = [\"{}\"]\n[upstreams.shop.health]\npath = \"\"\n",
            upstream.addr
        )
    };
    std::fs::write(&path, config("/old")).unwrap();
    /// Kills the gateway process (by its pid) however the test ends.
    struct Process(std::process::Child);
    impl Drop for Process {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_souk-gateway"))
            .arg("--config")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = crate::helpers::client();
    let status = |route: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}{route}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let hup = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    let eventually = |route: &'static str, want: u16| {
        let status = &status;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while status(route).await != want {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{route} never answered {want}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    eventually("/old", 200).await;
    assert_eq!(status("/new").await, 404);

    std::fs::write(&path, config("/new")).unwrap();
    assert!(hup(child.0.id()).success());
    eventually("/new", 200).await;
    assert_eq!(status("/old").await, 404);

    std::fs::write(&path, "this is not toml [").unwrap();
    assert!(hup(child.0.id()).success());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        status("/new").await,
        200,
        "a bad file leaves the configuration in force"
    );

    drop(child);
    let _ = std::fs::remove_file(&path);
}
