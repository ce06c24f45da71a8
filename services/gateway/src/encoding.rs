//! Content codings for the answers the gateway composes itself (aggregates): which one a client
//! accepts (`Accept-Encoding`, RFC 9110 §12.5.3, with q-values and `*`), and the compression.
//!
//! Proxied answers are never touched: they stream through with the upstream's own coding. Only
//! gzip and deflate are offered (flate2, already built for the services' compression); a client
//! that accepts neither gets the identity coding, which RFC 9110 lets a server send unless the
//! client refused it explicitly.

use std::io::Write;

use bytes::Bytes;
use http::HeaderValue;

/// Bodies smaller than this are sent as they are: a gzip header and trailer cost 18 bytes, and
/// the CPU is better spent elsewhere.
pub const MIN_COMPRESSED: usize = 256;

/// A content coding the gateway can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// HTTP's "deflate": the zlib format (RFC 1950).
    Deflate,
}

impl Coding {
    /// Its name in `Content-Encoding`, if any.
    pub fn header_value(self) -> Option<HeaderValue> {
        match self {
            Self::Identity => None,
            Self::Gzip => Some(HeaderValue::from_static("gzip")),
            Self::Deflate => Some(HeaderValue::from_static("deflate")),
        }
    }
}

/// The coding to use for a client that sent `accept` (all `Accept-Encoding` values): the
/// acceptable one with the highest weight, gzip before deflate on a tie; identity when none is.
pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a HeaderValue>) -> Coding {
    let mut gzip = None;
    let mut deflate = None;
    let mut any = None;
    for value in accept {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let name = params.next().unwrap_or_default().trim();
            let weight = match params
                .map(str::trim)
                .find_map(|p| p.strip_prefix("q=").or(p.strip_prefix("Q=")))
            {
                None => 1000,
                Some(q) => match parse_weight(q) {
                    Some(weight) => weight,
                    // A weight that does not parse makes the item unreadable: it is ignored.
                    None => continue,
                },
            };
            let slot = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                &mut gzip
            } else if name.eq_ignore_ascii_case("deflate") {
                &mut deflate
            } else if name == "*" {
                &mut any
            } else {
                continue;
            };
            // A coding listed twice keeps its highest weight.
            *slot = Some(slot.map_or(weight, |w: u16| w.max(weight)));
        }
    }
    let gzip = gzip.or(any).unwrap_or(0);
    let deflate = deflate.or(any).unwrap_or(0);
    match (gzip, deflate) {
        (0, 0) => Coding::Identity,
        (g, d) if g >= d => Coding::Gzip,
        _ => Coding::Deflate,
    }
}

/// A q-value as thousandths (`1`, `0.5`, `0.001`); `None` when malformed.
fn parse_weight(text: &str) -> Option<u16> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = match whole {
        "0" => format!("{fraction:0<3}").parse::<u16>().ok()?,
        "1" if fraction.bytes().all(|b| b == b'0') => 1000,
        _ => return None,
    };
    Some(thousandths)
}

/// `body` in `coding`; `None` for identity, or when compressing would not pay.
pub fn compress(coding: Coding, body: &[u8]) -> Option<Bytes> {
    if body.len() < MIN_COMPRESSED {
        return None;
    }
    let level = flate2::Compression::fast();
    let out = Vec::with_capacity(body.len() / 3);
    let compressed = match coding {
        Coding::Identity => return None,
        Coding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, level);
            encoder.write_all(body).ok()?;
            encoder.finish().ok()?
        }
        Coding::Deflate => {
            let mut encoder = flate2::write::ZlibEncoder::new(out, level);
            encoder.write_all(body).ok()?;
            encoder.finish().ok()?
        }
    };
    Some(Bytes::from(compressed))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn pick(values: &[&str]) -> Coding {
        let values: Vec<HeaderValue> = values
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect();
        negotiate(&values)
    }

    #[test]
    fn the_heaviest_acceptable_coding_wins() {
        assert_eq!(pick(&[]), Coding::Identity);
        assert_eq!(pick(&["identity"]), Coding::Identity);
        assert_eq!(pick(&["br"]), Coding::Identity);
        assert_eq!(pick(&["gzip, deflate, br, zstd"]), Coding::Gzip);
        assert_eq!(pick(&["deflate"]), Coding::Deflate);
        assert_eq!(pick(&["gzip;q=0.5, deflate"]), Coding::Deflate);
        assert_eq!(pick(&["gzip;q=0, deflate;q=0"]), Coding::Identity);
        assert_eq!(pick(&["*"]), Coding::Gzip);
        assert_eq!(pick(&["*;q=0.1, gzip;q=0"]), Coding::Deflate);
        assert_eq!(pick(&["br", "GZIP; Q=0.8"]), Coding::Gzip);
        assert_eq!(pick(&["x-gzip"]), Coding::Gzip);
        // An item with a malformed weight is ignored, never a panic.
        assert_eq!(pick(&["gzip;q=2"]), Coding::Identity);
        assert_eq!(pick(&["gzip;q=0.0001, deflate;q=0.5"]), Coding::Deflate);
    }

    #[test]
    fn weights_parse_as_thousandths() {
        assert_eq!(parse_weight("1"), Some(1000));
        assert_eq!(parse_weight("1.000"), Some(1000));
        assert_eq!(parse_weight("0.5"), Some(500));
        assert_eq!(parse_weight("0.05"), Some(50));
        assert_eq!(parse_weight("0"), Some(0));
        for bad in ["1.5", "2", "-1", "0.1234", "x", ""] {
            assert_eq!(parse_weight(bad), None, "{bad}");
        }
    }

    #[test]
    fn compressed_bodies_decode_to_the_original() {
        let body = br#"{"product":{"name":"mug"},"degraded":[]}"#.repeat(20);
        let gzip = compress(Coding::Gzip, &body).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let deflate = compress(Coding::Deflate, &body).unwrap();
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&deflate[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert!(compress(Coding::Identity, &body).is_none());
        assert!(compress(Coding::Gzip, b"{}").is_none());
    }
}
