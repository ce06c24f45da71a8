//! `Idempotency-Key`s and request fingerprints: a key names one attempt at one request, and the
//! fingerprint tells whether a repeat is the same request.

use aws_lc_rs::digest;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters (no spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key as sent.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let visible = raw.iter().all(|b| (0x21..=0x7e).contains(b));
        if raw.is_empty() || raw.len() > MAX_KEY_LEN || !visible {
            return Err(format!(
                "must be 1 to {MAX_KEY_LEN} visible ASCII characters, without spaces"
            ));
        }
        // All bytes are ASCII, so this never fails.
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The SHA-256 of a request's canonical form, in lowercase hex.
pub fn fingerprint(canonical: &[u8]) -> String {
    use std::fmt::Write;
    let hash = digest::digest(&digest::SHA256, canonical);
    hash.as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse(b"order-2026-11-30/1").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 256],
            b"a b",
            b"tab\t",
            "é".as_bytes(),
            b"\x7f",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_are_sha_256() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }
}
