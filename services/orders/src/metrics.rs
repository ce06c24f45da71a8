//! Orders' own metrics, besides the per-route request metrics of the standard stack:
//! `orders_placed_total`, `orders_confirmed_total`, `orders_cancelled_total{reason}`,
//! `orders_saga_retries_total{step}`, `orders_idempotent_replays_total` and
//! `orders_hold_too_short_total`.

use crate::domain::CancelReason;

/// An order was accepted.
pub(crate) fn placed() {
    metrics::counter!("orders_placed_total").increment(1);
}

/// An order was confirmed.
pub(crate) fn confirmed() {
    metrics::counter!("orders_confirmed_total").increment(1);
}

/// An order was cancelled for `reason`.
pub(crate) fn cancelled(reason: CancelReason) {
    metrics::counter!("orders_cancelled_total", "reason" => reason.as_str()).increment(1);
}

/// A saga step failed and will be tried again.
pub(crate) fn retry(step: &'static str) {
    metrics::counter!("orders_saga_retries_total", "step" => step).increment(1);
}

/// A request was answered from its idempotency key.
pub(crate) fn replayed() {
    metrics::counter!("orders_idempotent_replays_total").increment(1);
}

/// Inventory answered a reservation whose hold lapses before the saga's deadline plus its lease.
pub(crate) fn hold_too_short() {
    metrics::counter!("orders_hold_too_short_total").increment(1);
}
