//! The catalog's own binary, what its container image runs. `souk serve catalog` does the same.
//!
//! `souk-catalog` serves; `souk-catalog openapi` prints the OpenAPI document.

fn main() -> std::process::ExitCode {
    souk_chassis::service::main::<souk_catalog::Service>()
}
