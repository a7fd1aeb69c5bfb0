//! Starting a process: everything is prepared before the fork (argv, envp,
//! the resolved executable, stdio pipes), the fork and exec happen in
//! `sys::fork_exec`, and the result says whether exec succeeded. Nobody
//! here waits for the child: the reaper reaps every process, including one
//! whose exec failed.

use std::ffi::{c_char, CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::sys::{
    self, ChildFailure, ChildSetup, ChildStep, ForkResult, KernelRlimit, ResourceLimit,
};
use crate::config::{Hardening, Identity, Rlimit};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// setsid: own session and process group (services, probes).
    NewSession,
    /// Own process group in rinit's session, and the terminal's
    /// foreground group when stdin is a terminal (the main command).
    Foreground,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdio {
    Inherit,
    /// stdout and stderr go to pipes that the caller relays.
    Pipes,
    /// stdout to /dev/null, stderr inherited (probes).
    QuietStdout,
}

pub struct Launch<'a> {
    pub argv: &'a [OsString],
    /// `KEY=VALUE` entries, byte for byte.
    pub env: &'a [OsString],
    pub workdir: Option<&'a Path>,
    pub identity: Option<&'a Identity>,
    pub group: Group,
    pub stdio: Stdio,
    pub keep_fds: &'a [RawFd],
    /// `ready: {fd: N}`: (the write end of the readiness pipe, N).
    pub ready_fd: Option<(RawFd, RawFd)>,
    /// umask, rlimits, no_new_privs; `None` keeps rinit's own.
    pub hardening: Option<&'a Hardening>,
}

pub struct Started {
    pub pid: i32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

pub enum Outcome {
    Started(Started),
    /// The child was forked but could not exec; it exits with `code` and
    /// the reaper will reap it.
    ExecFailed {
        pid: i32,
        code: i32,
        error: String,
    },
    /// Nothing was forked.
    NotStarted {
        code: i32,
        error: String,
    },
}

pub fn spawn(l: &Launch) -> Outcome {
    let Some(program) = l.argv.first() else {
        return not_started(127, "empty command".into());
    };
    let who = Who::of(l.identity);
    let path = match resolve(program, l.env, l.workdir, &who) {
        Ok(p) => p,
        Err((code, why)) => {
            return not_started(code, format!("{}: {why}", program.to_string_lossy()))
        }
    };
    let (Some(path), Some(argv), Some(envp)) =
        (cstring(path.as_os_str()), cstrings(l.argv), cstrings(l.env))
    else {
        return not_started(126, "an argument or variable contains a NUL byte".into());
    };
    let workdir = match l.workdir.map(|w| cstring(w.as_os_str())) {
        Some(None) => return not_started(126, "workdir contains a NUL byte".into()),
        other => other.flatten(),
    };
    let (pipes, stdio) = match make_stdio(l.stdio) {
        Ok(x) => x,
        Err(e) => return not_started(126, format!("cannot create pipes: {e}")),
    };
    let argv_ptrs = pointers(&argv);
    let envp_ptrs = pointers(&envp);
    let groups: Vec<libc::gid_t> = l.identity.map(|i| i.groups.clone()).unwrap_or_default();
    let hardening = l.hardening.cloned().unwrap_or_default();
    let rlimits: Vec<ResourceLimit> = hardening.rlimits.iter().map(complete).collect();
    let setup = ChildSetup {
        path: &path,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        workdir: workdir.as_deref(),
        identity: l.identity.map(|i| (i.uid, i.gid, groups.as_slice())),
        new_session: l.group == Group::NewSession,
        foreground: l.group == Group::Foreground && sys::isatty(0),
        stdio,
        keep_fds: l.keep_fds,
        ready_fd: l.ready_fd,
        umask: hardening.umask,
        rlimits: &rlimits,
        no_new_privs: hardening.no_new_privs,
    };
    let result = sys::fork_exec(&setup);
    let Pipes { out_rd, err_rd, .. } = pipes;
    match result {
        Ok(ForkResult::Started(pid)) => Outcome::Started(Started {
            pid,
            stdout: out_rd,
            stderr: err_rd,
        }),
        Ok(ForkResult::Failed(pid, f)) => Outcome::ExecFailed {
            pid,
            code: if f.step == ChildStep::Exec && f.errno == libc::ENOENT {
                127
            } else {
                126
            },
            error: describe_failure(program, l.workdir, f),
        },
        Err(e) => not_started(
            126,
            format!("fork failed: {}", std::io::Error::from_raw_os_error(e)),
        ),
    }
}

/// A limit with both halves, before the fork: a half the config left out
/// is rinit's own value (which the child would inherit), moved as little
/// as needed to keep soft <= hard.
fn complete(rl: &Rlimit) -> ResourceLimit {
    let own = sys::get_rlimit(rl.resource).unwrap_or(KernelRlimit {
        cur: crate::config::UNLIMITED,
        max: crate::config::UNLIMITED,
    });
    let limit = match (rl.soft, rl.hard) {
        (Some(cur), Some(max)) => KernelRlimit { cur, max },
        (Some(cur), None) => KernelRlimit {
            cur,
            max: own.max.max(cur),
        },
        (None, Some(max)) => KernelRlimit {
            cur: own.cur.min(max),
            max,
        },
        (None, None) => own,
    };
    ResourceLimit {
        resource: rl.resource,
        limit,
    }
}

fn not_started(code: i32, error: String) -> Outcome {
    Outcome::NotStarted { code, error }
}

fn describe_failure(program: &OsStr, workdir: Option<&Path>, f: ChildFailure) -> String {
    let err = std::io::Error::from_raw_os_error(f.errno);
    let name = program.to_string_lossy();
    match f.step {
        ChildStep::Exec => format!("cannot execute {name}: {err}"),
        ChildStep::Workdir => format!(
            "cannot enter workdir {}: {err}",
            workdir.map(|w| w.display().to_string()).unwrap_or_default()
        ),
        ChildStep::Groups | ChildStep::Gid | ChildStep::Uid => {
            format!("cannot switch user for {name} ({:?}): {err}", f.step)
        }
        ChildStep::Rlimit => format!("cannot set the rlimits of {name}: {err}"),
        ChildStep::NoNewPrivs => format!("cannot set no_new_privs for {name}: {err}"),
        ChildStep::Session | ChildStep::Stdio => {
            format!("cannot set up {name} ({:?}): {err}", f.step)
        }
    }
}

/// execvp's search, done before the fork: a name with a slash is used as
/// is; otherwise the first file of that name on the child's PATH that the
/// child's user may execute. A relative PATH entry (or an empty one, which
/// means `.`) is taken from the child's working directory, where the
/// child's execvp would look, not from rinit's. Err((127, ..)) when there
/// is none, (126, ..) when only files it may not execute were found.
pub fn resolve(
    program: &OsStr,
    env: &[OsString],
    workdir: Option<&Path>,
    who: &Who,
) -> Result<PathBuf, (i32, &'static str)> {
    if program.is_empty() {
        return Err((127, "empty command name"));
    }
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .map(OsStr::from_bytes)
        .unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut saw_non_executable = false;
    for dir in std::env::split_paths(path_var) {
        let dir = match (dir.is_absolute(), workdir) {
            (true, _) => dir,
            (false, Some(base)) => base.join(dir),
            // No workdir: rinit's own, which is also the child's.
            (false, None) if dir.as_os_str().is_empty() => PathBuf::from("."),
            (false, None) => dir,
        };
        let candidate = dir.join(program);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && who.may_execute(&m) => return Ok(candidate),
            Ok(_) => saw_non_executable = true,
            Err(_) => {}
        }
    }
    if saw_non_executable {
        Err((126, "permission denied (not executable)"))
    } else {
        Err((127, "command not found"))
    }
}

/// The identity a child will exec with: the service's `user`, or rinit's
/// own. The exec bit is checked for it from the file's mode and owner
/// (`access(2)` would answer for rinit's uid, not the service's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Who {
    pub fn of(identity: Option<&Identity>) -> Who {
        match identity {
            Some(id) => Who {
                uid: id.uid,
                gid: id.gid,
                groups: id.groups.clone(),
            },
            None => Who {
                uid: sys::euid(),
                gid: sys::egid(),
                groups: nix::unistd::getgroups()
                    .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                    .unwrap_or_default(),
            },
        }
    }

    /// Whether execve would pass the permission check (mode bits only; no
    /// ACLs or capabilities beyond root's): root needs any x bit, others
    /// the x bit of the class they fall in (owner, then group, then other).
    pub fn may_execute(&self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        if self.uid == 0 {
            return mode & 0o111 != 0;
        }
        let bit = if meta.uid() == self.uid {
            0o100
        } else if meta.gid() == self.gid || self.groups.contains(&meta.gid()) {
            0o010
        } else {
            0o001
        };
        mode & bit != 0
    }
}

struct Pipes {
    out_rd: Option<OwnedFd>,
    err_rd: Option<OwnedFd>,
    _keep: Vec<OwnedFd>,
}

/// Pipes (or /dev/null) for the child's stdio; write ends are closed when
/// `Pipes` is dropped after the fork.
fn make_stdio(mode: Stdio) -> std::io::Result<(Pipes, [RawFd; 3])> {
    let mut pipes = Pipes {
        out_rd: None,
        err_rd: None,
        _keep: Vec::new(),
    };
    let mut stdio = [-1; 3];
    match mode {
        Stdio::Inherit => {}
        Stdio::Pipes => {
            let (or, ow) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            let (er, ew) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            stdio[1] = ow.as_raw_fd();
            stdio[2] = ew.as_raw_fd();
            pipes.out_rd = Some(or);
            pipes.err_rd = Some(er);
            pipes._keep = vec![ow, ew];
        }
        Stdio::QuietStdout => {
            let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
            let fd: OwnedFd = null.into();
            stdio[1] = fd.as_raw_fd();
            pipes._keep = vec![fd];
        }
    }
    Ok((pipes, stdio))
}

fn cstring(s: &OsStr) -> Option<CString> {
    CString::new(s.as_bytes()).ok()
}

fn cstrings(items: &[OsString]) -> Option<Vec<CString>> {
    items
        .iter()
        .map(|s| CString::new(s.clone().into_vec()).ok())
        .collect()
}

fn pointers(items: &[CString]) -> Vec<*const c_char> {
    items
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root() -> Who {
        Who {
            uid: 0,
            gid: 0,
            groups: vec![0],
        }
    }

    #[test]
    fn resolves_like_execvp() {
        let env = vec![OsString::from("PATH=/nonexistent:/bin:/usr/bin")];
        assert!(resolve(OsStr::new("sh"), &env, None, &root()).is_ok());
        assert_eq!(
            resolve(OsStr::new("no-such-cmd-xyz"), &env, None, &root()),
            Err((127, "command not found"))
        );
        let x = resolve(OsStr::new("./x"), &env, None, &root());
        assert_eq!(x, Ok(PathBuf::from("./x")));
        let env = vec![OsString::from("PATH=/etc")];
        let passwd = resolve(OsStr::new("passwd"), &env, None, &root());
        assert_eq!(passwd.map_err(|e| e.0), Err(126));
    }

    /// A directory with `bin/prog` of the given mode, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str, mode: u32) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("rinit-spawn-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(dir.join("bin")).unwrap();
            let prog = dir.join("bin/prog");
            std::fs::write(&prog, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(mode)).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn owner_of(path: &Path) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).unwrap();
        (m.uid(), m.gid())
    }

    #[test]
    fn the_exec_bit_is_checked_for_the_services_user() {
        let dir = Scratch::new("mode", 0o710);
        let env = vec![OsString::from(format!("PATH={}/bin", dir.0.display()))];
        let (uid, gid) = owner_of(&dir.0.join("bin/prog"));
        let stranger = Who {
            uid: uid.wrapping_add(4242),
            gid: gid.wrapping_add(4242),
            groups: vec![gid.wrapping_add(4242)],
        };
        let prog = OsStr::new("prog");
        // Owner and group may run it, anyone else may not (0o710).
        let owner = Who {
            uid,
            gid: stranger.gid,
            groups: vec![],
        };
        assert!(resolve(prog, &env, None, &owner).is_ok());
        let member = Who {
            groups: vec![gid],
            ..stranger.clone()
        };
        assert!(resolve(prog, &env, None, &member).is_ok());
        assert_eq!(
            resolve(prog, &env, None, &stranger).map_err(|e| e.0),
            Err(126)
        );
        // Root needs one x bit anywhere; none at all is not executable.
        assert!(resolve(prog, &env, None, &root()).is_ok());
        let bare = Scratch::new("bare", 0o644);
        let env = vec![OsString::from(format!("PATH={}/bin", bare.0.display()))];
        assert_eq!(
            resolve(prog, &env, None, &root()).map_err(|e| e.0),
            Err(126)
        );
    }

    #[test]
    fn relative_path_entries_start_at_the_services_workdir() {
        let dir = Scratch::new("relative", 0o755);
        let prog = OsStr::new("prog");
        let env = vec![OsString::from("PATH=/nonexistent:bin")];
        let found = resolve(prog, &env, Some(&dir.0), &root());
        assert_eq!(found, Ok(dir.0.join("bin/prog")));
        // An empty entry is `.`: the workdir itself.
        let env = vec![OsString::from("PATH=:/nonexistent")];
        let here = resolve(prog, &env, Some(&dir.0.join("bin")), &root());
        assert_eq!(here, Ok(dir.0.join("bin/prog")));
    }
}
