//! Connection caps: how many client connections the gateway holds at once, all proxy threads
//! together, and from one client address. A connection beyond either cap is answered a bare 503
//! as it is accepted and closed: it never reaches hyper, so it holds no buffer and no task.
//!
//! With the header limits (`max_header_bytes`, `header_timeout_ms`), this bounds what clients
//! that open connections and never finish their headers can hold: at most `max_connections`
//! buffers of `max_header_bytes`, each for at most `header_timeout_ms`.
//!
//! Counting takes a lock per connection opened or closed (per address), never per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The answer to a connection over a cap: a 503 problem, and the connection closed.
pub const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 132\r\n\
\r\n\
{\"type\":\"urn:souk:problem:too-many-connections\",\"title\":\"Too many connections\",\"status\":503,\"detail\":\"try again with fewer at once\"}";

/// Open connections, in all and per client address.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection: counted until dropped.
#[derive(Debug)]
pub struct Slot {
    connections: Arc<Connections>,
    /// The address it counts against, unless it is a trusted proxy's.
    address: Option<IpAddr>,
}

/// The caps a connection is admitted under.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// All connections.
    pub total: usize,
    /// Connections from one address.
    pub per_address: usize,
}

impl Connections {
    /// Admits a connection from `peer` (counted against its address unless `trusted`), or
    /// `None` when a cap is reached.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, caps: Caps, trusted: bool) -> Option<Slot> {
        if self.open.fetch_add(1, Ordering::SeqCst) >= caps.total {
            self.open.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("gateway_connections_refused_total", "cap" => "total").increment(1);
            return None;
        }
        let mut slot = Slot {
            connections: Arc::clone(self),
            address: None,
        };
        if trusted {
            return Some(slot);
        }
        let address = crate::limit::bucket_of(peer);
        let mut by_address = self
            .by_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = by_address.entry(address).or_default();
        if *count >= caps.per_address {
            drop(by_address);
            metrics::counter!("gateway_connections_refused_total", "cap" => "address").increment(1);
            return None; // `slot` gives back the total on drop
        }
        *count += 1;
        slot.address = Some(address);
        Some(slot)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.open.fetch_sub(1, Ordering::SeqCst);
        let Some(address) = self.address else {
            return;
        };
        let mut by_address = self
            .connections
            .by_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = by_address.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                by_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn caps_hold_per_address_and_in_all_and_slots_give_back_on_drop() {
        let connections = Arc::new(Connections::default());
        let caps = Caps {
            total: 4,
            per_address: 2,
        };
        let admit = |ip_text: &str, trusted: bool| connections.admit(ip(ip_text), caps, trusted);
        let a1 = admit("203.0.113.1", false);
        let a2 = admit("203.0.113.1", false);
        assert!(a1.is_some() && a2.is_some());
        assert!(admit("203.0.113.1", false).is_none(), "the address's cap");
        let v1 = admit("2001:db8::1", false);
        let v2 = admit("2001:db8::2", false);
        assert!(v1.is_some() && v2.is_some());
        assert_eq!(connections.open(), 4);
        assert!(admit("198.51.100.7", false).is_none(), "the total");
        drop(a1);
        assert!(
            admit("2001:db8::3", false).is_none(),
            "one /64 is one address, at its cap, with room in the total"
        );
        let x = admit("198.51.100.7", false);
        assert!(x.is_some());
        assert!(
            admit("10.0.0.9", true).is_none(),
            "a trusted proxy is held to the total"
        );
        drop((a2, v1, v2, x));
        assert_eq!(connections.open(), 0);
        assert!(
            connections.by_address.lock().unwrap().is_empty(),
            "addresses with no connection left are forgotten"
        );
        let trusted: Vec<_> = (0..4).map(|_| admit("10.0.0.9", true)).collect();
        assert!(
            trusted.iter().all(Option::is_some),
            "no per-address cap for a trusted proxy"
        );
    }

    #[test]
    fn the_refusal_is_a_well_formed_503() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
    }
}
