//! Signing keys: Ed25519 key pairs kept in identity's store, published as a JWKS.
//!
//! The private half is stored sealed (chassis `seal`: AES-256-GCM, bound to the key id) with a
//! key that lives outside the database (`key_secret` or `key_file`), so whoever reads the store
//! — a backup, a dump, another user of the machine — cannot sign tokens. One key signs at a time. Rotation makes a new key the signer and retires the old one, which
//! stays in the JWKS until every token it signed has expired, so rotation logs nobody out.

use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;
use souk_chassis::seal::{self, Sealer};

/// A stored key, as identity keeps it.
#[derive(Clone)]
pub struct StoredKey {
    /// Key id, in every token's header.
    pub kid: String,
    /// The private key's PKCS#8, sealed (`sealed:v1:…`); a store written before sealing holds
    /// it as plain base64, which [`KeySet::from_stored`] still reads and identity then reseals.
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
    /// A fresh Ed25519 key, its private half sealed by `sealer`.
    pub fn generate(now: i64, sealer: &Sealer) -> Result<Self, KeyError> {
        let pair =
            Ed25519KeyPair::generate().map_err(|_| KeyError("cannot generate a key".into()))?;
        let pkcs8 = pair
            .to_pkcs8()
            .map_err(|_| KeyError("cannot encode the key".into()))?;
        let public_x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = uuid::Uuid::now_v7().simple().to_string();
        let sealed = sealer
            .seal(pkcs8.as_ref(), &kid)
            .map_err(|e| KeyError(e.to_string()))?;
        Ok(Self {
            kid,
            pkcs8: sealed,
            public_x,
            created_at: now,
            retired_at: None,
        })
    }

    /// Whether the private key is stored in the clear (written before sealing existed).
    pub fn is_plain(&self) -> bool {
        !seal::is_sealed(&self.pkcs8)
    }

    /// This key with its private half sealed by `sealer` (a plain one is sealed; a sealed one
    /// is returned as it is).
    pub fn sealed(&self, sealer: &Sealer) -> Result<Self, KeyError> {
        if !self.is_plain() {
            return Ok(self.clone());
        }
        let der = STANDARD
            .decode(&self.pkcs8)
            .map_err(|e| KeyError(e.to_string()))?;
        let pkcs8 = sealer
            .seal(&der, &self.kid)
            .map_err(|e| KeyError(e.to_string()))?;
        Ok(Self {
            pkcs8,
            ..self.clone()
        })
    }

    /// The private key's PKCS#8 DER.
    fn der(&self, sealer: &Sealer) -> Result<Vec<u8>, KeyError> {
        if self.is_plain() {
            return STANDARD
                .decode(&self.pkcs8)
                .map_err(|e| KeyError(e.to_string()));
        }
        sealer.open(&self.pkcs8, &self.kid).map_err(|e| {
            KeyError(format!(
                "signing key {} does not open: {e} (is key_secret / key_file the one it was sealed with?)",
                self.kid
            ))
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
    /// Builds the set from stored keys: the newest unretired one signs, opened with `sealer`.
    pub fn from_stored(keys: &[StoredKey], sealer: &Sealer) -> Result<Self, KeyError> {
        let signer = keys
            .iter()
            .filter(|k| k.retired_at.is_none())
            .max_by_key(|k| (k.created_at, k.kid.clone()))
            .ok_or_else(|| KeyError("no active signing key".into()))?;
        let der = signer.der(sealer)?;
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
