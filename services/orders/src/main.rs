//! Orders' own binary, what its container image runs. `souk serve orders` does the same.
//!
//! `souk-orders` serves; `souk-orders openapi` prints the OpenAPI document.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", souk_orders::ApiDoc::json());
        return ExitCode::SUCCESS;
    }
    souk_chassis::server::run_main(souk_orders::NAME, |env| async move {
        souk_orders::serve_from_env(&env).await
    })
}
