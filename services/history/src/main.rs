//! History's own binary, what its container image runs. `souk serve history` does the same.
//!
//! `souk-history` serves; `souk-history openapi` prints the OpenAPI document.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", souk_history::ApiDoc::json());
        return ExitCode::SUCCESS;
    }
    souk_chassis::server::run_main(souk_history::NAME, |env| async move {
        souk_history::serve_from_env(&env).await
    })
}
