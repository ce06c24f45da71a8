//! The expiry loop: holds nobody confirmed or cancelled in time give their units back; and, once an
//! hour, reservations that ended longer ago than their retention go (tombstones included).

use souk_chassis::lifeline::Alive;
use std::time::Duration;

use crate::domain::Timestamp;
use crate::store::Store;

/// Reservations expired per store call; the loop goes on while calls come back full.
const BATCH: u32 = 100;

/// How often finished reservations are looked for.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Expires lapsed holds every `every`, and purges reservations finished longer than `keep` ago
/// every hour, until `alive` is gone (the service was dropped). Several instances may run it on
/// one database: each expiry is conditional on the hold still standing, each purge on its end.
pub(crate) fn spawn(store: Store, every: Duration, keep: Duration, mut alive: Alive) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge = tokio::time::interval(PURGE_EVERY);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = alive.gone() => return,
                _ = tick.tick() => expire_all_due(&store).await,
                _ = purge.tick() => purge_finished(&store, keep).await,
            }
        }
    });
}

async fn purge_finished(store: &Store, keep: Duration) {
    let before = Timestamp::now().minus(keep);
    loop {
        match store.purge_finished(before, BATCH).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(
                        purged = n,
                        "finished reservations past their retention deleted"
                    );
                }
                if n < u64::from(BATCH) {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot purge finished reservations; will retry");
                return;
            }
        }
    }
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
