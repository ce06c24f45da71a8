//! Identity's own binary, what its container image runs. `souk serve identity` does the same.
//!
//! `souk-identity` serves; `souk-identity openapi` prints the OpenAPI document.

fn main() -> std::process::ExitCode {
    souk_chassis::service::main::<souk_identity::Service>()
}
