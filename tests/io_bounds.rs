//! SPEC section 13 and the io thread, end to end with rinit as PID 1: a
//! stalled reader of rinit's stdout or stderr never slows supervision, the
//! threads stay four whatever the services do, output is bounded (long
//! lines cut, a crash-looping service's leftovers capped), a pids limit
//! costs rinit nothing, and a SIGTERM at any moment of start-up is taken.
//!
//! RSS figures are taken from the static release binary, the shipping form
//! (the debug build carries ~3 MiB more of unoptimised text).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The static release build (built once per test binary; CI has built it
/// already, so this is a no-op there).
fn static_rinit() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = "x86_64-unknown-linux-musl";
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let ok = Command::new(cargo)
            .current_dir(MANIFEST_DIR)
            .args(["build", "--release", "--target", target, "--bin", "rinit"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "static build failed (rustup target add {target}?)");
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(MANIFEST_DIR).join("target"));
        dir.join(target).join("release").join("rinit")
    })
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// One HTTP/1.0 GET to rinit's health server: (status, body).
fn http(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The JSON object of one service in a /status body (services carry no
/// nested objects but `last_exit`, which has no `}` before its own end).
fn service_obj<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    let start = status.find(&format!("{{\"name\":\"{name}\""))?;
    let rest = &status[start..];
    let end = rest.find("\"critical\"")?;
    Some(&rest[..end])
}

/// The raw value of `key` in a service object (a number, `null`, a quoted
/// string with its quotes).
fn value_of<'a>(obj: &'a str, key: &str) -> Option<&'a str> {
    let at = obj.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &obj[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

fn service_field(port: u16, name: &str, key: &str) -> Option<String> {
    let (_, body) = http(port, "/status")?;
    let obj = service_obj(&body, name)?;
    value_of(obj, key).map(str::to_string)
}

fn restarts(port: u16, name: &str) -> u64 {
    service_field(port, name, "restarts")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

fn fd_count(pid: i32) -> usize {
    open_fds(pid).len()
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The fewest descriptors seen over a few samples: a sample taken during a
/// spawn sees its transient pipes.
fn settled_fds(pid: i32) -> usize {
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            fd_count(pid)
        })
        .min()
        .unwrap_or(0)
}

/// A pipe whose read end the test keeps open and never reads.
fn unread_pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().expect("pipe")
}

struct Running {
    inst: Instance,
    port: u16,
}

/// Writes `yaml` (`{d}` the test dir, `{port}` a free port) and starts
/// `binary` on it as PID 1; waits until /status answers.
fn start(
    dir: &TestDir,
    binary: &Path,
    yaml: &str,
    launch: impl FnOnce(Launch) -> Launch,
) -> Option<Running> {
    let port = free_port();
    let text = yaml
        .replace("{d}", &dir.path().display().to_string())
        .replace("{port}", &port.to_string());
    dir.write("rinit.yaml", text.as_bytes());
    let base = Launch::new(binary).arg("-c").arg(dir.join("rinit.yaml"));
    let mut inst = launch(base).start_pid1(dir)?;
    let up = wait_for(secs(20), || {
        http(port, "/status").is_some() || inst.poll_exit().is_some()
    });
    assert!(
        up && inst.poll_exit().is_none(),
        "rinit did not come up: {}",
        inst.stderr()
    );
    Some(Running { inst, port })
}

/// The host pid of the process whose pid in rinit's namespace is `ns_pid`.
fn host_pid(inst: &Instance, ns_pid: i32) -> Option<i32> {
    inst.processes()
        .into_iter()
        .find(|p| p.nspid.len() >= 2 && p.nspid.last() == Some(&ns_pid))
        .map(|p| p.pid)
}

// ---------------------------------------------------------------------------
// 1. A stalled reader of stdout, stderr or both
// ---------------------------------------------------------------------------

const STALL_YAML: &str = r#"
health: { listen: "127.0.0.1:{port}" }
services:
  chatty:
    command: ["/bin/sh", "-c", "yes 'a chatty line of output' | head -n 4000; yes 'a chatty error line' | head -n 4000 >&2; exit 1"]
    backoff: { initial: 10ms, max: 10ms }
    max_restarts: { count: 100000, within: 1s }
    critical: false
  steady:
    command: ["sleep", "1000"]
    backoff: { initial: 3s, max: 3s }
"#;

#[derive(Clone, Copy, Debug)]
enum Stall {
    Stdout,
    Stderr,
    Both,
}

fn stalled_reader_does_not_stall_supervision(stall: Stall) {
    let dir = TestDir::new("stall");
    let (mut readers, mut fds) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (r, w) = unread_pipe();
        readers.push(r);
        fds.push(Some(w));
    }
    let Some(mut run) = start(&dir, Path::new(RINIT), STALL_YAML, |l| match stall {
        Stall::Stdout => l.stdout_fd(fds[0].take().unwrap()),
        Stall::Stderr => l.stderr_fd(fds[1].take().unwrap()),
        Stall::Both => l
            .stdout_fd(fds[0].take().unwrap())
            .stderr_fd(fds[1].take().unwrap()),
    }) else {
        return;
    };
    let port = run.port;
    // Long enough for the pipes (64 KiB) and rinit's queues to fill.
    std::thread::sleep(secs(1));
    let r0 = restarts(port, "chatty");
    std::thread::sleep(secs(4));
    let r1 = restarts(port, "chatty");
    assert!(
        r1 >= r0 + 20,
        "{stall:?}: restarts stalled: {r0} then {r1} four seconds later"
    );
    let pid: i32 = service_field(port, "steady", "pid")
        .and_then(|p| p.parse().ok())
        .expect("steady has a pid");
    let host = host_pid(&run.inst, pid).expect("steady's host pid");
    assert!(kill(host, libc::SIGKILL));
    let t0 = Instant::now();
    let seen = wait_for(secs(2), || {
        service_field(port, "steady", "state").is_some_and(|s| s != "\"running\"")
    });
    let to_status = t0.elapsed();
    let unhealthy = wait_for(secs(2), || {
        http(port, "/healthz").is_some_and(|(c, _)| c == 503)
    });
    let to_health = t0.elapsed();
    println!("{stall:?}: kill -9 -> /status {to_status:?}, /healthz 503 {to_health:?}");
    assert!(seen && unhealthy, "{stall:?}: the death did not show");
    assert!(
        to_health < Duration::from_millis(500),
        "{stall:?}: took {to_health:?}"
    );
    run.inst.signal(libc::SIGTERM);
    let t0 = Instant::now();
    let code = run.inst.expect_exit(secs(15));
    println!("{stall:?}: SIGTERM -> exit {code} after {:?}", t0.elapsed());
    assert_eq!(code, 0, "{stall:?}: nothing needed SIGKILL");
    drop(readers);
}

#[test]
fn unread_stderr_does_not_stall_supervision() {
    stalled_reader_does_not_stall_supervision(Stall::Stderr);
}

#[test]
fn unread_stdout_does_not_stall_supervision() {
    stalled_reader_does_not_stall_supervision(Stall::Stdout);
}

#[test]
fn unread_stdout_and_stderr_do_not_stall_supervision() {
    stalled_reader_does_not_stall_supervision(Stall::Both);
}

// ---------------------------------------------------------------------------
// 2. Restarts every 10 ms into an unread stdout: nothing grows
// ---------------------------------------------------------------------------

#[test]
fn unread_stdout_and_fast_restarts_keep_threads_fds_and_memory_flat() {
    let dir = TestDir::new("flat");
    let (reader, w) = unread_pipe();
    let yaml = r#"
health: { listen: "127.0.0.1:{port}" }
services:
  flapper:
    command: ["/bin/sh", "-c", "echo starting up; echo doing a little work; exit 1"]
    backoff: { initial: 10ms, max: 10ms }
    max_restarts: { count: 100000, within: 1s }
  steady:
    command: ["sleep", "1000"]
"#;
    let Some(run) = start(&dir, static_rinit(), yaml, |l| l.stdout_fd(w)) else {
        return;
    };
    let pid = run.inst.pid();
    std::thread::sleep(secs(3));
    let (fds0, rss0, r0) = (
        settled_fds(pid),
        rss_kib(pid),
        restarts(run.port, "flapper"),
    );
    let mut worst_rss = rss0;
    let end = Instant::now() + secs(27);
    while Instant::now() < end {
        assert_eq!(threads(pid), 4, "threads");
        worst_rss = worst_rss.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(500));
    }
    let (fds1, r1) = (settled_fds(pid), restarts(run.port, "flapper"));
    println!("restarts {r0} -> {r1}; fds {fds0} -> {fds1}; RSS {rss0} KiB, worst {worst_rss} KiB");
    assert!(r1 > r0 + 500, "it kept restarting");
    assert!(fds1 <= fds0 + 2, "fds grew from {fds0} to {fds1}");
    assert!(worst_rss < 2048, "RSS reached {worst_rss} KiB");
    drop(reader);
}

// ---------------------------------------------------------------------------
// 3. Long lines and prompts
// ---------------------------------------------------------------------------

#[test]
fn a_50_mb_line_comes_out_in_16k_pieces_with_memory_bounded() {
    let dir = TestDir::new("long-line");
    let yaml = r#"
health: { listen: "127.0.0.1:{port}" }
services:
  big:
    command: ["/bin/sh", "-c", "head -c 50000000 /dev/zero | tr '\\000' x; exec sleep 1000"]
"#;
    let Some(run) = start(&dir, static_rinit(), yaml, |l| l) else {
        return;
    };
    let pid = run.inst.pid();
    let out_path = stdout_file(&dir);
    let mut worst_rss = 0;
    let prefix_len = "big | ".len();
    let total = 50_000_000u64;
    let done = wait_for(secs(60), || {
        worst_rss = worst_rss.max(rss_kib(pid));
        let len = std::fs::metadata(&out_path).map_or(0, |m| m.len());
        len >= total + (prefix_len as u64 + 1) * (total / 16384)
    });
    assert!(done, "the long line did not come out");
    let text = std::fs::read(&out_path).unwrap();
    let mut xs = 0u64;
    for line in text
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"big | "))
    {
        let body = &line[prefix_len..];
        assert!(body.len() <= 16 * 1024, "a piece of {} bytes", body.len());
        xs += body.len() as u64;
    }
    println!("50 MB line: worst RSS {worst_rss} KiB");
    assert_eq!(xs, total, "every byte came out once");
    assert!(worst_rss < 2048, "RSS reached {worst_rss} KiB");
}

/// The file the harness captures rinit's stdout in.
fn stdout_file(dir: &TestDir) -> PathBuf {
    let files = dir.path().read_dir().expect("test dir").flatten();
    files
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "stdout"))
        .expect("the stdout file")
}

#[test]
fn a_prompt_without_newline_shows_at_once() {
    let dir = TestDir::new("prompt");
    let yaml = r#"
health: { listen: "127.0.0.1:{port}" }
services:
  prompt:
    command: ["/bin/sh", "-c", "read go < {d}/fifo; printf 'Loading...'; exec sleep 1000"]
"#;
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let Some(run) = start(&dir, Path::new(RINIT), yaml, |l| l) else {
        return;
    };
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(b"go\n").unwrap();
    let t0 = Instant::now();
    let shown = wait_for(secs(5), || {
        run.inst.stdout().contains("prompt | Loading...\n")
    });
    let after = t0.elapsed();
    println!("a prompt without newline shown after {after:?}");
    assert!(shown, "the prompt never showed");
    assert!(after < Duration::from_millis(500), "{after:?}");
}

// ---------------------------------------------------------------------------
// 4. Leftovers holding a crash-looping service's stdout
// ---------------------------------------------------------------------------

#[test]
fn daemons_holding_a_crash_looping_services_pipes_keep_fds_bounded() {
    let dir = TestDir::new("daemon-pipes");
    let yaml = r#"
health: { listen: "127.0.0.1:{port}" }
services:
  leaky:
    command: ["/bin/sh", "-c", "setsid sleep 1000 & exit 1"]
    backoff: { initial: 1ms, max: 1ms }
    max_restarts: { count: 100000, within: 1s }
"#;
    let Some(run) = start(&dir, Path::new(RINIT), yaml, |l| l) else {
        return;
    };
    let pid = run.inst.pid();
    let fds0 = settled_fds(pid);
    let mut worst_threads = 0;
    let looped = wait_for(secs(90), || {
        worst_threads = worst_threads.max(threads(pid));
        restarts(run.port, "leaky") >= 1000
    });
    let fds1 = settled_fds(pid);
    println!("1000 restarts with leftovers: fds {fds0} -> {fds1}, threads at most {worst_threads}");
    assert!(looped, "did not reach 1000 restarts");
    assert_eq!(worst_threads, 4);
    // Two streams, at most four lingering pipes each, plus the live ones.
    assert!(fds1 <= fds0 + 10, "fds grew from {fds0} to {fds1}");
}

// ---------------------------------------------------------------------------
// 5. A pids limit
// ---------------------------------------------------------------------------

/// A pids cgroup (v1 or v2) the test may create, or None (with the reason
/// printed).
fn pids_cgroup(tag: &str) -> Option<PathBuf> {
    for base in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
        let base = Path::new(base);
        if !base.join("cgroup.procs").exists() {
            continue;
        }
        let dir = base.join(format!("rinit-test-{tag}-{}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() && dir.join("pids.max").exists() {
            return Some(dir);
        }
        let _ = std::fs::remove_dir(&dir);
    }
    println!("skipped: no writable pids cgroup (v1 /sys/fs/cgroup/pids or v2 with pids delegated)");
    None
}

#[test]
fn a_fork_bomb_under_a_pids_limit_costs_the_other_services_nothing() {
    let Some(cg) = pids_cgroup("bomb") else {
        return;
    };
    let dir = TestDir::new("pids");
    let py = python3();
    let yaml = format!(
        r#"
health: {{ listen: "127.0.0.1:{{port}}" }}
services:
  talker:
    command: ["{py}", "-u", "-c", "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)"]
  bomb:
    command: ["/bin/sh", "-c", "while [ ! -e {{d}}/go ]; do sleep 0.05; done; while :; do sleep 100 & done"]
    critical: false
  server:
    command: ["{py}", "-c", "import os, socket, time\nwhile not os.path.exists('{{d}}/listen'):\n    time.sleep(0.05)\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {{port2}}))\ns.listen(8)\nwhile True:\n    s.accept()[0].close()"]
    ready: {{ tcp: "127.0.0.1:{{port2}}", interval: 50ms, timeout: 500ms }}
"#,
        py = py.display()
    )
    .replace("{port2}", &free_port().to_string());
    let Some(run) = start(&dir, Path::new(RINIT), &yaml, |l| l) else {
        let _ = std::fs::remove_dir(&cg);
        return;
    };
    let pid = run.inst.pid();
    // rinit and everything it starts from now on live under the limit.
    let mut limit = 0;
    let services = wait_for(secs(10), || descendants(pid).len() >= 3);
    assert!(services, "the services did not start");
    for p in std::iter::once(pid).chain(descendants(pid).iter().map(|p| p.pid)) {
        if let Err(e) = std::fs::write(cg.join("cgroup.procs"), p.to_string()) {
            println!("cannot move {p} into {}: {e}", cg.display());
        }
    }
    if let Ok(cur) = std::fs::read_to_string(cg.join("pids.current")) {
        limit = cur.trim().parse::<u32>().unwrap_or(0) + 40;
    }
    std::fs::write(cg.join("pids.max"), limit.to_string()).expect("pids.max");
    let talker_pid = service_field(run.port, "talker", "pid");
    dir.write("go", b"");
    let full = wait_for(secs(20), || {
        std::fs::read_to_string(cg.join("pids.current"))
            .is_ok_and(|c| c.trim().parse::<u32>().unwrap_or(0) + 2 >= limit)
    });
    let current = std::fs::read_to_string(cg.join("pids.current")).unwrap_or_default();
    assert!(
        full,
        "the bomb did not reach the limit {limit}: pids.current {current}"
    );
    let ticks = |inst: &Instance| inst.stdout().matches("talker | tick").count();
    let before = ticks(&run.inst);
    std::thread::sleep(secs(2));
    let after = ticks(&run.inst);
    dir.write("listen", b"");
    let ready = wait_for(secs(10), || {
        service_field(run.port, "server", "state").is_some_and(|s| s == "\"running\"")
    });
    let same_talker = service_field(run.port, "talker", "pid") == talker_pid;
    println!(
        "under the pids limit: {} ticks in 2 s; server ready {ready}",
        after - before
    );
    // Let the namespace go before the cgroup is removed.
    let Running { inst, .. } = run;
    drop(inst);
    wait_for(secs(10), || {
        std::fs::read_to_string(cg.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty())
    });
    let _ = std::fs::remove_dir(&cg);
    assert!(
        after >= before + 10,
        "the talker's output stopped: {before} -> {after}"
    );
    assert!(same_talker, "the talker died (SIGPIPE?) and was restarted");
    assert!(
        ready,
        "the readiness probe did not work under the pids limit"
    );
}

// ---------------------------------------------------------------------------
// 6. Many services
// ---------------------------------------------------------------------------

#[test]
fn five_hundred_probed_services_run_on_four_threads() {
    let dir = TestDir::new("five-hundred");
    let py = python3();
    let n = 500;
    let base = loop {
        // 500 consecutive free ports, found by trying a block.
        let b = 20000 + (std::process::id() as u16 % 200) * 100 + (free_port() % 50);
        if (b..b + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            break b;
        }
    };
    let mut yaml = String::from("health: { listen: \"127.0.0.1:{port}\" }\nservices:\n");
    yaml.push_str(&format!(
        "  ports:\n    command: [\"{}\", \"-c\", \"import socket, time\\nss = []\\nfor p in range({base}, {}):\\n    s = socket.socket()\\n    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\\n    s.bind(('127.0.0.1', p))\\n    s.listen(64)\\n    ss.append(s)\\ntime.sleep(100000)\"]\n",
        py.display(),
        base + n
    ));
    for i in 0..n {
        yaml.push_str(&format!(
            "  s{i}:\n    command: [\"/bin/sh\", \"-c\", \"echo hello from {i}; exec sleep 1000\"]\n    ready: {{ tcp: \"127.0.0.1:{}\", interval: 100ms }}\n",
            base + i
        ));
    }
    let Some(run) = start(&dir, Path::new(RINIT), &yaml, |l| l) else {
        return;
    };
    let pid = run.inst.pid();
    let mut worst_threads = 0;
    let all_running = wait_for(secs(60), || {
        worst_threads = worst_threads.max(threads(pid));
        http(run.port, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    let hellos = run.inst.stdout().matches("hello from").count();
    println!("500 services: ready {all_running}, threads at most {worst_threads}, {hellos} lines relayed");
    assert!(all_running, "not all 500 became ready");
    assert_eq!(worst_threads, 4);
    assert!(wait_for(secs(5), || run
        .inst
        .stdout()
        .matches("hello from")
        .count()
        == 500));
}

// ---------------------------------------------------------------------------
// 7. SIGTERM at any moment of start-up
// ---------------------------------------------------------------------------

/// As PID 1, a signal that arrives while nothing handles or blocks it is
/// dropped by the kernel. The wrapper blocks SIGTERM (so the kernel's exec
/// window, before rinit's first instruction, cannot lose it), starts a
/// sender that waits for the exec and a random 0-2 ms more, then execs
/// rinit. rinit must keep SIGTERM blocked from its first instruction until
/// its signal thread takes it: every trial then ends with the command's
/// SIGTERM status, none hangs.
#[test]
fn sigterm_in_the_first_milliseconds_is_never_lost() {
    let dir = TestDir::new("early-term");
    let py = python3();
    let wrapper = dir.join("wrap.py");
    std::fs::write(
        &wrapper,
        r#"import os, random, signal, sys, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
delay = random.random() * 0.002
if os.fork() == 0:
    while True:
        try:
            if open('/proc/1/comm').read().strip() == 'rinit':
                break
        except OSError:
            pass
    end = time.perf_counter() + delay
    while time.perf_counter() < end:
        pass
    os.kill(1, signal.SIGTERM)
    os._exit(0)
os.execv(sys.argv[1], sys.argv[1:])
"#,
    )
    .unwrap();
    let trials = 300;
    let mut lost = Vec::new();
    let mut done = 0;
    while done < trials {
        let batch: Vec<_> = (0..4)
            .filter_map(|_| {
                Launch::new(RINIT)
                    .args(["-q", "--", "sleep", "1000"])
                    .wrap_inside([py.as_os_str(), wrapper.as_os_str()])
                    .start_pid1(&dir)
            })
            .collect();
        if batch.is_empty() {
            return;
        }
        for mut inst in batch {
            match inst.wait_exit(secs(10)).map(code_of) {
                Some(143) => {}
                other => lost.push(other),
            }
            done += 1;
        }
    }
    println!(
        "{done} trials, {} not ended by the early SIGTERM",
        lost.len()
    );
    assert!(lost.is_empty(), "outcomes other than 143: {lost:?}");
}
