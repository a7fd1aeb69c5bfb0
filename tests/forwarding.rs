//! Which signals reach whom (SPEC sections 2 and 6), end to end: rinit runs
//! as PID 1 of a fresh namespace, signals are sent to it with kill(2) from
//! outside, and the commands record what they got in files. Every wait is
//! bounded; every process is killed by pid at the end.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");
const LONG: Duration = Duration::from_secs(20);

/// argv: dir, comma-separated signal numbers, tag. Records each signal as
/// a line `N` in dir/<tag>.got, exits 0 on SIGTERM; writes dir/<tag>.ready
/// once every handler is in place. Never writes to stdout (it may be a
/// broken pipe).
const RECORDER_PY: &str = r#"
import os, signal, sys, time
d, sigs, tag = sys.argv[1], [int(s) for s in sys.argv[2].split(',')], sys.argv[3]
log = open(os.path.join(d, tag + '.got'), 'a', buffering=1)
def got(n, frame):
    log.write('%d\n' % n)
    if n == signal.SIGTERM:
        sys.exit(0)
for s in sigs:
    signal.signal(s, got)
tmp = os.path.join(d, tag + '.tmp')
with open(tmp, 'w') as f:
    f.write('ready\n')
os.rename(tmp, os.path.join(d, tag + '.ready'))
# Not signal.pause(): a signal landing between Python's check for pending
# handlers and the pause() call would wait for the next one. A short sleep
# bounds that to 50 ms.
while True:
    time.sleep(0.05)
"#;

/// The recorder's argv (its script is written into `dir`, so that the
/// argv fits in a YAML list too).
fn recorder(dir: &TestDir, sigs: &[i32], tag: &str) -> Vec<String> {
    dir.write("recorder.py", RECORDER_PY.as_bytes());
    let list: Vec<String> = sigs.iter().map(i32::to_string).collect();
    vec![
        python3().to_string_lossy().into_owned(),
        dir.file("recorder.py"),
        dir.file(""),
        list.join(","),
        tag.into(),
    ]
}

fn got(dir: &TestDir, tag: &str) -> Vec<i32> {
    dir.read(&format!("{tag}.got"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Every catchable signal but SIGCHLD and the three that start a
/// shutdown (sent last, one per run), plus real-time ones.
fn forwarded_table() -> Vec<i32> {
    let mut sigs: Vec<i32> = (1..32)
        .filter(|s| {
            ![
                libc::SIGKILL,
                libc::SIGSTOP,
                libc::SIGCHLD,
                libc::SIGTERM,
                libc::SIGINT,
                libc::SIGQUIT,
            ]
            .contains(s)
        })
        .collect();
    sigs.extend([libc::SIGRTMIN(), libc::SIGRTMIN() + 3, libc::SIGRTMAX()]);
    sigs
}

#[test]
fn every_signal_sent_to_rinit_reaches_the_command() {
    let dir = TestDir::new("fwd-table");
    let table = forwarded_table();
    let mut all = table.clone();
    all.push(libc::SIGTERM);
    let Some(mut h) = Launch::new(RINIT)
        .arg("--")
        .args(recorder(&dir, &all, "cmd"))
        .start_pid1(&dir)
    else {
        return;
    };
    assert!(dir.wait_line("cmd.ready", LONG).is_some(), "{}", h.stderr());
    let mut missing = Vec::new();
    for &sig in &table {
        h.signal(sig);
        // One at a time, so that two pending standard signals never merge.
        if !wait_for(Duration::from_secs(3), || got(&dir, "cmd").contains(&sig)) {
            missing.push(sig);
        }
    }
    assert!(
        missing.is_empty(),
        "signals sent to rinit that never reached the command: {missing:?}; got {:?}; stderr:\n{}",
        got(&dir, "cmd"),
        h.stderr()
    );
    h.signal(libc::SIGTERM);
    assert_eq!(h.expect_exit(LONG), 0, "{}", h.stderr());
    assert!(got(&dir, "cmd").contains(&libc::SIGTERM));
}

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

/// Whether a thread of `pid` has `sig` pending on itself (thread-directed,
/// as the SIGPIPE of a write to a closed pipe is).
fn thread_has_pending(pid: i32, sig: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigPnd:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|bits| bits & (1 << (sig - 1)) != 0)
    })
}

#[test]
fn rinits_own_write_to_a_closed_pipe_forwards_nothing() {
    let dir = TestDir::new("fwd-own-pipe");
    // The talker takes no forwarded signal: only the main command's matter.
    let yaml = "services:\n  talker:\n    command: \"while :; do echo hello; sleep 0.02; done\"\n    forward: none\n";
    dir.write("rinit.yaml", yaml.as_bytes());
    let sigs = [libc::SIGPIPE, libc::SIGHUP, libc::SIGTERM];
    let Some(mut h) = Launch::new(RINIT)
        .arg("-c")
        .arg(dir.join("rinit.yaml"))
        .arg("--")
        .args(recorder(&dir, &sigs, "main"))
        .stdout_fd(broken_pipe_writer())
        .start_pid1(&dir)
    else {
        return;
    };
    assert!(
        dir.wait_line("main.ready", LONG).is_some(),
        "{}",
        h.stderr()
    );
    // The relay of the talker's lines writes to rinit's stdout, whose
    // reader is gone: the kernel raises SIGPIPE on that thread.
    assert!(
        wait_for(LONG, || thread_has_pending(h.pid(), libc::SIGPIPE)),
        "rinit never wrote to its broken stdout; stderr:\n{}",
        h.stderr()
    );
    // A signal sent afterwards is forwarded, so anything forwarded before
    // it has arrived by the time it has.
    h.signal(libc::SIGHUP);
    assert!(wait_for(LONG, || got(&dir, "main").contains(&libc::SIGHUP)));
    assert!(
        !got(&dir, "main").contains(&libc::SIGPIPE),
        "rinit forwarded the SIGPIPE of its own write: {:?}",
        got(&dir, "main")
    );
    h.signal(libc::SIGTERM);
    assert_eq!(h.expect_exit(LONG), 0, "{}", h.stderr());
}

#[test]
fn forward_lets_each_service_choose_its_signals() {
    let dir = TestDir::new("fwd-filter");
    let sigs = [libc::SIGHUP, libc::SIGUSR1, libc::SIGTERM];
    let argv = |tag: &str| {
        let quoted: Vec<String> = recorder(&dir, &sigs, tag)
            .into_iter()
            .map(|a| format!("'{}'", a.replace('\'', "''")))
            .collect();
        format!("[{}]", quoted.join(", "))
    };
    let yaml = format!(
        "services:\n  nginx:\n    command: {}\n    forward: [SIGHUP]\n  initdb:\n    command: {}\n    forward: [USR1]\n",
        argv("nginx"),
        argv("initdb")
    );
    dir.write("rinit.yaml", yaml.as_bytes());
    let Some(mut h) = Launch::new(RINIT)
        .arg("-c")
        .arg(dir.join("rinit.yaml"))
        .start_pid1(&dir)
    else {
        return;
    };
    for tag in ["nginx", "initdb"] {
        assert!(
            dir.wait_line(&format!("{tag}.ready"), LONG).is_some(),
            "{}",
            h.stderr()
        );
    }
    h.signal(libc::SIGHUP);
    assert!(wait_for(LONG, || got(&dir, "nginx").contains(&libc::SIGHUP)));
    h.signal(libc::SIGUSR1);
    assert!(wait_for(LONG, || got(&dir, "initdb").contains(&libc::SIGUSR1)));
    // rinit handles signals in order: a HUP for initdb would have been
    // sent before its USR1.
    assert_eq!(got(&dir, "initdb"), [libc::SIGUSR1], "HUP reached initdb");
    assert_eq!(got(&dir, "nginx"), [libc::SIGHUP], "USR1 reached nginx");
    let log = h.stderr();
    assert!(
        log.contains("rinit: forwarded SIGHUP to nginx (not: initdb)"),
        "{log}"
    );
    assert!(
        log.contains("rinit: forwarded SIGUSR1 to initdb (not: nginx)"),
        "{log}"
    );
    h.signal(libc::SIGTERM);
    assert_eq!(h.expect_exit(LONG), 0, "{}", h.stderr());
}
