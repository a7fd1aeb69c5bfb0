//! Shared harness for rinit's end-to-end tests: run the built binary (or any
//! program) as PID 1 of a fresh PID namespace, or as a plain child of the
//! test (then rinit is a subreaper), and look at it from the outside.
//!
//! Use it from a test file with `mod common;` and pass the binary under
//! test explicitly (`env!("CARGO_BIN_EXE_rinit")` only exists in
//! integration-test crates, so the harness never names it itself):
//!
//! ```ignore
//! let dir = TestDir::new("exit-code");
//! let Some(mut h) = Launch::new(RINIT).args(["--", "sh", "-c", "exit 3"]).start_pid1(&dir)
//! else { return }; // no PID namespace possible here: skipped (reason printed)
//! assert_eq!(h.expect_exit(Duration::from_secs(10)), 3);
//! ```
//!
//! Rules the harness enforces or helps with:
//! - Every wait is bounded: `wait_for` polls a condition in small steps up to
//!   a deadline; it is the only kind of waiting tests should do (no bare
//!   sleeps as synchronisation).
//! - Cleanup is by pid: dropping an [`Instance`] SIGKILLs rinit (as PID 1 that
//!   kills its whole namespace), every process still below the process the
//!   harness spawned, and reaps that process. Declare the [`TestDir`] before
//!   the `Instance` so the instance is dropped (killed) first.
//! - PID namespaces: `unshare --pid --fork --mount-proc` as root, else
//!   `unshare --user --map-root-user --pid --fork --mount-proc`; the working
//!   variant is probed once per test binary and cached. If neither works,
//!   `start_pid1` prints why and returns `None` so the test can skip.
//! - Files written by commands under test should end with a newline and, when
//!   a partial read would matter, be written to a temp name and renamed;
//!   [`TestDir::wait_line`] waits for a complete (newline-terminated) file.
//! - rinit's own configuration variables (`RINIT_*`) are removed from the
//!   inherited environment so the caller's shell cannot change a test.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long `start_pid1` / `start_subreaper` wait to find rinit's pid.
const FIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Variables that configure rinit; never inherited from the test's caller.
const RINIT_VARS: [&str; 4] = [
    "RINIT_CONFIG",
    "RINIT_GRACE",
    "RINIT_LOG",
    "RINIT_HEALTH_ADDR",
];

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// Polls `cond` every few milliseconds (1 ms at first, backing off to 20 ms)
/// until it is true (returns true) or `within` has passed (returns false).
/// The only kind of waiting tests should do.
pub fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    let mut step = Duration::from_millis(1);
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep(step.min(end - now));
        step = (step * 2).min(Duration::from_millis(20));
    }
}

/// `wait_for` for a value: polls `f` until it returns `Some`.
pub fn wait_for_some<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let mut out = None;
    wait_for(within, || {
        out = f();
        out.is_some()
    });
    out
}

/// A shell-style exit code: the exit code, or 128 + N when killed by
/// signal N.
pub fn code_of(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    }
}

// ---------------------------------------------------------------------------
// Temp directories
// ---------------------------------------------------------------------------

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under `std::env::temp_dir()`, unique per test (tag,
/// test-process pid and a counter), removed when dropped.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rinit-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test dir");
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`, as a String for embedding in shell scripts (test dirs
    /// are plain ASCII without spaces).
    pub fn file(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path.join(name).exists()
    }

    /// The file's text (lossy UTF-8), or None if it cannot be read.
    pub fn read(&self, name: &str) -> Option<String> {
        self.read_bytes(name)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    pub fn read_bytes(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path.join(name)).ok()
    }

    pub fn write(&self, name: &str, content: &[u8]) {
        std::fs::write(self.path.join(name), content).expect("write test file");
    }

    /// Waits until the file exists and ends with a newline; its text.
    pub fn wait_line(&self, name: &str, within: Duration) -> Option<String> {
        wait_for_some(within, || self.read(name).filter(|t| t.ends_with('\n')))
    }

    /// Waits until the file contains `needle`; true if it did in time.
    pub fn wait_contains(&self, name: &str, needle: &str, within: Duration) -> bool {
        wait_for(within, || {
            self.read(name).is_some_and(|t| t.contains(needle))
        })
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------

/// The absolute path of `name` on the test's PATH (so that a command whose
/// environment is cleared can still be found), or `name` itself.
pub fn find_program(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A real python3 executable (not a pyenv-style shim script, which needs
/// its environment): /usr/bin/python3 when present, else the one on PATH.
pub fn python3() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let sys = PathBuf::from("/usr/bin/python3");
        if sys.is_file() {
            return sys;
        }
        let out = Command::new(find_program("python3"))
            .args(["-c", "import sys; print(sys.executable)"])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            _ => find_program("python3"),
        }
    })
    .clone()
}

// ---------------------------------------------------------------------------
// PID namespaces: probed once
// ---------------------------------------------------------------------------

/// The command prefix that makes the next program PID 1 of a new PID
/// namespace, or the reason there is none on this machine.
pub fn pidns_prefix() -> Result<&'static [OsString], &'static str> {
    static PREFIX: OnceLock<Result<Vec<OsString>, String>> = OnceLock::new();
    PREFIX
        .get_or_init(probe_pidns)
        .as_ref()
        .map(|v| v.as_slice())
        .map_err(|s| s.as_str())
}

fn probe_pidns() -> Result<Vec<OsString>, String> {
    let unshare = find_program("unshare");
    let plain = ["--pid", "--fork", "--mount-proc"];
    let user = [
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--mount-proc",
    ];
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let candidates: Vec<&[&str]> = if root {
        vec![&plain, &user]
    } else {
        vec![&user]
    };
    let mut why = Vec::new();
    for flags in candidates {
        let mut cmd = Command::new(&unshare);
        cmd.args(flags)
            .arg("/bin/sh")
            .args(["-c", "test $$ = 1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let Ok(mut child) = cmd.spawn() else {
            why.push(format!("cannot run {}", unshare.display()));
            continue;
        };
        let mut status = None;
        wait_for(Duration::from_secs(10), || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
        }
        let _ = child.wait();
        if status.is_some_and(|s| s.success()) {
            let mut v = vec![unshare.clone().into_os_string()];
            v.extend(flags.iter().map(OsString::from));
            return Ok(v);
        }
        why.push(format!("`unshare {}` failed", flags.join(" ")));
    }
    Err(why.join("; "))
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// One process as the host's /proc sees it (pids in the test's namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    /// `Name:` from status (the first 15 bytes of the command name).
    pub name: String,
    /// R, S, D, Z, T, ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// Foreground process group of the controlling terminal, -1 if none.
    pub tpgid: i32,
    /// The pid in every namespace from the outermost to its own (`NSpid:`).
    pub nspid: Vec<i32>,
}

impl ProcInfo {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Reads /proc/PID/stat and /proc/PID/status; None if it is gone.
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<i32>().ok());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    Some(ProcInfo {
        pid,
        name: field("Name:").unwrap_or_default(),
        state: f.first()?.chars().next()?,
        ppid: num(1)?,
        pgrp: num(2)?,
        session: num(3)?,
        tpgid: num(5)?,
        nspid: field("NSpid:")
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Every process on the host /proc.
pub fn all_processes() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter_map(proc_info)
        .collect()
}

/// Every process below `root` (children, their children, ...), from one
/// scan of /proc's parent links (this works without CONFIG_PROC_CHILDREN).
/// Zombies are included: they keep their parent until reaped.
pub fn descendants(root: i32) -> Vec<ProcInfo> {
    let mut by_parent: HashMap<i32, Vec<ProcInfo>> = HashMap::new();
    for p in all_processes() {
        by_parent.entry(p.ppid).or_default().push(p);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for p in by_parent.remove(&pid).unwrap_or_default() {
            todo.push(p.pid);
            out.push(p);
        }
    }
    out
}

/// The PID namespace of `pid` (`pid:[inode]`), None if it is gone.
pub fn pid_namespace(pid: i32) -> Option<OsString> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(PathBuf::into_os_string)
}

/// Every process in the same PID namespace as `pid` (itself included).
pub fn namespace_processes(pid: i32) -> Vec<ProcInfo> {
    let Some(ns) = pid_namespace(pid) else {
        return Vec::new();
    };
    all_processes()
        .into_iter()
        .filter(|p| pid_namespace(p.pid).as_ref() == Some(&ns))
        .collect()
}

/// Open fd numbers of `pid`.
pub fn open_fds(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    fds.sort_unstable();
    fds
}

/// tid -> voluntary_ctxt_switches for every thread of `pid`.
pub fn voluntary_switches(pid: i32) -> HashMap<i32, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        if let Some(n) = status.lines().find_map(|l| {
            l.strip_prefix("voluntary_ctxt_switches:")
                .and_then(|v| v.trim().parse().ok())
        }) {
            out.insert(tid, n);
        }
    }
    out
}

/// Sends `sig` to `pid`; false if that failed (e.g. ESRCH).
pub fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

// ---------------------------------------------------------------------------
// Launching
// ---------------------------------------------------------------------------

/// What the program's stdin is.
pub enum Input {
    /// /dev/null (the default).
    Null,
    /// A pipe the test holds: see [`Instance::write_stdin`],
    /// [`Instance::close_stdin`]. A command blocked reading it ends when the
    /// test closes it.
    Pipe,
    /// A descriptor the test prepared (e.g. a pty slave).
    Fd(OwnedFd),
}

/// A builder for one run of rinit (or of any program, for controls).
///
/// The spawned argv is `outer... [unshare flags...] inner... program args...`:
/// `wrap_outside` runs before the namespace exists (e.g. `setsid -c` to give
/// it a controlling terminal), `wrap_inside` runs as PID 1 and must exec the
/// program (e.g. to block signals before rinit starts). The pid the tests
/// talk to is the namespace's PID 1 (`start_pid1`) or the process running
/// `program` (`start_subreaper`).
pub struct Launch {
    program: PathBuf,
    args: Vec<OsString>,
    outer: Vec<OsString>,
    inner: Vec<OsString>,
    env_clear: bool,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Input,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    cwd: Option<PathBuf>,
}

impl Launch {
    pub fn new(program: impl AsRef<OsStr>) -> Launch {
        Launch {
            program: PathBuf::from(program.as_ref()),
            args: Vec::new(),
            outer: Vec::new(),
            inner: Vec::new(),
            env_clear: false,
            env: Vec::new(),
            stdin: Input::Null,
            stdout: None,
            stderr: None,
            cwd: None,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Launch {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Commands run before `unshare` (or before the program as subreaper).
    pub fn wrap_outside<I, S>(mut self, argv: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.outer
            .extend(argv.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Commands run inside the namespace, as PID 1, that exec the program.
    pub fn wrap_inside<I, S>(mut self, argv: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner
            .extend(argv.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Start from an empty environment (then add with `env`).
    pub fn env_clear(mut self) -> Launch {
        self.env_clear = true;
        self.env.clear();
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Launch {
        self.env.push((
            key.as_ref().to_os_string(),
            Some(value.as_ref().to_os_string()),
        ));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Launch {
        self.env.push((key.as_ref().to_os_string(), None));
        self
    }

    pub fn stdin(mut self, input: Input) -> Launch {
        self.stdin = input;
        self
    }

    /// Replace the captured stdout file with this descriptor (the
    /// instance's `stdout()` is then empty).
    pub fn stdout_fd(mut self, fd: OwnedFd) -> Launch {
        self.stdout = Some(fd);
        self
    }

    /// Replace the captured stderr file with this descriptor (the
    /// instance's `stderr()` is then empty).
    pub fn stderr_fd(mut self, fd: OwnedFd) -> Launch {
        self.stderr = Some(fd);
        self
    }

    /// The working directory rinit starts in.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Launch {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Runs the program as PID 1 of a new PID namespace. None (after
    /// printing why) when this machine cannot create one: skip the test.
    pub fn start_pid1(self, dir: &TestDir) -> Option<Instance> {
        match pidns_prefix() {
            Ok(prefix) => Some(self.spawn(dir, Some(prefix))),
            Err(why) => {
                eprintln!("skipped: cannot create a PID namespace here: {why}");
                None
            }
        }
    }

    /// Runs the program as a plain descendant of the test (rinit is then
    /// not PID 1 and makes itself a subreaper).
    pub fn start_subreaper(self, dir: &TestDir) -> Instance {
        self.spawn(dir, None)
    }

    fn spawn(self, dir: &TestDir, prefix: Option<&[OsString]>) -> Instance {
        static RUN_COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let out_path = dir.join(&format!("run{n}.stdout"));
        let err_path = dir.join(&format!("run{n}.stderr"));
        let mut argv: Vec<OsString> = self.outer.clone();
        argv.extend(prefix.unwrap_or_default().iter().cloned());
        argv.extend(self.inner.iter().cloned());
        argv.push(self.program.clone().into_os_string());
        argv.extend(self.args.iter().cloned());

        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if self.env_clear {
            cmd.env_clear();
        } else {
            for k in RINIT_VARS {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        let pipe_stdin = matches!(self.stdin, Input::Pipe);
        cmd.stdin(match self.stdin {
            Input::Null => Stdio::null(),
            Input::Pipe => Stdio::piped(),
            Input::Fd(fd) => Stdio::from(fd),
        });
        match self.stdout {
            Some(fd) => cmd.stdout(Stdio::from(fd)),
            None => cmd.stdout(File::create(&out_path).expect("stdout file")),
        };
        match self.stderr {
            Some(fd) => cmd.stderr(Stdio::from(fd)),
            None => cmd.stderr(File::create(&err_path).expect("stderr file")),
        };
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {:?}: {e}", argv[0]));
        let stdin = if pipe_stdin { child.stdin.take() } else { None };
        let mut inst = Instance {
            outer_pid: child.id() as i32,
            child,
            pid: None,
            pid1: prefix.is_some(),
            status: None,
            stdin,
            stdout_path: out_path,
            stderr_path: err_path,
        };
        inst.find_target(&self.program, !self.outer.is_empty());
        inst
    }
}

/// A running (or finished) rinit, seen from outside. Dropping it kills what
/// is left and reaps.
pub struct Instance {
    child: Child,
    outer_pid: i32,
    /// rinit's pid as the test sees it; None only if it exited before the
    /// harness could see it.
    pid: Option<i32>,
    pid1: bool,
    status: Option<ExitStatus>,
    stdin: Option<ChildStdin>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Instance {
    /// Finds rinit: in a namespace, the descendant whose innermost pid is 1;
    /// otherwise the spawned process itself, or (behind outer wrappers) the
    /// nearest descendant running `program`.
    fn find_target(&mut self, program: &Path, wrapped: bool) {
        if !self.pid1 && !wrapped {
            self.pid = Some(self.outer_pid);
            return;
        }
        let want_exe = std::fs::canonicalize(program).ok();
        let outer = self.outer_pid;
        let pid1 = self.pid1;
        let is_target = |p: &ProcInfo| {
            if pid1 {
                p.nspid.len() >= 2 && p.nspid.last() == Some(&1)
            } else {
                std::fs::read_link(format!("/proc/{}/exe", p.pid)).ok() == want_exe
            }
        };
        let mut found = None;
        wait_for(FIND_TIMEOUT, || {
            let mut candidates = proc_info(outer).into_iter().collect::<Vec<_>>();
            candidates.extend(descendants(outer));
            found = candidates.iter().find(|p| is_target(p)).map(|p| p.pid);
            found.is_some() || self.poll_exit().is_some()
        });
        if found.is_none() && self.status.is_none() {
            panic!(
                "rinit did not show up within {FIND_TIMEOUT:?}; stderr:\n{}",
                self.stderr()
            );
        }
        self.pid = found;
    }

    /// rinit's pid as seen from the test (not 1: the host's number).
    pub fn pid(&self) -> i32 {
        self.pid.expect("rinit exited before its pid was seen")
    }

    /// The process the harness spawned (unshare or an outer wrapper, or
    /// rinit itself as a plain subreaper).
    pub fn outer_pid(&self) -> i32 {
        self.outer_pid
    }

    pub fn is_pid1(&self) -> bool {
        self.pid1
    }

    /// Sends `sig` to rinit from outside. Panics once rinit has been reaped
    /// (its pid may have been reused).
    pub fn signal(&mut self, sig: i32) {
        assert!(
            self.poll_exit().is_none(),
            "signal {sig} to rinit, which already exited"
        );
        assert!(kill(self.pid(), sig), "kill({}, {sig}) failed", self.pid());
    }

    /// The exit status if it has exited (never blocks).
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `within` for the exit status of the spawned process
    /// (unshare passes rinit's exit code through).
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        wait_for(within, || self.poll_exit().is_some());
        self.status
    }

    /// The exit code (128+N if killed by signal N); panics with rinit's
    /// stderr if it did not exit within `within`.
    pub fn expect_exit(&mut self, within: Duration) -> i32 {
        match self.wait_exit(within) {
            Some(s) => code_of(s),
            None => panic!(
                "rinit did not exit within {within:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    pub fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is not Input::Pipe");
        stdin.write_all(data).expect("write to stdin");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout_bytes()).into_owned()
    }

    pub fn stdout_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// The processes rinit is responsible for, rinit excluded: as PID 1
    /// everything else in its namespace, otherwise its descendants.
    pub fn processes(&self) -> Vec<ProcInfo> {
        let pid = self.pid();
        if self.pid1 {
            namespace_processes(pid)
                .into_iter()
                .filter(|p| p.pid != pid)
                .collect()
        } else {
            descendants(pid)
        }
    }

    /// `processes()` in state Z (exited, not yet reaped).
    pub fn zombies(&self) -> Vec<ProcInfo> {
        self.processes()
            .into_iter()
            .filter(ProcInfo::is_zombie)
            .collect()
    }

    /// rinit's direct children (adopted orphans included).
    pub fn children(&self) -> Vec<ProcInfo> {
        let pid = self.pid();
        self.processes()
            .into_iter()
            .filter(|p| p.ppid == pid)
            .collect()
    }

    /// Waits for a process named `name` (as in /proc/PID/status) among
    /// `processes()`; its info.
    pub fn wait_process(&self, name: &str, within: Duration) -> Option<ProcInfo> {
        wait_for_some(within, || {
            self.processes()
                .into_iter()
                .find(|p| p.name == name && !p.is_zombie())
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stdin = None;
        if self.poll_exit().is_none() {
            let below = descendants(self.outer_pid);
            if let Some(pid) = self.pid {
                // As PID 1, this takes the whole namespace down.
                kill(pid, libc::SIGKILL);
            }
            for p in below.iter().rev() {
                kill(p.pid, libc::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Shortcuts
// ---------------------------------------------------------------------------

/// `rinit ARGS...` as PID 1 of a new namespace, stdin /dev/null.
pub fn run_as_pid1<I, S>(rinit: &str, dir: &TestDir, args: I) -> Option<Instance>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Launch::new(rinit).args(args).start_pid1(dir)
}

/// `rinit ARGS...` as a plain child of the test (a subreaper, not PID 1).
pub fn run_as_subreaper<I, S>(rinit: &str, dir: &TestDir, args: I) -> Instance
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Launch::new(rinit).args(args).start_subreaper(dir)
}

/// A process the test started that must be killed and reaped at the end
/// whatever happens (e.g. a bystander that rinit must not touch).
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn spawn(cmd: &mut Command) -> KillOnDrop {
        KillOnDrop(cmd.spawn().expect("spawn helper process"))
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Still running (not exited)?
    pub fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
