//! Secrets at rest: values sealed (AES-256-GCM, aws-lc-rs) with a key that lives outside the
//! database — a file of its own or a secret in the environment — so a copy of the database (a
//! backup, a dump, a file read by another user) yields no private key and no card number.
//!
//! The key is derived with HKDF-SHA256 from the configured secret and a purpose (`"identity
//! signing keys"`), so one secret can never open another purpose's values. Each value is sealed
//! with a fresh random nonce and bound to a context (its row's id) as associated data, so sealed
//! values cannot be swapped between rows. Stored form: `sealed:v1:<base64(nonce ‖ ciphertext)>`.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::Secret;

/// The prefix of every sealed value.
const PREFIX: &str = "sealed:v1:";
/// The fewest characters a configured secret may have.
pub const MIN_SECRET_CHARS: usize = 32;

/// Why a value could not be sealed or opened, or the key not made.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The configured secret is too short to be a key.
    #[error("the sealing secret must be at least {MIN_SECRET_CHARS} characters")]
    WeakSecret,
    /// The key file could not be read or created.
    #[error("cannot read or create the key file {path}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Neither a secret nor a key file was configured.
    #[error("no sealing key: set a secret or a key file")]
    NoKey,
    /// A sealed value does not open with this key (another key, or a damaged value).
    #[error("a sealed value does not open with this key (wrong key, or a damaged value)")]
    Open,
    /// The system's random source or the cipher failed.
    #[error("sealing failed")]
    Crypto,
}

/// Seals and opens values for one purpose. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(…)")
    }
}

impl Sealer {
    /// A sealer whose key is derived from `secret` for `purpose`.
    pub fn new(secret: &Secret, purpose: &str) -> Result<Self, SealError> {
        let secret = secret.expose();
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(SealError::WeakSecret);
        }
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"souk seal v1");
        let info = [purpose.as_bytes()];
        let prk = salt.extract(secret.as_bytes());
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| SealError::Crypto)?;
        let key = UnboundKey::from(okm);
        Ok(Self {
            key: std::sync::Arc::new(LessSafeKey::new(key)),
        })
    }

    /// `plaintext` sealed, bound to `context` (open it with the same context).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Crypto)?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SealError::Crypto)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// The plaintext of a value [`Self::seal`] made with `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Open)?;
        let mut bytes = STANDARD.decode(body).map_err(|_| SealError::Open)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let opened = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| SealError::Open)?;
        Ok(opened.to_vec())
    }
}

/// Whether `stored` is a sealed value (rather than one written before sealing existed).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The sealing secret: `secret` when set, else the contents of `file`, which is made (`0600`,
/// 32 random bytes as hex, its folder `0700`) when missing. Neither set is an error.
pub fn secret_from(secret: &Secret, file: &str) -> Result<Secret, SealError> {
    if !secret.expose().is_empty() {
        return Ok(secret.clone());
    }
    if file.is_empty() {
        return Err(SealError::NoKey);
    }
    let path = Path::new(file);
    let key_file = |source| SealError::KeyFile {
        path: file.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            crate::private::tighten(path).map_err(key_file)?;
            Ok(Secret::new(text.trim()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::private::dir(dir).map_err(key_file)?;
            }
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SealError::Crypto)?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            crate::private::write(path, format!("{hex}\n").as_bytes()).map_err(key_file)?;
            Ok(Secret::new(hex))
        }
        Err(err) => Err(key_file(err)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sealer(secret: &str) -> Sealer {
        Sealer::new(&Secret::new(secret), "tests").unwrap()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_value_opens_only_with_its_key_purpose_and_context() {
        let sealed = sealer(SECRET).seal(b"private key", "kid-1").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("private"));
        assert_eq!(
            sealer(SECRET).open(&sealed, "kid-1").unwrap(),
            b"private key"
        );
        assert!(
            sealer(SECRET).open(&sealed, "kid-2").is_err(),
            "bound to its row"
        );
        let other = "another secret of at least 32 chars";
        assert!(sealer(other).open(&sealed, "kid-1").is_err());
        let other_purpose = Sealer::new(&Secret::new(SECRET), "vault").unwrap();
        assert!(other_purpose.open(&sealed, "kid-1").is_err());
        assert_ne!(
            sealed,
            sealer(SECRET).seal(b"private key", "kid-1").unwrap(),
            "fresh nonces"
        );
        // One character of the body changed for another (a fixed replacement such as 'A' left
        // it undamaged whenever it was 'A' already: one run in 64 failed).
        let mut damaged = sealed.clone().into_bytes();
        let middle = PREFIX.len() + (damaged.len() - PREFIX.len()) / 2;
        damaged[middle] = if damaged[middle] == b'A' { b'B' } else { b'A' };
        let damaged = String::from_utf8(damaged).unwrap();
        assert_ne!(damaged, sealed);
        assert!(sealer(SECRET).open(&damaged, "kid-1").is_err());
        assert!(sealer(SECRET).open("plain base64", "kid-1").is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            Sealer::new(&Secret::new("short"), "tests"),
            Err(SealError::WeakSecret)
        ));
    }

    #[test]
    fn a_key_file_is_made_once_private_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys/identity.key");
        let file = file.to_str().unwrap();
        let made = secret_from(&Secret::default(), file).unwrap();
        assert_eq!(made.expose().len(), 64);
        assert_eq!(
            secret_from(&Secret::default(), file).unwrap().expose(),
            made.expose()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let given = Secret::new(SECRET);
        assert_eq!(secret_from(&given, file).unwrap().expose(), SECRET);
        assert!(matches!(
            secret_from(&Secret::default(), ""),
            Err(SealError::NoKey)
        ));
    }
}
