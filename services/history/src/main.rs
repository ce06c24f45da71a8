//! History's own binary, what its container image runs. `souk serve history` does the same.
//!
//! `souk-history` serves; `souk-history openapi` prints the OpenAPI document.

fn main() -> std::process::ExitCode {
    souk_chassis::service::main::<souk_history::Service>()
}
