//! Password hashing with Argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1), on the
//! blocking pool and behind a semaphore, so a flood of logins can use at most that many cores;
//! strangers (unknown accounts, sign-ups) behind a smaller one with a bounded queue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Iterations.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Hashing failed (never for well-formed input; kept as an error rather than a panic).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many strangers are being hashed for already: answer 429, do not wait.
    #[error("too many sign-ins and sign-ups for unknown accounts right now")]
    Busy,
    /// The hash itself failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes passwords with a bounded number of concurrent hashes, and a smaller bound for
/// strangers (unknown accounts, new sign-ups), whose queue is bounded too: a flood of strangers
/// from any number of addresses can take `stranger_concurrency` cores, never every core, and
/// never an unbounded queue of waiting requests.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    strangers: Arc<Strangers>,
    /// Hashes computed so far (also `identity_password_hashes_total`).
    done: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Strangers {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// Counts a waiting stranger while it waits, however the wait ends (even by cancellation).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Strangers {
    /// A stranger's permit: at once, or after waiting in a queue of at most `queue`.
    async fn enter(&self) -> Result<OwnedSemaphorePermit, HashError> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("identity_strangers_refused_total").increment(1);
            return Err(HashError::Busy);
        }
        let _waiting = Waiting(&self.waiting);
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))
    }
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
        .map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes with a fresh random salt, as a PHC string.
fn hash_now(password: &str) -> Result<String, HashError> {
    let hash: argon2::PasswordHash = argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(hash.to_string())
}

/// Verifies with the parameters recorded in the hash itself, so raising them later keeps old
/// hashes working.
fn verify_now(password: &str, hash: &str) -> bool {
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), hash).is_ok())
}

impl Hasher {
    /// At most `concurrency` hashes at once (0: one per core), of which at most
    /// `stranger_concurrency` for strangers (0: half of them, at least one), with at most
    /// `stranger_queue` more strangers waiting.
    pub fn new(concurrency: usize, stranger_concurrency: usize, stranger_queue: usize) -> Self {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let stranger_concurrency = match stranger_concurrency {
            0 => concurrency / 2,
            n => n,
        };
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            strangers: Arc::new(Strangers {
                permits: Arc::new(Semaphore::new(stranger_concurrency.max(1))),
                waiting: AtomicUsize::new(0),
                queue: stranger_queue,
            }),
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Hashes a new password for an account that exists (a password change, the administrator).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(None, move || hash_now(&password)).await?
    }

    /// Hashes the password of a new account: a stranger, within the strangers' bound.
    pub async fn hash_for_stranger(&self, password: String) -> Result<String, HashError> {
        let stranger = self.strangers.enter().await?;
        self.run(Some(stranger), move || hash_now(&password))
            .await?
    }

    /// Checks `password` against `hash`; with no hash (unknown account) it spends the same time
    /// on a dummy and answers false — within the strangers' bound, so that may be `Busy`.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let stranger = match hash {
            Some(_) => None,
            None => Some(self.strangers.enter().await?),
        };
        self.run(stranger, move || match hash {
            Some(hash) => verify_now(&password, &hash),
            None => {
                let _ = verify_now(&password, &DUMMY_HASH);
                false
            }
        })
        .await
    }

    /// How many hashes this hasher has computed (or started): what a throttle must keep down.
    pub fn hashes(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Runs `work` on the blocking pool holding a permit (and the stranger's, if any) until it
    /// is done — even when the request that asked for it has gone — so the bounds hold for the
    /// CPU actually spent.
    async fn run<T: Send + 'static>(
        &self,
        stranger: Option<OwnedSemaphorePermit>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        self.done.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("identity_password_hashes_total").increment(1);
        tokio::task::spawn_blocking(move || {
            let _held = (permit, stranger);
            work()
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_at_owasp_parameters_and_verify() {
        let hasher = Hasher::new(1, 1, 4);
        let hash = hasher
            .hash("a long enough passphrase".into())
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let verify = |password: &str, hash: Option<String>| {
            let hasher = hasher.clone();
            let password = password.to_owned();
            async move { hasher.verify(password, hash).await.unwrap() }
        };
        assert!(verify("a long enough passphrase", Some(hash.clone())).await);
        assert!(!verify("another passphrase here", Some(hash)).await);
        assert!(!verify("a long enough passphrase", None).await);
    }

    #[tokio::test]
    async fn strangers_beyond_the_bound_and_its_queue_are_refused_at_once() {
        let hasher = Hasher::new(4, 1, 1);
        // One stranger hashing (its permit held here), one waiting: the next is refused.
        let hashing = hasher.strangers.enter().await.unwrap();
        let waiting = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.verify("x".repeat(12), None).await })
        };
        while hasher.strangers.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            hasher.verify("y".repeat(12), None).await,
            Err(HashError::Busy)
        ));
        assert!(matches!(
            hasher.hash_for_stranger("z".repeat(12)).await,
            Err(HashError::Busy)
        ));
        // A known account is never a stranger: it is not refused.
        let known = hasher
            .hash("a known account's password".into())
            .await
            .unwrap();
        assert!(
            hasher
                .verify("a known account's password".into(), Some(known))
                .await
                .unwrap()
        );
        drop(hashing);
        assert!(!waiting.await.unwrap().unwrap());
        assert_eq!(hasher.strangers.waiting.load(Ordering::SeqCst), 0);
        // A waiter whose request went away leaves the queue.
        let hashing = hasher.strangers.enter().await.unwrap();
        let abandoned = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.verify("x".repeat(12), None).await })
        };
        while hasher.strangers.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        let _ = abandoned.await;
        assert_eq!(hasher.strangers.waiting.load(Ordering::SeqCst), 0);
        drop(hashing);
    }
}
