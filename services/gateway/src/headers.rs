//! Header hygiene between the client and an upstream.
//!
//! On the way in: hop-by-hop headers (and any the client named in `Connection`) are removed,
//! client-sent internal headers (`x-souk-*`) are stripped so a client cannot claim an identity the
//! gateway did not give it, the forwarding headers are set from what the gateway saw (it is the
//! edge, so the client's own `X-Forwarded-*` are not trusted — unless the peer is a trusted proxy,
//! see [`forwarded_client`]), and every request leaves with a request id and a W3C `traceparent`.
//! On the way out: hop-by-hop headers are removed.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never to be forwarded (RFC 9110 §7.6.1).
/// A `static`, not a `const`: a const array of names would be built and dropped at every use.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// The prefix of headers that only the gateway may set.
pub const INTERNAL_PREFIX: &str = "x-souk-";
/// The verified caller's account id, set by the gateway only.
pub const USER_ID: HeaderName = HeaderName::from_static("x-souk-user-id");
/// The verified caller's role, set by the gateway only.
pub const ROLE: HeaderName = HeaderName::from_static("x-souk-role");
/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including those listed in `Connection`, and `Transfer-Encoding`:
/// hyper frames each hop's body itself.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the few names present (cheap comparisons of
    // standard names) instead of hashing each of the nine to look it up.
    if !headers
        .keys()
        .any(|name| name == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(name))
    {
        return;
    }
    // Names listed in Connection are hop-by-hop for this connection only.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Prepares a client's request headers for an upstream. Returns the request id used.
/// `Host` is moved to `X-Forwarded-Host`; the client that sends upstream sets `Host` to the
/// endpoint it picks.
pub fn prepare_request(headers: &mut HeaderMap, client: &HeaderValue) -> HeaderValue {
    // Room for the headers added below, so the map grows once rather than on each insert.
    headers.reserve(5);
    remove_hop_by_hop(headers);
    strip_internal(headers);
    let host = headers.remove(header::HOST);
    headers.remove(header::FORWARDED);
    headers.insert(X_FORWARDED_FOR, client.clone());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
    if !headers
        .get(&TRACEPARENT)
        .is_some_and(|v| valid_traceparent(v.as_bytes()))
    {
        // When spans are exported, the request's own span begins its trace (`spans`), and its
        // sampler decides whether it is kept; a made-up parent would claim it was.
        if souk_chassis::telemetry::exporting() {
            headers.remove(TRACEPARENT);
        } else {
            headers.insert(TRACEPARENT, new_traceparent());
        }
    }
    let request_id = match headers.get(&REQUEST_ID) {
        Some(id) if valid_request_id(id.as_bytes()) => id.clone(),
        _ => new_request_id(),
    };
    headers.insert(REQUEST_ID, request_id.clone());
    request_id
}

/// A client's address as an `X-Forwarded-For` value; made once per connection.
pub fn client_ip(client: &SocketAddr) -> HeaderValue {
    HeaderValue::try_from(client.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The client that a request from a trusted proxy (the storefront, say) speaks for, and the
/// `X-Forwarded-For` chain to send on. `None` when the peer is not trusted or forwarded for
/// nobody: the peer is then the client.
///
/// The chain is read right to left, as each proxy appends the address it saw; the first address
/// that is not itself a trusted proxy is the client. Whatever stands left of it was written by
/// that client and proves nothing, so it is dropped from the chain sent on.
pub fn forwarded_client(
    headers: &HeaderMap,
    peer: SocketAddr,
    is_trusted: impl Fn(&IpAddr) -> bool,
) -> Option<(SocketAddr, HeaderValue)> {
    if !headers.contains_key(X_FORWARDED_FOR) || !is_trusted(&peer.ip()) {
        return None;
    }
    let mut chain = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let text = value.to_str().ok()?;
        chain.extend(text.split(',').map(str::trim).filter(|hop| !hop.is_empty()));
    }
    let mut client = None;
    for (at, hop) in chain.iter().enumerate().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = Some((at, ip));
        if !is_trusted(&ip) {
            break;
        }
    }
    let (at, client) = client?;
    let mut sent_on: Vec<String> = chain[at..].iter().map(|hop| (*hop).to_owned()).collect();
    sent_on.push(peer.ip().to_string());
    let value = HeaderValue::try_from(sent_on.join(", ")).ok()?;
    Some((SocketAddr::new(client, 0), value))
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`[::1]:80`, `1.2.3.4:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// Removes every `x-souk-*` header.
pub fn strip_internal(headers: &mut HeaderMap) {
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(INTERNAL_PREFIX))
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
}

/// A fresh request id (UUIDv7). Its random bits come from a per-thread generator rather than the
/// OS: `Uuid::now_v7` asks the kernel for randomness on every call, a system call per request.
pub fn new_request_id() -> HeaderValue {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let random = fastrand::u128(..).to_le_bytes();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random[..10]);
    let id =
        uuid::Builder::from_unix_timestamp_millis(u64::try_from(millis).unwrap_or(u64::MAX), &tail)
            .into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The client's request id when it is a valid one, else a fresh one (for answers the gateway
/// makes before `prepare_request`, such as 404 and 405).
pub fn request_id_of(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&REQUEST_ID) {
        Some(id) if valid_request_id(id.as_bytes()) => id.clone(),
        _ => new_request_id(),
    }
}

/// A request id from a client is kept if it is short, visible ASCII.
fn valid_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero.
fn valid_traceparent(value: &[u8]) -> bool {
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    value.len() == 55
        && &value[..3] == b"00-"
        && value[35] == b'-'
        && value[52] == b'-'
        && hex(&value[3..35])
        && hex(&value[36..52])
        && hex(&value[53..55])
        && value[3..35].iter().any(|&b| b != b'0')
        && value[36..52].iter().any(|&b| b != b'0')
}

/// A new sampled trace, started here: `00-<trace id>-<span id>-01`, written by hand (this runs
/// once per request, and `format!` cost more than the rest of the header work together).
fn new_traceparent() -> HeaderValue {
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
    lower_hex(&mut text[3..35], &fastrand::u128(1..).to_be_bytes());
    lower_hex(&mut text[36..52], &fastrand::u64(1..).to_be_bytes());
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Writes `bytes` as lowercase hex into `out` (twice as long).
fn lower_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Prepares an upstream's response headers for the client.
pub fn prepare_response(headers: &mut HeaderMap, request_id: &HeaderValue) {
    remove_hop_by_hop(headers);
    headers.insert(REQUEST_ID, request_id.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        headers
    }

    fn client() -> HeaderValue {
        client_ip(&"203.0.113.7:5555".parse().unwrap())
    }

    fn nets(text: &[&str]) -> Vec<ipnet::IpNet> {
        text.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn forwarded(xff: &[&str], peer: &str, trusted: &[&str]) -> Option<(String, String)> {
        let headers = map(&xff
            .iter()
            .map(|v| ("x-forwarded-for", *v))
            .collect::<Vec<_>>());
        let nets = nets(trusted);
        forwarded_client(&headers, peer.parse().unwrap(), |ip| {
            nets.iter().any(|net| net.contains(ip))
        })
        .map(|(client, chain)| (client.ip().to_string(), chain.to_str().unwrap().to_owned()))
    }

    #[test]
    fn a_trusted_proxy_speaks_for_the_nearest_untrusted_address() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            forwarded(&["203.0.113.7"], "10.1.2.3:999", &trusted),
            Some(("203.0.113.7".into(), "203.0.113.7, 10.1.2.3".into()))
        );
        // A client cannot hide behind addresses it wrote itself: only the hop the trusted
        // proxy appended counts, and the rest is dropped.
        assert_eq!(
            forwarded(
                &["1.1.1.1, 198.51.100.9", "10.9.9.9"],
                "10.1.2.3:1",
                &trusted
            ),
            Some((
                "198.51.100.9".into(),
                "198.51.100.9, 10.9.9.9, 10.1.2.3".into()
            ))
        );
        assert_eq!(
            forwarded(&["[2001:db8::1]:443"], "10.1.2.3:1", &trusted).map(|f| f.0),
            Some("2001:db8::1".into())
        );
    }

    #[test]
    fn untrusted_peers_and_garbage_are_not_believed() {
        assert_eq!(
            forwarded(&["203.0.113.7"], "192.0.2.1:1", &["10.0.0.0/8"]),
            None
        );
        assert_eq!(forwarded(&["203.0.113.7"], "10.1.2.3:1", &[]), None);
        assert_eq!(forwarded(&[], "10.1.2.3:1", &["10.0.0.0/8"]), None);
        assert_eq!(
            forwarded(&["not-an-address"], "10.1.2.3:1", &["10.0.0.0/8"]),
            None
        );
        // Garbage left of a good hop stops the walk at the good hop.
        assert_eq!(
            forwarded(&["junk, 203.0.113.7"], "10.1.2.3:1", &["10.0.0.0/8"]).map(|f| f.0),
            Some("203.0.113.7".into())
        );
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
        ]);
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn internal_and_spoofed_forwarding_headers_are_replaced() {
        let mut headers = map(&[
            ("x-souk-user-id", "admin"),
            ("X-Souk-Role", "admin"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("host", "shop.example"),
        ]);
        prepare_request(&mut headers, &client());
        assert!(!headers.keys().any(|k| k.as_str().starts_with("x-souk-")));
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7");
        assert_eq!(headers["x-forwarded-host"], "shop.example");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(!headers.contains_key("host"), "set by the upstream client");
        assert!(!headers.contains_key("forwarded"));
    }

    #[test]
    fn request_ids_and_traceparents_are_kept_when_valid_and_made_otherwise() {
        let good_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = map(&[("x-request-id", "abc-123"), ("traceparent", good_trace)]);
        let id = prepare_request(&mut headers, &client());
        assert_eq!(id, "abc-123");
        assert_eq!(headers["traceparent"], good_trace);

        let mut headers = map(&[
            ("x-request-id", "bad id with spaces"),
            ("traceparent", "00-zz"),
        ]);
        let id = prepare_request(&mut headers, &client());
        assert_eq!(id.len(), 36);
        assert!(
            valid_traceparent(headers["traceparent"].as_bytes()),
            "{:?}",
            headers["traceparent"]
        );
    }

    #[test]
    fn gateway_made_answers_keep_a_valid_client_request_id() {
        assert_eq!(
            request_id_of(&map(&[("x-request-id", "abc-123")])),
            "abc-123"
        );
        assert_eq!(
            request_id_of(&map(&[("x-request-id", "has spaces")])).len(),
            36
        );
        assert_eq!(request_id_of(&HeaderMap::new()).len(), 36);
    }

    #[test]
    fn request_ids_are_unique_uuid_v7s() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        let id = uuid::Uuid::parse_str(ids.iter().next().unwrap().to_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
    }

    #[test]
    fn new_traceparents_are_valid_and_distinct() {
        let made: std::collections::HashSet<_> = (0..1000).map(|_| new_traceparent()).collect();
        assert_eq!(made.len(), 1000);
        for traceparent in &made {
            assert!(valid_traceparent(traceparent.as_bytes()), "{traceparent:?}");
        }
        let mut out = [0u8; 4];
        lower_hex(&mut out, &[0x0f, 0xa0]);
        assert_eq!(&out, b"0fa0");
    }

    #[test]
    fn traceparent_validation_rejects_zero_ids_and_bad_shapes() {
        assert!(!valid_traceparent(
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
        assert!(!valid_traceparent(
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(b"garbage"));
    }
}
