//! The late-capture sweep: a cancelled order must keep no money, even when a charge for it lands
//! at the processor after the order was cancelled and the process that made it died before it
//! could give the money back (see `routes/payments.rs`). Every `late_capture_sweep_ms`, each
//! order cancelled within the last `late_capture_window_hours` (by the database's clock) is
//! looked up at the processor under its key, and a capture found there is refunded.
//!
//! A charge is asked for only before the saga's deadline, and a paused attempt wakes within
//! minutes, not days: the window bounds how long a cancelled order is watched, and so the work.
//! Several instances may sweep at once: the processor's refund is idempotent on the order's key.
//!
//! Once an hour the same loop deletes tombstones older than `tombstones_keep_days` (at least the
//! window): by then no charge for their order can come.

use souk_chassis::lifeline::Alive;
use std::time::Duration;

use crate::processor::Processor;
use crate::store::Store;

/// Cancelled orders looked at per sweep.
const BATCH: u32 = 1000;
/// How often old tombstones are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Sweeps every `every`, looking `window` back, until `alive` is gone (the service was dropped).
pub(crate) fn spawn(
    store: Store,
    processor: Processor,
    every: Duration,
    window: Duration,
    keep: Duration,
    mut alive: Alive,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge = tokio::time::interval(PURGE_EVERY);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = alive.gone() => return,
                _ = tick.tick() => sweep(&store, &processor, window).await,
                _ = purge.tick() => match store.purge_tombstones(keep).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "tombstones past their retention deleted"),
                    Err(err) => tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot purge tombstones; will retry"),
                },
            }
        }
    });
}

async fn sweep(store: &Store, processor: &Processor, window: Duration) {
    let orders = match store.recently_cancelled(window, BATCH).await {
        Ok(orders) => orders,
        Err(err) => {
            tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot look for late captures; will retry");
            return;
        }
    };
    for order in orders {
        if let Err(err) = crate::routes::sweep_processor(processor, order).await {
            tracing::warn!(order = %order, error = %souk_chassis::problem::ErrorChain(&err), "cannot check a cancelled order for a late capture; will retry");
        }
    }
}
