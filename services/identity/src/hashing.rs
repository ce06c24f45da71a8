//! Password hashing with Argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1), on the
//! blocking pool and behind a semaphore, so a flood of logins can use at most that many cores.

use std::sync::Arc;
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Iterations.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Hashing failed (never for well-formed input; kept as an error rather than a panic).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes passwords with a bounded number of concurrent hashes.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

/// A hash of a password nobody has, verified when an email is unknown so that an unknown email
/// and a wrong password take the same time.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_now("no account has this password, ever").unwrap_or_default());

/// Computes the dummy hash ahead of the first login that needs it.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| DUMMY_HASH.len()).await;
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes with a fresh random salt, as a PHC string.
fn hash_now(password: &str) -> Result<String, HashError> {
    let hash: argon2::PasswordHash = argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| HashError(e.to_string()))?;
    Ok(hash.to_string())
}

/// Verifies with the parameters recorded in the hash itself, so raising them later keeps old
/// hashes working.
fn verify_now(password: &str, hash: &str) -> bool {
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), hash).is_ok())
}

impl Hasher {
    /// At most `concurrency` hashes at once (0: one per core).
    pub fn new(concurrency: usize) -> Self {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|e| HashError(e.to_string()))?
    }

    /// Checks `password` against `hash`; with no hash (unknown account) it spends the same time
    /// on a dummy and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_now(&password, &hash),
            None => {
                let _ = verify_now(&password, &DUMMY_HASH);
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_at_owasp_parameters_and_verify() {
        let hasher = Hasher::new(1);
        let hash = hasher
            .hash("a long enough passphrase".into())
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("a long enough passphrase".into(), Some(hash.clone()))
                .await
        );
        assert!(
            !hasher
                .verify("another passphrase here".into(), Some(hash))
                .await
        );
        assert!(!hasher.verify("a long enough passphrase".into(), None).await);
    }
}
