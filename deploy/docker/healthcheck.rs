//! `souk-healthcheck`: the container HEALTHCHECK, a tiny HTTP GET that exits 0 on a 2xx answer.
//!
//! The runtime image (distroless) has no shell and no curl, and adding curl would bring libcurl
//! and its TLS stack into every image for one loopback request. This file has no dependency
//! beyond std, so the Dockerfile builds it with a bare `rustc` call; tests/workspace compiles the
//! same file and runs it against a local server, so it cannot rot unseen.
//!
//! Usage: `souk-healthcheck [http://127.0.0.1:8101/healthz]`; without an argument it reads
//! `SOUK_HEALTHCHECK_URL`, which each service's image sets to its own port.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// The whole check must finish within this; Docker's own timeout is the outer bound.
const TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SOUK_HEALTHCHECK_URL").ok());
    let Some(url) = url else {
        eprintln!("souk-healthcheck: give a URL or set SOUK_HEALTHCHECK_URL");
        return ExitCode::FAILURE;
    };
    match check(&url, TIMEOUT) {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("souk-healthcheck: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("souk-healthcheck: {url}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// GETs a plain `http://host:port/path` URL and returns the answer's status code.
pub(crate) fn check(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let addr = resolve(authority, timeout)?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("cannot set timeouts: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: souk-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    // The status line is all we need; 64 bytes hold "HTTP/1.1 200 OK" with room to spare.
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    parse_status(&head[..read])
}

/// The first address `authority` resolves to, within `timeout`. The lookup runs on a thread of
/// its own because the system's resolver has no deadline of its own to give: a network whose DNS
/// server does not answer holds it for its retries (tens of seconds), and saying so is how a
/// caller tells a name that does not resolve from a peer that does not answer.
fn resolve(authority: &str, timeout: Duration) -> Result<std::net::SocketAddr, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = authority.to_owned();
    std::thread::spawn(move || {
        let found = name
            .to_socket_addrs()
            .map(|mut addrs| addrs.next())
            .map_err(|e| e.to_string());
        // The caller may have given up; nothing is left to tell then.
        let _ = tx.send(found);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(addr))) => Ok(addr),
        Ok(Ok(None)) => Err(format!("{authority} resolves to no address")),
        Ok(Err(e)) => Err(format!("cannot resolve {authority}: {e}")),
        Err(_) => Err(format!(
            "cannot resolve {authority}: no answer within {} s",
            timeout.as_secs_f32()
        )),
    }
}

/// The status code of an HTTP/1.x status line.
pub(crate) fn parse_status(head: &[u8]) -> Result<u16, String> {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split(' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code
            .trim()
            .parse()
            .map_err(|_| format!("not an HTTP status line: {text:?}")),
        _ => Err(format!("not an HTTP status line: {text:?}")),
    }
}
