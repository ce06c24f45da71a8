//! Payments' own binary, what its container image runs. `souk serve payments` does the same.
//!
//! `souk-payments` serves; `souk-payments openapi` prints the OpenAPI document.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", souk_payments::ApiDoc::json());
        return ExitCode::SUCCESS;
    }
    souk_chassis::server::run_main(souk_payments::NAME, |env| async move {
        souk_payments::serve_from_env(&env).await
    })
}
