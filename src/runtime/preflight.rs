//! What a valid config still needs from the machine rinit runs on, checked
//! before anything starts and again before a reload applies a file: a
//! `/bin/sh` for string commands, and the right to switch to each `user`.

use std::path::Path;

use crate::config::Config;

/// Both checks; Err is the message (the start or the reload is refused).
pub fn check(cfg: &Config) -> Result<(), String> {
    check_identities(cfg).and_then(|()| check_shell(cfg))
}

/// A string command runs under /bin/sh: refuse to start when the image
/// has none, rather than crash-looping every such service.
fn check_shell(cfg: &Config) -> Result<(), String> {
    let shell_users: Vec<&str> = cfg
        .services
        .iter()
        .filter(|s| matches!(s.command, crate::config::CommandLine::Shell(_)))
        .map(|s| s.name.as_str())
        .collect();
    if shell_users.is_empty() || Path::new("/bin/sh").exists() {
        return Ok(());
    }
    Err(format!(
        "{}: service(s) {} use a string command, which runs under /bin/sh, and this image has no /bin/sh; write the command as a list, e.g. [\"/app/server\", \"--port\", \"8080\"]",
        cfg.path.display(),
        shell_users.join(", ")
    ))
}

/// SPEC section 8: `user:` needs the right to switch identities. A
/// non-root rinit accepts only its own uid and gid there (and then starts
/// the service without switching: see `runtime`), unless the config says
/// `user_when_not_root: rinit`, for images that must also run under
/// `docker run --user` or OpenShift's arbitrary uids.
fn check_identities(cfg: &Config) -> Result<(), String> {
    let (euid, egid) = (crate::os::sys::euid(), crate::os::sys::egid());
    if euid == 0 {
        return Ok(());
    }
    let others: Vec<_> = cfg
        .services
        .iter()
        .filter_map(|s| {
            let id = s.user.as_ref()?;
            ((id.uid, id.gid) != (euid, egid)).then_some((s.name.as_str(), id))
        })
        .collect();
    let Some(&(first, id)) = others.first() else {
        return Ok(());
    };
    if cfg.runtime.user_fallback {
        let names: Vec<&str> = others.iter().map(|(name, _)| *name).collect();
        log::warn!(
            "not root: running {} as {euid}:{egid} (rinit's own uid:gid) instead of their `user` (user_when_not_root: rinit)",
            names.join(", ")
        );
        return Ok(());
    }
    Err(format!(
        "{}: service '{first}' has user {}:{} but rinit runs as {euid}:{egid} and cannot switch users; run rinit as root, drop `user:`, or set `user_when_not_root: rinit` to run such services as rinit's own user",
        cfg.path.display(),
        id.uid,
        id.gid
    ))
}
