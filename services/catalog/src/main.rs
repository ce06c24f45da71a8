//! The catalog's own binary, what its container image runs. `souk serve catalog` does the same.
//!
//! `souk-catalog` serves; `souk-catalog openapi` prints the OpenAPI document.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", souk_catalog::ApiDoc::json());
        return ExitCode::SUCCESS;
    }
    souk_chassis::server::run_main(souk_catalog::NAME, |env| async move {
        souk_catalog::serve_from_env(&env).await
    })
}
