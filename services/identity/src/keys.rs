//! Signing keys: Ed25519 key pairs kept in identity's store, published as a JWKS.
//!
//! One key signs at a time. Rotation makes a new key the signer and retires the old one, which
//! stays in the JWKS until every token it signed has expired, so rotation logs nobody out.

use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;

/// A stored key, as identity keeps it.
#[derive(Clone)]
pub struct StoredKey {
    /// Key id, in every token's header.
    pub kid: String,
    /// Base64 PKCS#8 of the private key.
    pub pkcs8: String,
    /// Base64url public key (the JWK `x`).
    pub public_x: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it stopped signing, if it did.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Key generation or loading failed.
#[derive(Debug, thiserror::Error)]
#[error("signing key error: {0}")]
pub struct KeyError(String);

impl StoredKey {
    /// A fresh Ed25519 key.
    pub fn generate(now: i64) -> Result<Self, KeyError> {
        let pair =
            Ed25519KeyPair::generate().map_err(|_| KeyError("cannot generate a key".into()))?;
        let pkcs8 = pair
            .to_pkcs8()
            .map_err(|_| KeyError("cannot encode the key".into()))?;
        let public_x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Ok(Self {
            kid: uuid::Uuid::now_v7().simple().to_string(),
            pkcs8: STANDARD.encode(pkcs8.as_ref()),
            public_x,
            created_at: now,
            retired_at: None,
        })
    }
}

/// The keys in force: the signer and everything still published.
#[derive(Clone)]
pub struct KeySet {
    /// The key that signs new tokens.
    pub signer: Arc<(String, EncodingKey)>,
    /// Every published key (the signer and retired ones whose tokens may still be valid).
    pub published: Arc<Vec<(String, String, DecodingKey)>>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("signer", &self.signer.0)
            .finish_non_exhaustive()
    }
}

/// One public key in a JWKS.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `OKP`.
    kty: &'static str,
    /// `Ed25519`.
    crv: &'static str,
    /// Base64url public key.
    x: String,
    /// Key id.
    kid: String,
    /// `EdDSA`.
    alg: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    usage: &'static str,
}

/// A JSON Web Key Set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Jwks {
    /// The keys.
    keys: Vec<Jwk>,
}

impl KeySet {
    /// Builds the set from stored keys: the newest unretired one signs.
    pub fn from_stored(keys: &[StoredKey]) -> Result<Self, KeyError> {
        let signer = keys
            .iter()
            .filter(|k| k.retired_at.is_none())
            .max_by_key(|k| (k.created_at, k.kid.clone()))
            .ok_or_else(|| KeyError("no active signing key".into()))?;
        let der = STANDARD
            .decode(&signer.pkcs8)
            .map_err(|e| KeyError(e.to_string()))?;
        let published = keys
            .iter()
            .map(|k| {
                let key = DecodingKey::from_ed_components(&k.public_x)
                    .map_err(|e| KeyError(e.to_string()))?;
                Ok((k.kid.clone(), k.public_x.clone(), key))
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(Self {
            signer: Arc::new((signer.kid.clone(), EncodingKey::from_ed_der(&der))),
            published: Arc::new(published),
        })
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .published
                .iter()
                .map(|(kid, x, _)| Jwk {
                    kty: "OKP",
                    crv: "Ed25519",
                    x: x.clone(),
                    kid: kid.clone(),
                    alg: "EdDSA",
                    usage: "sig",
                })
                .collect(),
        }
    }

    /// The published key with `kid`.
    pub fn decoding_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.published
            .iter()
            .find(|(k, _, _)| k == kid)
            .map(|(_, _, key)| key)
    }
}
