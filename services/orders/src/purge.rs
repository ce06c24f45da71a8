//! Forgets idempotency keys once they are older than `idempotency_keep_hours`, checking every
//! hour (and at start). Several instances may run it on one database: deleting twice is harmless.

use std::time::Duration;

use crate::domain::Timestamp;
use crate::store::Store;
use souk_chassis::lifeline::Alive;

/// How often old keys are looked for.
const EVERY: Duration = Duration::from_secs(60 * 60);

/// Starts the purge loop; it ends when `alive` says the service is gone.
pub(crate) fn spawn(store: Store, keep: Duration, mut alive: Alive) {
    tokio::spawn(async move {
        loop {
            match store.purge_keys(Timestamp::now().minus(keep)).await {
                Ok(0) => {}
                Ok(keys) => tracing::info!(keys, "forgot old idempotency keys"),
                Err(err) => {
                    tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot purge idempotency keys; will retry");
                }
            }
            tokio::select! {
                () = alive.gone() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}
