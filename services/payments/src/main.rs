//! Payments's own binary, what its container image runs. `souk serve payments` does the same.
//!
//! `souk-payments` serves; `souk-payments openapi` prints the OpenAPI document.

fn main() -> std::process::ExitCode {
    souk_chassis::service::main::<souk_payments::Service>()
}
