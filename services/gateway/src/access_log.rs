//! Access log: one line per request on stdout, written through a per-thread buffer that is
//! flushed every 100 ms or when it fills, so logging costs a formatted write into memory rather
//! than a locked system call per request.
//!
//! `<unix ms> <request id> <client> <method> <path> route=<r> upstream=<u> endpoint=<addr|->
//! status=<code> attempts=<n> duration_us=<µs>`

use std::cell::RefCell;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
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
    /// The endpoint that answered last (`ip:port`), if any was tried.
    pub endpoint: Option<&'a HeaderValue>,
    /// The status sent to the client.
    pub status: StatusCode,
    /// Attempts made.
    pub attempts: u32,
    /// Time to the response head.
    pub elapsed: Duration,
}

/// Buffers one line; flushes when the buffer is nearly full. Formatting is by hand (no
/// `core::fmt`): this runs once per request, and `write!` cost a microsecond here.
pub fn write(line: &Line<'_>) {
    OUT.with_borrow_mut(|out| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut numbers = itoa::Buffer::new();
        out.extend_from_slice(numbers.format(now).as_bytes());
        out.push(b' ');
        out.extend_from_slice(line.request_id.as_bytes());
        out.push(b' ');
        push_ip(out, line.client.ip());
        out.push(b' ');
        out.extend_from_slice(line.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(line.path.as_bytes());
        for (key, value) in [
            (&b" route="[..], line.route),
            (b" upstream=", line.upstream),
        ] {
            out.extend_from_slice(key);
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(b" endpoint=");
        out.extend_from_slice(line.endpoint.map_or(&b"-"[..], HeaderValue::as_bytes));
        out.extend_from_slice(b" status=");
        out.extend_from_slice(numbers.format(line.status.as_u16()).as_bytes());
        out.extend_from_slice(b" attempts=");
        out.extend_from_slice(numbers.format(line.attempts).as_bytes());
        out.extend_from_slice(b" duration_us=");
        out.extend_from_slice(numbers.format(line.elapsed.as_micros()).as_bytes());
        out.push(b'\n');
        if out.len() > BUFFER - 1024 {
            drain(out);
        }
    });
}

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut numbers = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(numbers.format(octet).as_bytes());
            }
        }
        // Rare enough here to format the ordinary way.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
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
