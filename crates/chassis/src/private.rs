//! Files and folders only their owner may read: data dirs `0700`, files `0600`.
//!
//! A shop's data dir holds databases (password hashes, sealed keys, card tokens), logs and
//! secrets. Another user of the same machine must not read any of it, whatever the umask of the
//! shell that started the shop, so everything souk creates for itself goes through here, and
//! what an older version left readable is tightened when it is opened again.

use std::io::Write;
use std::path::Path;

/// Creates `dir` and its missing parents; `dir` itself ends up `0700` (tightened if it existed).
/// Parents that existed keep their mode: they are not ours.
pub fn dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)
}

/// Makes `file` `0600` if it exists (a file an earlier version created with the umask's mode).
pub fn tighten(file: &Path) -> std::io::Result<()> {
    match std::fs::metadata(file) {
        Ok(_) => set_mode(file, 0o600),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Writes `contents` to `file`, which is `0600` from the moment it exists (never briefly
/// readable by others), replacing what was there.
pub fn write(file: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options.open(file)?;
    set_mode(file, 0o600)?;
    handle.write_all(contents)?;
    handle.sync_all()
}

/// Creates `file` empty and `0600` if it does not exist; tightens it if it does.
pub fn touch(file: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file)?;
    set_mode(file, 0o600)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn dirs_are_0700_and_files_0600_even_when_they_existed_readable() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a/b/.souk");
        dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700, "an existing readable dir is tightened");

        let secret = data.join("secret");
        write(&secret, b"one").unwrap();
        assert_eq!(mode(&secret), 0o600);
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&secret, b"two").unwrap();
        assert_eq!(
            (mode(&secret), std::fs::read(&secret).unwrap()),
            (0o600, b"two".to_vec())
        );

        let old = data.join("old.db");
        std::fs::write(&old, b"x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o664)).unwrap();
        tighten(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        tighten(&data.join("missing")).unwrap();
        touch(&data.join("new.db")).unwrap();
        assert_eq!(mode(&data.join("new.db")), 0o600);
    }
}
