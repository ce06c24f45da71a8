//! Inventory's own binary, what its container image runs. `souk serve inventory` does the same.
//!
//! `souk-inventory` serves; `souk-inventory openapi` prints the OpenAPI document.

fn main() -> std::process::ExitCode {
    souk_chassis::service::main::<souk_inventory::Service>()
}
