//! Bodies stream through with bounded memory: the gateway runs as its own process so that its
//! peak resident memory can be read from `/proc`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::{Stub, refused_addr, zero_chunks};

const UPLOAD: u64 = 200 * 1024 * 1024;
const DOWNLOAD: u64 = 50 * 1024 * 1024;
const PEAK_RSS_LIMIT_KIB: u64 = 64 * 1024;

/// A gateway process, killed (by its pid) when dropped, and its configuration file removed.
struct GatewayProcess {
    child: Child,
    config: PathBuf,
    addr: SocketAddr,
}

impl GatewayProcess {
    async fn start(upstream: SocketAddr) -> Self {
        let (addr, admin) = (refused_addr(), refused_addr());
        let config = std::env::temp_dir().join(format!(
            "souk-gateway-streaming-{}-{}.toml",
            std::process::id(),
            addr.port()
        ));
        std::fs::write(
            &config,
            format!(
                r#"
                [server]
                listen = "{addr}"
                admin_listen = "{admin}"
                threads = 2
                access_log = false

                [[routes]]
                name = "bulk"
                prefix = "/"
                upstream = "sink"
                timeout_ms = 60000
                body_limit_bytes = 1073741824

                [upstreams.sink]
                endpoints = ["{upstream}"]
                per_try_timeout_ms = 60000
                [upstreams.sink.health]
                path = ""
                "#
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_souk-gateway"))
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let process = Self {
            child,
            config,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(admin).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the gateway process did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The process's peak resident set size, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in {status}"))
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    let sink = Stub::start("sink").await;
    let gateway = GatewayProcess::start(sink.addr).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let within = Duration::from_secs(60);
    tokio::time::timeout(within, async {
        let body = reqwest::Body::wrap_stream(zero_chunks(UPLOAD).map(Ok::<_, std::io::Error>));
        let response = client
            .post(gateway.url("/upload"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let echo: Value = response.json().await.unwrap();
        assert_eq!(echo["body_bytes"], UPLOAD, "every byte arrived, streamed");

        let response = client
            .get(gateway.url(&format!("/bytes/{DOWNLOAD}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut received = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            received += chunk.unwrap().len() as u64;
        }
        assert_eq!(received, DOWNLOAD);
    })
    .await
    .unwrap_or_else(|_| panic!("streaming took over {within:?}"));

    let peak = gateway.peak_rss_kib();
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "the gateway's peak RSS was {peak} KiB while streaming {} MiB",
        UPLOAD >> 20
    );
    assert_eq!(sink.hits(), 2);
}
