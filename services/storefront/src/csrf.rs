//! CSRF protection: a signed double-submit token, bound to the session.
//!
//! Each browser gets a random nonce in an `HttpOnly`, `SameSite=Lax` cookie (`__Host-` and
//! `Secure` outside loopback), made anew at sign-in and sign-out. Every form carries
//! `HMAC-SHA256(key, nonce ‖ session id)`, where the session id is the one both session cookies
//! carry (empty while signed out). A post is accepted only when its form token is that
//! signature for the cookies it came with. Another site can neither read the cookies nor,
//! without the key, sign for a nonce it planted; and a nonce planted with a token from the
//! attacker's own session does not fit the victim's session.
//!
//! The token in a page is masked afresh on every render (a random pad, and the tag XOR the
//! pad), so a page compressed beside text an attacker reflects leaks nothing about it (BREACH).

use aws_lc_rs::{constant_time, hmac};
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

/// The length of an HMAC-SHA256 tag.
const TAG: usize = 32;

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

    fn tag(&self, nonce: &str, session: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        for part in ["souk csrf v2", nonce, session] {
            context.update(part.as_bytes());
            context.update(&[0]);
        }
        context.sign()
    }
}

/// A fresh random value for the nonce cookie or a session id; `None` if the system's random
/// source fails (the forms of that page are then refused, never protected by a guessable one).
pub fn new_nonce() -> Option<String> {
    random::<24>().map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `text` looks like a value [`new_nonce`] made (so odd cookies are replaced).
pub fn is_nonce(text: &str) -> bool {
    text.len() == 32 && URL_SAFE_NO_PAD.decode(text).is_ok()
}

/// The form token for `nonce` in `session` (empty: signed out), masked with a fresh pad.
pub fn token(key: &Key, nonce: &str, session: &str) -> String {
    let tag = key.tag(nonce, session);
    let pad = random::<TAG>().unwrap_or([0; TAG]);
    let mut out = Vec::with_capacity(2 * TAG);
    out.extend_from_slice(&pad);
    out.extend(tag.as_ref().iter().zip(pad).map(|(t, p)| t ^ p));
    URL_SAFE_NO_PAD.encode(out)
}

/// Whether `token` is a form token for `nonce` in `session` (constant-time).
pub fn verify(key: &Key, nonce: &str, session: &str, token: &str) -> bool {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) else {
        return false;
    };
    if bytes.len() != 2 * TAG {
        return false;
    }
    let (pad, masked) = bytes.split_at(TAG);
    let tag: Vec<u8> = masked.iter().zip(pad).map(|(m, p)| m ^ p).collect();
    constant_time::verify_slices_are_equal(key.tag(nonce, session).as_ref(), &tag).is_ok()
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
    fn a_token_verifies_only_its_own_nonce_session_and_key() {
        let key = Key::new("");
        let nonce = new_nonce().unwrap();
        assert!(is_nonce(&nonce));
        let token = token(&key, &nonce, "session-a");
        assert!(verify(&key, &nonce, "session-a", &token));
        assert!(!verify(&key, &new_nonce().unwrap(), "session-a", &token));
        assert!(
            !verify(&key, &nonce, "session-b", &token),
            "bound to the session"
        );
        assert!(!verify(&key, &nonce, "", &token), "not valid signed out");
        assert!(!verify(&Key::new(""), &nonce, "session-a", &token));
        assert!(!verify(&key, &nonce, "session-a", ""));
        assert!(!verify(&key, &nonce, "session-a", "not base64!"));
    }

    #[test]
    fn every_render_masks_the_token_differently() {
        let key = Key::new("");
        let nonce = new_nonce().unwrap();
        let (a, b) = (token(&key, &nonce, ""), token(&key, &nonce, ""));
        assert_ne!(a, b, "a fresh pad each time");
        assert!(verify(&key, &nonce, "", &a) && verify(&key, &nonce, "", &b));
    }

    #[test]
    fn a_configured_secret_gives_tokens_every_instance_accepts() {
        let secret = "a shared secret of at least 32 characters";
        let nonce = new_nonce().unwrap();
        let made = token(&Key::new(secret), &nonce, "s");
        assert!(verify(&Key::new(secret), &nonce, "s", &made));
    }
}
