//! Access log: one line per request on stdout, written through a per-thread buffer that is
//! flushed every 100 ms or when it fills, so logging costs a formatted write into memory rather
//! than a locked system call per request.
//!
//! `<unix ms> <request id> <client> <method> <path> route=<r> upstream=<u> endpoint=<addr|->
//! status=<code> attempts=<n> duration_us=<µs>`

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, StatusCode};

const BUFFER: usize = 64 * 1024;

thread_local! {
    static OUT: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(BUFFER));
}

/// What one line says.
#[derive(Debug)]
pub struct Line<'a> {
    /// The request id sent upstream and back.
    pub request_id: &'a HeaderValue,
    /// The client's address.
    pub client: SocketAddr,
    /// The method.
    pub method: &'a Method,
    /// The path as the client sent it (no query: it may carry personal data).
    pub path: &'a str,
    /// The route.
    pub route: &'a str,
    /// The upstream.
    pub upstream: &'a str,
    /// The endpoint that answered last, if any was tried.
    pub endpoint: Option<SocketAddr>,
    /// The status sent to the client.
    pub status: StatusCode,
    /// Attempts made.
    pub attempts: u32,
    /// Time to the response head.
    pub elapsed: Duration,
}

/// Buffers one line; flushes when the buffer is nearly full.
pub fn write(line: &Line<'_>) {
    OUT.with_borrow_mut(|out| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let id = String::from_utf8_lossy(line.request_id.as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "{now} {id} {} {} {} route={} upstream={} endpoint=",
            line.client.ip(),
            line.method,
            line.path,
            line.route,
            line.upstream
        );
        let _ = match line.endpoint {
            Some(addr) => write!(out, "{addr}"),
            None => write!(out, "-"),
        };
        let _ = writeln!(
            out,
            " status={} attempts={} duration_us={}",
            line.status.as_u16(),
            line.attempts,
            line.elapsed.as_micros()
        );
        if out.len() > BUFFER - 1024 {
            drain(out);
        }
    });
}

/// Writes out this thread's buffer. Each proxy thread calls it on a timer and at shutdown.
pub fn flush() {
    OUT.with_borrow_mut(drain);
}

fn drain(out: &mut Vec<u8>) {
    if out.is_empty() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not take the proxy down; lines are lost, requests are not.
    let _ = stdout.write_all(out).and_then(|()| stdout.flush());
    out.clear();
}
