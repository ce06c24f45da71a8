//! Identity's own binary, what its container image runs. `souk serve identity` does the same.
//!
//! `souk-identity` serves; `souk-identity openapi` prints the OpenAPI document.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", souk_identity::ApiDoc::json());
        return ExitCode::SUCCESS;
    }
    souk_chassis::server::run_main(souk_identity::NAME, |env| async move {
        souk_identity::serve_from_env(&env).await
    })
}
