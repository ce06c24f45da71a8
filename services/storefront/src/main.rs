//! The storefront's own binary, what its container image runs. `souk serve storefront` does the same.
//!
//! `souk-storefront` serves; `souk-storefront openapi` prints the OpenAPI document.

fn main() -> std::process::ExitCode {
    souk_chassis::service::main::<souk_storefront::Service>()
}
