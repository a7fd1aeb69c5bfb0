//! Single-command mode end to end (SPEC sections 1, 2, 3 and 8): the built
//! rinit runs as PID 1 of a fresh PID namespace (or as a plain subreaper),
//! and every contract is checked from outside through /proc, files the
//! commands write, and exit statuses. Each test is bounded in time and
//! waits only through `wait_for`.

mod common;

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    code_of, open_fds, python3, run_as_pid1, run_as_subreaper, voluntary_switches, wait_for, Input,
    Instance, KillOnDrop, Launch, TestDir,
};

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn py() -> String {
    python3().to_string_lossy().into_owned()
}

/// Both ways rinit runs, for `for pid1 in MODES`.
const MODES: [bool; 2] = [true, false];

/// Starts `launch` as PID 1 of a new namespace (None when none can be made
/// here; the reason is printed) or as a plain subreaper.
fn start_in(pid1: bool, launch: Launch, dir: &TestDir) -> Option<Instance> {
    if pid1 {
        launch.start_pid1(dir)
    } else {
        Some(launch.start_subreaper(dir))
    }
}

fn mode(h: &Instance) -> &'static str {
    if h.is_pid1() {
        "as PID 1"
    } else {
        "as subreaper"
    }
}

// ---------------------------------------------------------------------------
// 1, 2: reaping orphans, and a control that proves the check can fail
// ---------------------------------------------------------------------------

/// argv: N, seconds to wait for the zombies to go, report file. Double-forks
/// N children that exit at once (their parents exit first or right after,
/// so they become orphans of PID 1 / the subreaper), then waits until /proc
/// shows no zombie or the time is up, reports the zombie count, and blocks
/// on stdin so the test can look from outside while it still runs.
const ORPHANS_PY: &str = r#"
import os, sys, time
n, limit, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
def zombies():
    z = 0
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open('/proc/%s/stat' % d) as f:
                    s = f.read()
            except OSError:
                continue
            if s[s.rfind(')') + 2] == 'Z':
                z += 1
    return z
end = time.monotonic() + limit
z = zombies()
while z and time.monotonic() < end:
    time.sleep(0.005)
    z = zombies()
with open(out + '.tmp', 'w') as f:
    f.write('%d\n' % z)
os.rename(out + '.tmp', out)
sys.stdin.read()
"#;

const ORPHANS: usize = 1000;

/// The zombie check shared by the real test and its negative control: the
/// generator's own view from inside the namespace must reach zero zombies,
/// and so must the view from outside (host /proc, the namespace's
/// processes), while the generator is still running.
fn orphan_zombie_check(h: &mut Instance, dir: &TestDir) -> Result<(), String> {
    let report = dir
        .wait_line("zombies", secs(60))
        .ok_or_else(|| format!("the generator never reported; stderr:\n{}", h.stderr()))?;
    let inside: usize = report
        .trim()
        .parse()
        .map_err(|e| format!("bad report {report:?}: {e}"))?;
    let outside_clear = wait_for(secs(2), || h.zombies().is_empty());
    let outside = h.zombies().len();
    if h.poll_exit().is_some() {
        return Err("the generator's PID 1 exited before the check".into());
    }
    if inside == 0 && outside_clear {
        Ok(())
    } else {
        Err(format!(
            "zombies left: {inside} seen inside the namespace, {outside} from outside"
        ))
    }
}

#[test]
fn orphans_are_adopted_and_reaped() {
    let dir = TestDir::new("orphans");
    let Some(mut h) = Launch::new(RINIT)
        .env("RINIT_LOG", "debug")
        .args(["--", &py(), "-c", ORPHANS_PY])
        .arg(ORPHANS.to_string())
        .arg("10")
        .arg(dir.file("zombies"))
        .stdin(Input::Pipe)
        .start_pid1(&dir)
    else {
        return;
    };
    if let Err(e) = orphan_zombie_check(&mut h, &dir) {
        panic!("{e}; rinit stderr tail:\n{}", tail(&h.stderr(), 20));
    }
    h.close_stdin();
    assert_eq!(
        h.expect_exit(secs(20)),
        0,
        "stderr:\n{}",
        tail(&h.stderr(), 20)
    );
    // SPEC 9: adopted orphans are logged at debug level; this proves the
    // grandchildren really were orphans that rinit reaped.
    let adopted = h.stderr().matches("reaped orphan").count();
    assert!(
        adopted >= ORPHANS,
        "rinit reaped only {adopted} orphans, expected {ORPHANS}"
    );
}

#[test]
fn negative_control_non_reaping_pid1_leaves_zombies() {
    let dir = TestDir::new("orphans-control");
    // Python as PID 1 waits only for its direct children: the orphans that
    // come to it stay zombies. The same check must fail here.
    let Some(mut h) = Launch::new(python3())
        .args(["-c", ORPHANS_PY])
        .arg(ORPHANS.to_string())
        .arg("1")
        .arg(dir.file("zombies"))
        .stdin(Input::Pipe)
        .start_pid1(&dir)
    else {
        return;
    };
    let result = orphan_zombie_check(&mut h, &dir);
    assert!(result.is_err(), "the zombie check passed without a reaper");
    let z = h.zombies().len();
    assert!(z >= ORPHANS, "expected {ORPHANS} zombies, saw {z}");
}

// ---------------------------------------------------------------------------
// 3: exit status pass-through
// ---------------------------------------------------------------------------

#[test]
fn exit_code_and_signal_pass_through() {
    let dir = TestDir::new("exit-codes");
    let cases = [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -KILL $$", 137),
        ("kill -TERM $$", 143),
        ("kill -SEGV $$", 139),
    ];
    for (script, want) in cases {
        for pid1 in MODES {
            let launch = Launch::new(RINIT).args(["--", "sh", "-c", script]);
            let Some(mut h) = start_in(pid1, launch, &dir) else {
                continue;
            };
            let got = h.expect_exit(secs(10));
            assert_eq!(
                got,
                want,
                "`{script}` {}; stderr:\n{}",
                mode(&h),
                h.stderr()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 4: signal forwarding to the whole process group
// ---------------------------------------------------------------------------

/// argv: dir. Records every handled signal's name in dir/child.log.
const TRAP_CHILD_PY: &str = r#"
import os, signal, sys
d = sys.argv[1]
def record(n, _frame):
    with open(d + '/child.log', 'a') as f:
        f.write(signal.Signals(n).name[3:] + '\n')
for s in ('HUP', 'INT', 'QUIT', 'USR1', 'USR2', 'TERM', 'WINCH', 'ALRM', 'CONT'):
    signal.signal(getattr(signal, 'SIG' + s), record)
with open(d + '/child.ready.tmp', 'w') as f:
    f.write('ready\n')
os.rename(d + '/child.ready.tmp', d + '/child.ready')
while True:
    signal.pause()
"#;

/// argv: dir, python, child script. A shell that traps every signal and
/// records it in dir/parent.log, with a background child in its process
/// group (no job control) that does the same.
const TRAP_PARENT_SH: &str = r#"
D=$1
for s in HUP INT QUIT USR1 USR2 TERM WINCH ALRM CONT; do
  trap "echo $s >> $D/parent.log" $s
done
"$2" -c "$3" "$D" &
echo ready > "$D/parent.ready"
while :; do sleep 1000 & wait $!; done
"#;

fn has_line(dir: &TestDir, file: &str, line: &str) -> bool {
    dir.read(file)
        .is_some_and(|t| t.lines().any(|l| l.trim() == line))
}

/// One rinit whose command records signals; sends the ordinary signals,
/// then `last` (TERM, INT or QUIT: only one per run, as a second one
/// forces SIGKILL), checking each reached both processes of the group.
fn forward_run(last: (i32, &str)) {
    let dir = TestDir::new("forward");
    let Some(mut h) = Launch::new(RINIT)
        .args(["--grace", "60s", "--", "sh", "-c", TRAP_PARENT_SH, "sh"])
        .args([&dir.file(""), &py(), TRAP_CHILD_PY])
        .start_pid1(&dir)
    else {
        return;
    };
    assert!(dir.wait_line("parent.ready", secs(10)).is_some());
    assert!(dir.wait_line("child.ready", secs(10)).is_some());
    let sigs = [
        (libc::SIGHUP, "HUP"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGWINCH, "WINCH"),
        (libc::SIGALRM, "ALRM"),
        (libc::SIGCONT, "CONT"),
        last,
    ];
    for (sig, name) in sigs {
        h.signal(sig);
        for who in ["parent.log", "child.log"] {
            assert!(
                wait_for(secs(5), || has_line(&dir, who, name)),
                "SIG{name} sent to rinit did not reach {who}: parent {:?}, child {:?}; stderr:\n{}",
                dir.read("parent.log"),
                dir.read("child.log"),
                h.stderr()
            );
        }
    }
}

#[test]
fn signals_are_forwarded_to_the_process_group() {
    forward_run((libc::SIGTERM, "TERM"));
    forward_run((libc::SIGINT, "INT"));
    forward_run((libc::SIGQUIT, "QUIT"));
}

// ---------------------------------------------------------------------------
// 5: a clean signal state for the child
// ---------------------------------------------------------------------------

/// Blocks and ignores every signal (KILL and STOP excepted), then execs
/// argv[1:]. Python's own calls cover the ordinary signals; raw syscalls
/// cover the ones libc reserves for itself (32-34), which libc wrappers
/// refuse to touch but which a parent can still leave ignored (glibc's
/// posix_spawn, used by Rust's Command, does exactly that for 32 and 33).
const BLOCK_IGNORE_PY: &str = r#"
import ctypes, os, platform, signal, sys
sigs = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
for s in sigs:
    try:
        signal.signal(s, signal.SIG_IGN)
    except (OSError, ValueError, RuntimeError):
        pass
nr = {'x86_64': (13, 14), 'aarch64': (134, 135)}.get(platform.machine())
if nr:
    libc = ctypes.CDLL(None, use_errno=True)
    class KSigaction(ctypes.Structure):
        _fields_ = [('handler', ctypes.c_ulong), ('flags', ctypes.c_ulong),
                    ('restorer', ctypes.c_ulong), ('mask', ctypes.c_ulong)]
    ign = KSigaction(1, 0, 0, 0)
    for s in range(1, 65):
        if s not in (signal.SIGKILL, signal.SIGSTOP):
            libc.syscall(nr[0], s, ctypes.byref(ign), None, 8)
    every = ctypes.c_ulong(0xffffffffffffffff)
    libc.syscall(nr[1], 0, ctypes.byref(every), None, 8)
os.execv(sys.argv[1], sys.argv[1:])
"#;

/// The signal numbers set in a /proc/PID/status mask line (`SigIgn:` ...).
fn mask_signals(status: &str, key: &str) -> Vec<u32> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim();
    let bits = u64::from_str_radix(hex, 16).expect("hex mask");
    (0..64)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| b + 1)
        .collect()
}

#[test]
fn child_starts_with_no_blocked_or_ignored_signals() {
    let dir = TestDir::new("sigmask");
    let wrapper = [py(), "-c".into(), BLOCK_IGNORE_PY.into()];
    // Control: the wrapper really blocks and ignores (cat reports its own
    // status), so a rinit that passed any of it on would be caught.
    let mut control = Launch::new("/bin/cat")
        .arg("/proc/self/status")
        .wrap_outside(&wrapper)
        .start_subreaper(&dir);
    assert_eq!(control.expect_exit(secs(10)), 0, "{}", control.stderr());
    let status = control.stdout();
    for key in ["SigBlk:", "SigIgn:"] {
        let set = mask_signals(&status, key);
        for sig in [1, 2, 13, 15, 17, 28, 34, 64] {
            assert!(set.contains(&sig), "control {key} lacks {sig}: {status}");
        }
    }

    for pid1 in MODES {
        let launch = Launch::new(RINIT).args(["--", "/bin/cat", "/proc/self/status"]);
        // As PID 1 the wrapper runs inside the namespace and execs rinit.
        let launch = if pid1 {
            launch.wrap_inside(&wrapper)
        } else {
            launch.wrap_outside(&wrapper)
        };
        let Some(mut h) = start_in(pid1, launch, &dir) else {
            continue;
        };
        assert_eq!(h.expect_exit(secs(10)), 0, "{}: {}", mode(&h), h.stderr());
        let status = h.stdout();
        for key in ["SigBlk:", "SigIgn:"] {
            let set = mask_signals(&status, key);
            assert!(
                set.is_empty(),
                "the command {} starts with signals {set:?} in {key} (inherited from \
                 rinit's parent); every signal must be unblocked and at SIG_DFL",
                mode(&h)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 6: SIGPIPE is back to its default for the child
// ---------------------------------------------------------------------------

/// A pipe whose read end is already closed: writing to it raises SIGPIPE.
fn broken_pipe_writer() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints; O_CLOEXEC keeps the ends
    // out of processes other tests spawn concurrently.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(rd);
    wr
}

#[test]
fn sigpipe_kills_a_writer_to_a_closed_pipe() {
    let dir = TestDir::new("sigpipe");
    for pid1 in MODES {
        let launch = Launch::new(RINIT)
            .args(["--", "yes"])
            .stdout_fd(broken_pipe_writer());
        let Some(mut h) = start_in(pid1, launch, &dir) else {
            continue;
        };
        // yes dies of SIGPIPE (141); with SIGPIPE ignored it would get EPIPE
        // and exit 1.
        assert_eq!(h.expect_exit(secs(10)), 128 + libc::SIGPIPE, "{}", mode(&h));
    }
}

// ---------------------------------------------------------------------------
// 7: Ctrl-C through a terminal
// ---------------------------------------------------------------------------

fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: out-pointers to two ints; null name/termios/winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    for fd in [master, slave] {
        // SAFETY: setting FD_CLOEXEC on fds we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both fds were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

#[test]
fn ctrl_c_on_the_terminal_reaches_the_command() {
    let dir = TestDir::new("pty");
    let (master, slave) = open_pty();
    // setsid -c: new session with the pty as controlling terminal (stdin),
    // like `docker run -it`.
    let Some(mut h) = Launch::new(RINIT)
        .args(["--", "sleep", "100"])
        .wrap_outside(["setsid", "-c"])
        .stdin(Input::Fd(slave))
        .start_pid1(&dir)
    else {
        return;
    };
    let sleep = h
        .wait_process("sleep", secs(10))
        .unwrap_or_else(|| panic!("the command never started; stderr:\n{}", h.stderr()));
    // The command's own group is the terminal's foreground group, so ^C
    // goes to it directly and not to rinit.
    assert_eq!(sleep.pgrp, sleep.pid, "the command has its own group");
    assert_eq!(sleep.tpgid, sleep.pgrp, "the command is in the foreground");
    let mut m = std::fs::File::from(master);
    m.write_all(b"\x03").expect("write ^C to the pty");
    assert_eq!(h.expect_exit(secs(10)), 130, "stderr:\n{}", h.stderr());
}

// ---------------------------------------------------------------------------
// 8: argv and environment byte for byte
// ---------------------------------------------------------------------------

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

#[test]
fn argv_arrives_byte_for_byte() {
    let dir = TestDir::new("argv");
    let script = "cat /proc/$$/cmdline";
    let extra: Vec<OsString> = [
        &b""[..],
        b" ",
        b"two words",
        b"  leading and trailing  ",
        b"tab\there",
        b"new\nline",
        b"\xff\xfe not utf-8 \x80",
        b"*",
        b"$HOME",
        b"--",
        b"-v",
        b"",
    ]
    .iter()
    .map(|b| os(b))
    .collect();
    let mut argv: Vec<OsString> = ["/bin/sh", "-c", script, "sh"]
        .iter()
        .map(OsString::from)
        .collect();
    argv.extend(extra);
    let mut expected = Vec::new();
    for a in &argv {
        expected.extend_from_slice(a.as_encoded_bytes());
        expected.push(0);
    }
    for pid1 in MODES {
        let launch = Launch::new(RINIT).arg("--").args(&argv);
        let Some(mut h) = start_in(pid1, launch, &dir) else {
            continue;
        };
        assert_eq!(h.expect_exit(secs(10)), 0, "{}: {}", mode(&h), h.stderr());
        assert_eq!(
            h.stdout_bytes(),
            expected,
            "argv of the command {}",
            mode(&h)
        );
    }
}

fn environ_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = bytes
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    v.sort();
    v
}

#[test]
fn environment_is_passed_unchanged() {
    let dir = TestDir::new("env");
    let vars: Vec<(OsString, OsString)> = vec![
        (os(b"PATH"), os(b"/usr/bin:/bin")),
        (os(b"EMPTY"), os(b"")),
        (os(b"SPACES"), os(b"  a  b  ")),
        (os(b"EQUALS"), os(b"a=b==c")),
        (os(b"NON_UTF8"), os(b"\xff\xfe\x80")),
        (os(b"NEWLINE"), os(b"x\ny")),
    ];
    let mut expected: Vec<Vec<u8>> = vars
        .iter()
        .map(|(k, v)| [k.as_encoded_bytes(), b"=", v.as_encoded_bytes()].concat())
        .collect();
    expected.sort();
    for pid1 in MODES {
        let mut launch = Launch::new(RINIT)
            .args(["--", "/bin/cat", "/proc/self/environ"])
            .env_clear();
        for (k, v) in &vars {
            launch = launch.env(k, v);
        }
        let Some(mut h) = start_in(pid1, launch, &dir) else {
            continue;
        };
        assert_eq!(h.expect_exit(secs(10)), 0, "{}: {}", mode(&h), h.stderr());
        assert_eq!(environ_of(&h.stdout_bytes()), expected, "{}", mode(&h));
    }
    // An empty environment stays empty.
    for pid1 in MODES {
        let launch = Launch::new(RINIT)
            .args(["--", "/bin/cat", "/proc/self/environ"])
            .env_clear();
        let Some(mut h) = start_in(pid1, launch, &dir) else {
            continue;
        };
        assert_eq!(h.expect_exit(secs(10)), 0, "{}: {}", mode(&h), h.stderr());
        assert_eq!(h.stdout_bytes(), b"", "env -i {}", mode(&h));
    }
}

// ---------------------------------------------------------------------------
// 9: 126 and 127
// ---------------------------------------------------------------------------

#[test]
fn not_found_is_127_and_not_executable_is_126() {
    let dir = TestDir::new("exec-errors");
    let script = dir.join("not-executable");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = script.to_string_lossy().into_owned();
    let subdir = dir.file("a-directory");
    std::fs::create_dir(&subdir).unwrap();
    let path = format!("{}:/usr/bin:/bin", dir.path().display());
    let cases: [(&str, i32, &str); 5] = [
        (
            "/nonexistent/rinit-test-cmd",
            127,
            "/nonexistent/rinit-test-cmd",
        ),
        ("rinit-test-no-such-cmd", 127, "rinit-test-no-such-cmd"),
        (&script, 126, &script),
        ("not-executable", 126, "not-executable"),
        (&subdir, 126, &subdir),
    ];
    for (cmd, want, named) in cases {
        for pid1 in MODES {
            let launch = Launch::new(RINIT)
                .args(["--", cmd, "arg"])
                .env("PATH", &path);
            let Some(mut h) = start_in(pid1, launch, &dir) else {
                continue;
            };
            let code = h.expect_exit(secs(10));
            assert_eq!(code, want, "{cmd} {}: {}", mode(&h), h.stderr());
            let err = h.stderr();
            assert!(
                err.contains(named),
                "{cmd} {}: the message does not name the command: {err}",
                mode(&h)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 10: grace period and the second SIGTERM
// ---------------------------------------------------------------------------

/// argv: dir. Survives SIGTERM (records it in dir/term.log).
const SURVIVES_TERM_SH: &str = r#"
trap "echo TERM >> $1/term.log" TERM
echo ready > "$1/ready"
while :; do sleep 1000 & wait $!; done
"#;

#[test]
fn ignored_sigterm_is_followed_by_sigkill_after_the_grace() {
    let dir = TestDir::new("grace");
    let Some(mut h) = Launch::new(RINIT)
        .args(["--grace", "1s", "--", "sh", "-c", SURVIVES_TERM_SH, "sh"])
        .arg(dir.file(""))
        .start_pid1(&dir)
    else {
        return;
    };
    assert!(dir.wait_line("ready", secs(10)).is_some());
    let t0 = Instant::now();
    h.signal(libc::SIGTERM);
    let code = h.expect_exit(secs(10));
    let took = t0.elapsed();
    assert_eq!(code, 137, "stderr:\n{}", h.stderr());
    assert!(
        has_line(&dir, "term.log", "TERM"),
        "SIGTERM was not forwarded"
    );
    assert!(took >= secs(1), "SIGKILL came before the grace: {took:?}");
    assert!(took < secs(5), "SIGKILL came too late: {took:?}");
}

#[test]
fn second_sigterm_kills_at_once() {
    let dir = TestDir::new("second-term");
    let Some(mut h) = Launch::new(RINIT)
        .args(["--grace", "30s", "--", "sh", "-c", SURVIVES_TERM_SH, "sh"])
        .arg(dir.file(""))
        .start_pid1(&dir)
    else {
        return;
    };
    assert!(dir.wait_line("ready", secs(10)).is_some());
    let t0 = Instant::now();
    h.signal(libc::SIGTERM);
    // Once the command has it, rinit has handled the first one.
    assert!(wait_for(secs(5), || has_line(&dir, "term.log", "TERM")));
    h.signal(libc::SIGTERM);
    assert_eq!(h.expect_exit(secs(10)), 137, "stderr:\n{}", h.stderr());
    assert!(t0.elapsed() < secs(5), "took {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// 11: leftovers get SIGTERM and rinit waits for their cleanup
// ---------------------------------------------------------------------------

/// argv: dir. Starts a background process that traps TERM, cleans up for a
/// moment, writes dir/cleanup and exits; the main shell exits 0 as soon as
/// the background process has its trap in place.
const LEFTOVER_SH: &str = r#"
D=$1
mkfifo "$D/fifo"
(
  trap 'sleep 0.3; echo TERM > "$D/cleanup.tmp"; mv "$D/cleanup.tmp" "$D/cleanup"; exit 0' TERM
  echo ready > "$D/fifo"
  # Short sleeps: one started just after the sweep's SIGTERM ends by
  # itself instead of waiting for the SIGKILL at the end of the grace.
  while :; do sleep 0.05; done
) &
read x < "$D/fifo"
exit 0
"#;

#[test]
fn leftovers_get_sigterm_and_rinit_waits_for_them() {
    for pid1 in MODES {
        let dir = TestDir::new("leftovers");
        let launch = Launch::new(RINIT)
            .args(["--", "sh", "-c", LEFTOVER_SH, "sh"])
            .arg(dir.file(""));
        let Some(mut h) = start_in(pid1, launch, &dir) else {
            continue;
        };
        assert_eq!(h.expect_exit(secs(10)), 0, "{}: {}", mode(&h), h.stderr());
        // Read right after rinit's exit: the cleanup must be done by then.
        assert_eq!(
            dir.read("cleanup").as_deref(),
            Some("TERM\n"),
            "{}: rinit exited before its leftover finished cleaning up",
            mode(&h)
        );
    }
}

// ---------------------------------------------------------------------------
// 12: subreaper mode
// ---------------------------------------------------------------------------

/// argv: dir. 200 short-lived orphans, 3 long-lived ones in their own
/// sessions (daemons that escaped the group), then waits for stdin to close.
const SUBREAPER_SH: &str = r#"
for i in $(seq 200); do (sleep 0 &); done
for i in 1 2 3; do (setsid sleep 1000 &); done
echo ready > "$1/ready"
read x
exit 0
"#;

#[test]
fn subreaper_adopts_and_reaps_and_spares_outsiders() {
    let dir = TestDir::new("subreaper");
    let mut bystander = KillOnDrop::spawn(
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    let mut h = Launch::new(RINIT)
        .args(["--", "sh", "-c", SUBREAPER_SH, "sh"])
        .arg(dir.file(""))
        .stdin(Input::Pipe)
        .start_subreaper(&dir);
    let rinit = h.pid();
    assert!(dir.wait_line("ready", secs(30)).is_some(), "{}", h.stderr());
    let adopted = |h: &Instance| {
        h.children()
            .into_iter()
            .filter(|p| p.name == "sleep" && !p.is_zombie())
            .count()
    };
    assert!(
        wait_for(secs(10), || adopted(&h) == 3),
        "orphans not adopted by rinit (pid {rinit}): {:?}",
        h.processes()
    );
    assert!(
        wait_for(secs(5), || h.zombies().is_empty()),
        "zombies under rinit: {:?}",
        h.zombies()
    );
    h.close_stdin();
    assert_eq!(h.expect_exit(secs(10)), 0, "stderr:\n{}", h.stderr());
    assert!(
        bystander.alive(),
        "a process that is not rinit's descendant was killed"
    );
}

// ---------------------------------------------------------------------------
// 13: failed execs never crash rinit
// ---------------------------------------------------------------------------

#[test]
fn two_thousand_failed_execs_never_crash_rinit() {
    const RUNS: usize = 2000;
    const WORKERS: usize = 4;
    let dir = TestDir::new("failed-execs");
    let t0 = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let dir = &dir;
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for i in (w..RUNS).step_by(WORKERS) {
                        let launch =
                            Launch::new(RINIT).args(["--", "/nonexistent/rinit-exec-fail"]);
                        // Alternate PID 1 and subreaper runs.
                        let h = if i % 2 == 0 {
                            launch.start_pid1(dir)
                        } else {
                            Some(launch.start_subreaper(dir))
                        };
                        let Some(mut h) = h else { continue };
                        let code = h.wait_exit(secs(10)).map(code_of);
                        let err = h.stderr();
                        if code != Some(127)
                            || !err.contains("/nonexistent/rinit-exec-fail")
                            || err.contains("internal error")
                        {
                            bad.push(format!("run {i} {}: {code:?}: {err}", mode(&h)));
                        }
                    }
                    bad
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {RUNS} runs went wrong, first: {}",
        failures.len(),
        failures[0]
    );
    assert!(t0.elapsed() < secs(120), "took {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// 14: inherited fds and the working directory
// ---------------------------------------------------------------------------

/// argv: dir. Proves it has fd 5 by writing through it, reports its cwd.
const FD5_SH: &str = r#"
echo kept >&5
pwd > "$1/cwd.tmp" && mv "$1/cwd.tmp" "$1/cwd"
exec sleep 1000
"#;

#[test]
fn inherited_fds_go_to_the_command_not_rinit_and_rinit_leaves_the_cwd() {
    for pid1 in MODES {
        let dir = TestDir::new("fds");
        let fd5 = dir.file("fd5");
        // A wrapper opens fd 5 (without close-on-exec) and execs the rest.
        let wrapper = ["/bin/sh", "-c", "exec 5>\"$0\"; exec \"$@\"", &fd5];
        let launch = Launch::new(RINIT)
            .args(["--", "sh", "-c", FD5_SH, "sh"])
            .arg(dir.file(""))
            .wrap_outside(wrapper)
            .cwd(dir.path());
        let Some(h) = start_in(pid1, launch, &dir) else {
            continue;
        };
        let m = mode(&h);
        assert_eq!(
            dir.wait_line("cwd", secs(10)).as_deref().map(str::trim),
            Some(dir.path().to_str().unwrap()),
            "{m}: the command starts in rinit's start directory"
        );
        assert_eq!(dir.read("fd5").as_deref(), Some("kept\n"), "{m}: fd 5");
        let cmd = h
            .wait_process("sleep", secs(10))
            .expect("the command is running");
        assert!(
            open_fds(cmd.pid).contains(&5),
            "{m}: the command keeps fd 5"
        );
        let rinit = h.pid();
        assert!(
            wait_for(secs(5), || !open_fds(rinit).contains(&5)),
            "{m}: rinit still holds fd 5: {:?}",
            open_fds(rinit)
        );
        let cwd = || std::fs::read_link(format!("/proc/{rinit}/cwd")).ok();
        assert!(
            wait_for(secs(5), || cwd().as_deref()
                == Some(std::path::Path::new("/"))),
            "{m}: rinit's cwd is {:?}, not /",
            cwd()
        );
    }
}

// ---------------------------------------------------------------------------
// 15: an idle rinit never wakes up
// ---------------------------------------------------------------------------

#[test]
fn idle_rinit_makes_no_wakeups() {
    for pid1 in MODES {
        let dir = TestDir::new("idle");
        let launch = Launch::new(RINIT)
            .args(["--", "sh", "-c", "echo ready > \"$0/ready\"; exec sleep 60"])
            .arg(dir.file(""));
        let Some(h) = start_in(pid1, launch, &dir) else {
            continue;
        };
        assert!(dir.wait_line("ready", secs(10)).is_some());
        assert!(h.wait_process("sleep", secs(10)).is_some());
        let rinit = h.pid();
        // Let start-up work (logging, hand-offs) finish: two samples 200 ms
        // apart agree.
        let mut last = voluntary_switches(rinit);
        let settled = wait_for(secs(10), || {
            std::thread::sleep(Duration::from_millis(200));
            let now = voluntary_switches(rinit);
            std::mem::replace(&mut last, now.clone()) == now
        });
        assert!(settled, "{}: rinit never went idle: {last:?}", mode(&h));
        let before = voluntary_switches(rinit);
        // The measured interval itself, not a synchronisation.
        std::thread::sleep(secs(2));
        let after = voluntary_switches(rinit);
        assert!(!before.is_empty());
        assert_eq!(
            before,
            after,
            "{}: rinit threads woke up while idle (tid -> voluntary switches)",
            mode(&h)
        );
    }
}

// ---------------------------------------------------------------------------
// 16: usage, help, version
// ---------------------------------------------------------------------------

#[test]
fn usage_help_and_version() {
    let dir = TestDir::new("cli");
    if std::path::Path::new("/etc/rinit.yaml").exists() {
        eprintln!("skipped the no-argument case: /etc/rinit.yaml exists here");
    } else {
        let mut h = run_as_subreaper(RINIT, &dir, std::iter::empty::<&str>());
        assert_eq!(h.expect_exit(secs(10)), 2);
        assert!(h.stderr().contains("usage:"), "stderr: {}", h.stderr());
        assert_eq!(h.stdout(), "");
        if let Some(mut h) = run_as_pid1(RINIT, &dir, std::iter::empty::<&str>()) {
            assert_eq!(h.expect_exit(secs(10)), 2, "as PID 1");
            assert!(h.stderr().contains("usage:"), "stderr: {}", h.stderr());
        }
    }
    for flag in ["--help", "-h"] {
        let mut h = run_as_subreaper(RINIT, &dir, [flag]);
        assert_eq!(h.expect_exit(secs(10)), 0, "{flag}");
        assert!(h.stdout().contains("usage:"), "{flag}: {}", h.stdout());
        assert!(h.stdout().contains("--grace"), "{flag}: {}", h.stdout());
    }
    for flag in ["--version", "-V"] {
        let mut h = run_as_subreaper(RINIT, &dir, [flag]);
        assert_eq!(h.expect_exit(secs(10)), 0, "{flag}");
        assert_eq!(
            h.stdout(),
            format!("rinit {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
