//! The expiry loop: holds nobody confirmed or cancelled in time give their units back.

use std::sync::Weak;
use std::time::Duration;

use crate::domain::Timestamp;
use crate::store::Store;

/// Reservations expired per store call; the loop goes on while calls come back full.
const BATCH: u32 = 100;

/// Expires lapsed holds every `every` until `alive` is gone (the service was dropped). Several
/// instances may run it on one database: each expiry is conditional on the hold still standing.
pub(crate) fn spawn(store: Store, every: Duration, alive: Weak<()>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while alive.strong_count() > 0 {
            tick.tick().await;
            expire_all_due(&store).await;
        }
    });
}

async fn expire_all_due(store: &Store) {
    loop {
        match store.expire_due(Timestamp::now(), BATCH).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(expired = n, "reservations expired");
                }
                if n < u64::from(BATCH) {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot expire reservations; will retry");
                return;
            }
        }
    }
}
