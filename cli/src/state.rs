//! `<data dir>/souk.json`: where a running `souk up` can be reached, for `souk status` and
//! `souk scale`, and so that a second `souk up` on the same data refuses to start; and
//! `<data dir>/admin-token`, the bearer secret of this run's gateway admin API and supervisor
//! control API, made per run. Both are `0600` in a `0700` data dir: addresses are no secret, but
//! only the shop's owner may hold the token (a local user who could call the admin API could
//! repoint identity at their own listener).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a running `souk up` publishes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    /// The supervisor's process id.
    pub(crate) pid: u32,
    /// The supervisor's control API (loopback); none for `souk monolith`, which has no processes
    /// to scale.
    pub(crate) control: Option<SocketAddr>,
    /// The gateway's public listener.
    pub(crate) gateway: SocketAddr,
    /// The gateway's admin listener (wants the token).
    pub(crate) admin: SocketAddr,
    /// The gateway's read-only listener: the service map and metrics, no token.
    #[serde(default)]
    pub(crate) metrics: Option<SocketAddr>,
    /// The admin token, read from its own file (never written into `souk.json`).
    #[serde(skip)]
    pub(crate) token: String,
}

/// The state file of `data_dir`.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("souk.json")
}

/// The admin token's file in `data_dir`.
pub(crate) fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

impl State {
    /// Reads the state of the `souk up` running on `data_dir`, if one is, with its token.
    pub(crate) fn read(data_dir: &Path) -> Result<Self, String> {
        let file = path(data_dir);
        let text = std::fs::read_to_string(&file).map_err(|_| {
            format!(
                "no souk is running on {} (no {}): start one with `souk up`",
                data_dir.display(),
                file.display()
            )
        })?;
        let mut state: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{} is damaged ({e}): remove it", file.display()))?;
        if !alive(state.pid) {
            return Err(format!(
                "the souk that wrote {} (pid {}) is gone: remove the file",
                file.display(),
                state.pid
            ));
        }
        let token_file = token_path(data_dir);
        state.token = std::fs::read_to_string(&token_file)
            .map_err(|e| {
                format!(
                    "cannot read the admin token {} ({e}): run this as the user who started the shop",
                    token_file.display()
                )
            })?
            .trim()
            .to_owned();
        Ok(state)
    }

    /// Publishes this state (the token was written before the gateway started: see
    /// [`write_token`]).
    pub(crate) fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        souk_chassis::private::write(&path(data_dir), text.as_bytes())
    }

    /// A client that sends this run's admin token with every request (to the gateway's admin
    /// API and the supervisor's control API).
    pub(crate) fn client(&self, timeout: Duration) -> Result<reqwest::Client, String> {
        authorized_client(&self.token, timeout)
    }
}

/// Writes this run's admin token, `0600`.
pub(crate) fn write_token(data_dir: &Path, token: &str) -> std::io::Result<()> {
    souk_chassis::private::write(&token_path(data_dir), format!("{token}\n").as_bytes())
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub(crate) fn authorized_client(token: &str, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|e| format!("the admin token is not a header value: {e}"))?;
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .build()
        .map_err(|e| e.to_string())
}

/// Whether a process with this id exists (signal 0 checks without sending anything).
pub(crate) fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}
