//! Access tokens (short-lived EdDSA JWTs) and refresh tokens (opaque, stored hashed).

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::Role;
use crate::keys::KeySet;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The account id.
    pub sub: String,
    /// The account's role.
    pub role: Role,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token we issued, expired, or for someone else.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("cannot sign a token: {0}")]
    Sign(String),
}

/// Signs an access token for `sub` with `role`, valid `ttl_secs` from `now`.
pub fn issue_access(
    keys: &KeySet,
    issuer: &str,
    audience: &str,
    sub: &str,
    role: Role,
    now: i64,
    ttl_secs: i64,
) -> Result<String, TokenError> {
    let claims = Claims {
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        sub: sub.to_owned(),
        role,
        exp: now + ttl_secs,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::now_v7().to_string(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(keys.signer.0.clone());
    jsonwebtoken::encode(&header, &claims, &keys.signer.1)
        .map_err(|e| TokenError::Sign(e.to_string()))
}

/// Verifies an access token: EdDSA only, a published key id, issuer, audience, expiry and
/// not-before (with 30 s of leeway for clocks).
pub fn verify_access(
    keys: &KeySet,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<Claims, TokenError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Invalid("algorithm must be EdDSA".into()));
    }
    let kid = header
        .kid
        .ok_or_else(|| TokenError::Invalid("no key id".into()))?;
    let key = keys
        .decoding_key(&kid)
        .ok_or_else(|| TokenError::Invalid("unknown key id".into()))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.validate_nbf = true;
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// What a service token says: like a user token, with `role: "service"` and the service's id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ServiceClaims {
    iss: String,
    aud: String,
    sub: String,
    role: &'static str,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    /// `events:read` for a token that only reads the audience's event feed.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Signs a token for service `client_id` to call `audience` (only to read its feed, with
/// `scope` `events:read`).
pub fn issue_service(
    keys: &KeySet,
    issuer: &str,
    audience: &str,
    client_id: &str,
    scope: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> Result<String, TokenError> {
    let claims = ServiceClaims {
        scope: scope.map(str::to_owned),
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        sub: format!("service:{client_id}"),
        role: "service",
        exp: now + ttl_secs,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::now_v7().to_string(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(keys.signer.0.clone());
    jsonwebtoken::encode(&header, &claims, &keys.signer.1)
        .map_err(|e| TokenError::Sign(e.to_string()))
}

/// A new opaque refresh token: 32 random bytes, base64url.
pub fn new_refresh_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TokenError::Sign("no randomness".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored for a refresh token: its SHA-256, hex. A leaked table yields no usable token.
pub fn refresh_hash(token: &str) -> String {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StoredKey;

    fn keys() -> KeySet {
        let sealer = souk_chassis::seal::Sealer::new(
            &souk_chassis::Secret::new("a test secret of 32 characters!!"),
            "tests",
        )
        .unwrap();
        KeySet::from_stored(&[StoredKey::generate(0, &sealer).unwrap()], &sealer).unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn issued_tokens_verify_and_carry_every_claim() {
        let keys = keys();
        let token = issue_access(&keys, "souk", "souk", "user-1", Role::Admin, now(), 900).unwrap();
        let claims = verify_access(&keys, "souk", "souk", &token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("user-1", Role::Admin));
        assert_eq!(claims.exp - claims.iat, 900);
        assert!(!claims.jti.is_empty());
    }

    #[test]
    fn wrong_issuer_audience_expired_and_foreign_keys_are_refused() {
        let keys = keys();
        let token = issue_access(&keys, "souk", "souk", "u", Role::User, now(), 900).unwrap();
        assert!(verify_access(&keys, "other", "souk", &token).is_err());
        assert!(verify_access(&keys, "souk", "catalog", &token).is_err());
        let expired =
            issue_access(&keys, "souk", "souk", "u", Role::User, now() - 3600, 60).unwrap();
        assert!(verify_access(&keys, "souk", "souk", &expired).is_err());
        let future =
            issue_access(&keys, "souk", "souk", "u", Role::User, now() + 3600, 60).unwrap();
        assert!(
            verify_access(&keys, "souk", "souk", &future).is_err(),
            "not yet valid"
        );
        let other_keys = self::keys();
        assert!(verify_access(&other_keys, "souk", "souk", &token).is_err());
    }

    #[test]
    fn alg_none_and_hmac_tokens_are_refused() {
        let keys = keys();
        let claims = r#"{"iss":"souk","aud":"souk","sub":"u","role":"admin","exp":9999999999,"iat":0,"nbf":0,"jti":"x"}"#;
        let body = URL_SAFE_NO_PAD.encode(claims);
        let kid = &keys.signer.0;
        let none = format!(
            "{}.{body}.",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{kid}"}}"#))
        );
        assert!(verify_access(&keys, "souk", "souk", &none).is_err());
        // HMAC keyed with the public key: the classic algorithm-confusion attack.
        let x = &keys.published[0].1;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let claims: Claims = serde_json::from_str(claims).unwrap();
        let hmac = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verify_access(&keys, "souk", "souk", &hmac).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (a, b) = (new_refresh_token().unwrap(), new_refresh_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(refresh_hash(&a).len(), 64);
        assert_ne!(refresh_hash(&a), refresh_hash(&b));
    }
}
