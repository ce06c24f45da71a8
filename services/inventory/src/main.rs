//! Inventory's own binary, what its container image runs.
//!
//! `souk-inventory` serves; `souk-inventory openapi` prints the OpenAPI document.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", souk_inventory::ApiDoc::json());
        return ExitCode::SUCCESS;
    }
    souk_chassis::server::run_main(souk_inventory::NAME, |env| async move {
        souk_inventory::serve_from_env(&env).await
    })
}
