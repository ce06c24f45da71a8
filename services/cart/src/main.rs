//! The cart's own binary, what its container image runs. `souk serve cart` will do the same.
//!
//! `souk-cart` serves; `souk-cart openapi` prints the OpenAPI document.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", souk_cart::ApiDoc::json());
        return ExitCode::SUCCESS;
    }
    souk_chassis::server::run_main(souk_cart::NAME, |env| async move {
        souk_cart::serve_from_env(&env).await
    })
}
