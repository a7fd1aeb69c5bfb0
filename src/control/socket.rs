//! Where the control socket lives and how it is set up (SPEC section 10):
//! `<runtime_dir>` (mode 0755) holds `control.sock` (mode 0666: who may do
//! what is decided by the caller's credentials). A stale socket that
//! nothing listens on is replaced; one a live rinit holds is left alone.
//! Any failure is a warning naming the fix, and rinit runs without control.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

pub const DEFAULT_RUNTIME_DIR: &str = "/run/rinit";
pub const SOCKET_NAME: &str = "control.sock";

/// `$RINIT_RUNTIME_DIR`, when set and not empty (it wins over the config's
/// `runtime_dir`).
pub fn env_runtime_dir() -> Option<PathBuf> {
    std::env::var_os("RINIT_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// `<runtime_dir>/control.sock`, `runtime_dir` defaulting to /run/rinit.
pub fn default_path(runtime_dir: Option<&Path>) -> PathBuf {
    runtime_dir
        .unwrap_or(Path::new(DEFAULT_RUNTIME_DIR))
        .join(SOCKET_NAME)
}

/// Binds the control socket at `path`; Err is the warning to log.
pub fn open(path: &Path) -> Result<UnixListener, String> {
    let fix = "give the container a writable /run (docker run --tmpfs /run, a Kubernetes emptyDir), or point `control.socket` / --control elsewhere, or --control off";
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}; {fix}", dir.display()))?;
        }
    }
    clear_stale(path)?;
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}; {fix}", path.display()))?;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)) {
        log::warn!("control: cannot make {} 0666: {e}", path.display());
    }
    Ok(listener)
}

/// Removes a socket file nothing listens on; refuses to touch a live one or
/// a file that is not a socket.
fn clear_stale(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot look at {}: {e}", path.display())),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{} exists and is not a socket; remove it or choose another control socket",
            path.display()
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(format!(
            "another rinit is serving {}; this one runs without control",
            path.display()
        ));
    }
    std::fs::remove_file(path).map_err(|e| format!("cannot replace stale {}: {e}", path.display()))
}

/// Removes the socket at exit (a failure only means a stale file, which
/// the next rinit replaces).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_stale_socket_and_refuses_a_live_one() {
        let dir = std::env::temp_dir().join(format!("rinit-sock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join(SOCKET_NAME);
        let live = open(&path).expect("first bind");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        assert!(open(&path).unwrap_err().contains("another rinit"));
        drop(live); // the file stays behind, as after a kill -9
        assert!(path.exists());
        let again = open(&path).expect("stale socket replaced");
        drop(again);
        std::fs::write(dir.join("plain"), b"x").unwrap();
        assert!(open(&dir.join("plain"))
            .unwrap_err()
            .contains("not a socket"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
