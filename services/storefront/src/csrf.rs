//! CSRF protection: a signed double-submit token.
//!
//! Each browser gets a random nonce in an `HttpOnly`, `SameSite=Lax` cookie; every form carries
//! `HMAC-SHA256(key, nonce)`. A post is accepted only when its form token is the signature of the
//! nonce in its cookie. Another site can neither read the cookie nor, without the key, make a
//! token for a nonce it planted, so a forged form fails.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The signing key. Cheap to clone.
#[derive(Clone)]
pub struct Key(hmac::Key);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("csrf::Key(…)")
    }
}

impl Key {
    /// A key from the configured secret, or a random one when it is empty (at start-up: a
    /// machine without a random source cannot run the shop).
    #[allow(clippy::expect_used)]
    pub fn new(secret: &str) -> Self {
        let bytes = if secret.is_empty() {
            random::<32>()
                .expect("the system random source works")
                .to_vec()
        } else {
            secret.as_bytes().to_vec()
        };
        Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }
}

/// A fresh nonce for the cookie; `None` if the system's random source fails (the forms of that
/// page are then refused, never protected by a guessable nonce).
pub fn new_nonce() -> Option<String> {
    random::<24>().map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `text` looks like a nonce this module made (so odd cookies are replaced).
pub fn is_nonce(text: &str) -> bool {
    text.len() == 32 && URL_SAFE_NO_PAD.decode(text).is_ok()
}

/// The form token for `nonce`.
pub fn token(key: &Key, nonce: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(&key.0, nonce.as_bytes()).as_ref())
}

/// Whether `token` is the form token for `nonce` (constant-time).
pub fn verify(key: &Key, nonce: &str, token: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(token)
        .is_ok_and(|tag| hmac::verify(&key.0, nonce.as_bytes(), &tag).is_ok())
}

fn random<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_its_own_nonce_and_key() {
        let key = Key::new("");
        let nonce = new_nonce().unwrap();
        assert!(is_nonce(&nonce));
        let token = token(&key, &nonce);
        assert!(verify(&key, &nonce, &token));
        assert!(!verify(&key, &new_nonce().unwrap(), &token));
        assert!(!verify(&Key::new(""), &nonce, &token));
        assert!(!verify(&key, &nonce, ""));
        assert!(!verify(&key, &nonce, "not base64!"));
    }

    #[test]
    fn a_configured_secret_gives_the_same_tokens_everywhere() {
        let secret = "a shared secret of at least 32 characters";
        let nonce = new_nonce().unwrap();
        assert_eq!(
            token(&Key::new(secret), &nonce),
            token(&Key::new(secret), &nonce)
        );
    }
}
