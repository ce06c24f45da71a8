//! The one check across two services' configurations that no service can make alone: inventory's
//! hold must outlive orders' checkout deadline plus its saga lease by a wide margin (DESIGN.md,
//! "Checkout saga"). A capture may come as late as the deadline plus a lease; if the hold lapsed
//! by then, the saga's synchronous commit refunds the order `out_of_stock` rather than selling
//! stock twice, but a shop configured so would cancel paid orders routinely.
//!
//! `souk up` and `souk monolith` read both configurations from the environment (and `SOUK_CONFIG`)
//! that every service will read, and refuse to start when the margin is missing. Deployments that
//! do not go through `souk` get the same warning from orders at run time, on the first
//! reservation whose hold is too short (`orders_hold_too_short_total`).

use souk_chassis::service::Service as _;
use std::time::Duration;

use souk_chassis::Env;

/// How many times the deadline plus the lease inventory's hold must last at least.
pub(crate) const HOLD_MARGIN: u32 = 2;

/// Refuses a hold shorter than [`HOLD_MARGIN`] × (orders' deadline + lease), naming the keys.
pub(crate) fn check(env: &Env) -> Result<(), String> {
    let orders = souk_orders::Service::load(env).map_err(|e| format!("orders: {e}"))?;
    let inventory = souk_inventory::Service::load(env).map_err(|e| format!("inventory: {e}"))?;
    check_values(
        inventory.reservation_ttl(),
        orders.saga.deadline(),
        orders.saga.lease(),
    )
}

fn check_values(hold: Duration, deadline: Duration, lease: Duration) -> Result<(), String> {
    let needed = (deadline + lease).saturating_mul(HOLD_MARGIN);
    if hold >= needed {
        return Ok(());
    }
    Err(format!(
        "inventory.reservation_ttl_secs ({} s) must be at least {HOLD_MARGIN} × (orders.saga.deadline_secs + orders.saga.lease_ms) = {} s, so a hold outlives every checkout: raise it, or lower the deadline",
        hold.as_secs(),
        needed.as_secs_f64().ceil()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_a_hold_too_short_is_refused_naming_the_keys() {
        assert!(check(&Env::from_pairs(Vec::<(String, String)>::new())).is_ok());
        let env = Env::from_pairs([
            ("SOUK_INVENTORY__RESERVATION_TTL_SECS", "100"),
            ("SOUK_ORDERS__SAGA__DEADLINE_SECS", "45"),
            ("SOUK_ORDERS__SAGA__LEASE_MS", "10000"),
        ]);
        let err = check(&env).unwrap_err();
        assert!(
            err.contains("inventory.reservation_ttl_secs (100 s)"),
            "{err}"
        );
        assert!(err.contains("110 s"), "{err}");
        let env = Env::from_pairs([
            ("SOUK_INVENTORY__RESERVATION_TTL_SECS", "110"),
            ("SOUK_ORDERS__SAGA__DEADLINE_SECS", "45"),
            ("SOUK_ORDERS__SAGA__LEASE_MS", "10000"),
        ]);
        assert!(check(&env).is_ok());
    }
}
