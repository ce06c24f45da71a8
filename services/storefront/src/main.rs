//! The storefront's own binary, what its container image runs. `souk serve storefront` does the same.

use std::process::ExitCode;

fn main() -> ExitCode {
    souk_chassis::server::run_main(souk_storefront::NAME, |env| async move {
        souk_storefront::serve_from_env(&env).await
    })
}
