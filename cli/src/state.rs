//! `<data dir>/souk.json`: where a running `souk up` can be reached, for `souk status` and
//! `souk scale`, and so that a second `souk up` on the same data refuses to start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// The gateway's admin listener.
    pub(crate) admin: SocketAddr,
}

/// The state file of `data_dir`.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("souk.json")
}

impl State {
    /// Reads the state of the `souk up` running on `data_dir`, if one is.
    pub(crate) fn read(data_dir: &Path) -> Result<Self, String> {
        let file = path(data_dir);
        let text = std::fs::read_to_string(&file).map_err(|_| {
            format!(
                "no souk is running on {} (no {}): start one with `souk up`",
                data_dir.display(),
                file.display()
            )
        })?;
        let state: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{} is damaged ({e}): remove it", file.display()))?;
        if !alive(state.pid) {
            return Err(format!(
                "the souk that wrote {} (pid {}) is gone: remove the file",
                file.display(),
                state.pid
            ));
        }
        Ok(state)
    }

    /// Publishes this state.
    pub(crate) fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path(data_dir), text)
    }
}

/// Whether a process with this id exists (signal 0 checks without sending anything).
pub(crate) fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}
