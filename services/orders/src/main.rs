//! Orders's own binary, what its container image runs. `souk serve orders` does the same.
//!
//! `souk-orders` serves; `souk-orders openapi` prints the OpenAPI document.

fn main() -> std::process::ExitCode {
    souk_chassis::service::main::<souk_orders::Service>()
}
