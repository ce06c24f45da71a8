//! The cart's own binary, what its container image runs. `souk serve cart` does the same.
//!
//! `souk-cart` serves; `souk-cart openapi` prints the OpenAPI document.

fn main() -> std::process::ExitCode {
    souk_chassis::service::main::<souk_cart::Service>()
}
