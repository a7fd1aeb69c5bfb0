//! `rinit ctl` end to end (SPEC section 10): rinit runs as PID 1 of a fresh
//! namespace with its control socket in the test directory; the built
//! binary's `ctl` verbs (and raw HTTP on the socket) operate it, and the
//! kernel's view (/proc, files the services write) says what happened.

mod common;
#[path = "ctl/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use harness::*;

const STACK: &str = r#"
services:
  db:
    command: ["/bin/sh", "-c", "echo db $$ >> {d}/db.starts; sleep 1000 & exec sleep 1001"]
  web:
    command: ["/bin/sh", "-c", "trap 'echo hup >> {d}/web.hup' HUP; echo web started; while :; do sleep 0.05; done"]
    depends_on: [db]
  worker:
    command: ["/bin/sh", "-c", "trap 'echo hup >> {d}/worker.hup' HUP; while :; do sleep 0.05; done"]
    depends_on: [db]
"#;

#[test]
fn status_table_and_json() {
    let dir = TestDir::new("ctl-status");
    let Some(c) = start(&dir, STACK) else { return };
    assert!(c.wait_state("web", "running") && c.wait_state("worker", "running"));
    let table = c.ok(&["status"]);
    let header = table.lines().next().unwrap_or("");
    for col in [
        "NAME",
        "STATE",
        "WANTED",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "READY",
        "LIVENESS",
        "NOTIFY",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let web = table
        .lines()
        .find(|l| l.starts_with("web "))
        .expect("web row");
    assert!(
        web.contains("running") && web.contains(" up ") && web.ends_with("yes    -         -"),
        "{web}"
    );
    // Columns line up: every row's STATE starts where the header's does.
    let col = header.find("STATE").unwrap();
    for l in table.lines().skip(1) {
        assert_eq!(
            l[col..].chars().next().map(|ch| ch.is_alphabetic()),
            Some(true),
            "{table}"
        );
    }
    let one = c.ok(&["status", "db"]);
    assert_eq!(one.lines().count(), 2, "{one}");
    let (code, body) = c.http("GET", "/v1/services");
    assert_eq!(code, 200);
    assert!(
        body.contains("\"wanted\":\"up\"") && body.contains("\"ready\":true"),
        "{body}"
    );
    let (code, _, err) = c.run(&["status", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no such service: nope"), "{err}");
}

#[test]
fn stop_makes_a_service_down_and_start_brings_it_back() {
    let dir = TestDir::new("ctl-stop");
    let Some(c) = start(&dir, STACK) else { return };
    assert!(c.wait_state("worker", "running"));
    let db = c.pid("db").expect("db pid");
    let web_before = c.pid("web");
    assert_eq!(
        group_members(&c, db).len(),
        2,
        "db and its background sleep"
    );
    let out = c.ok(&["stop", "db"]);
    assert!(
        out.contains("db:") && out.contains("web") && out.contains("worker"),
        "names the dependents: {out}"
    );
    assert_eq!(c.state("db"), "down");
    assert!(
        group_members(&c, db).is_empty(),
        "every process of db's group is gone"
    );
    assert_eq!(c.pid("web"), web_before, "dependents untouched");
    // Down is not failing: /healthz-equivalent in /status says healthy.
    let (_, body) = c.http("GET", "/v1/services");
    assert!(body.starts_with("{\"healthy\":true"), "{body}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.state("db"), "down", "not restarted");
    // Every service down: rinit keeps running.
    c.ok(&["stop", "web", "worker"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.state("web"), "down");
    assert!(
        c.run(&["status"]).0 == 0,
        "rinit still answers with everything down"
    );
    // start web: its dependency db comes up first.
    let out = c.ok(&["start", "web"]);
    assert!(out.contains("web: ready"), "{out}");
    assert_eq!(c.state("db"), "running");
    let starts = dir.read("db.starts").unwrap_or_default();
    assert_eq!(starts.lines().count(), 2, "db started twice: {starts}");
    assert_eq!(
        c.state("worker"),
        "down",
        "only what was asked, and its dependencies"
    );
}

#[test]
fn restart_keeps_the_crash_counters_and_signal_reaches_one_group() {
    let dir = TestDir::new("ctl-restart");
    let Some(c) = start(&dir, STACK) else { return };
    assert!(c.wait_state("web", "running") && c.wait_state("worker", "running"));
    let old = c.pid("web");
    let out = c.ok(&["restart", "web"]);
    assert!(out.contains("web:"), "{out}");
    assert_ne!(c.pid("web"), old);
    assert_eq!(c.state("web"), "running");
    assert_eq!(c.field("web", "restarts").as_deref(), Some("0"));
    assert_eq!(c.field("web", "restarts_operator").as_deref(), Some("1"));
    c.ok(&["signal", "HUP", "web"]);
    assert!(dir.wait_line("web.hup", secs(5)).is_some(), "web got HUP");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!dir.exists("worker.hup"), "worker did not");
    let (code, _, err) = c.run(&["signal", "BOGUS", "web"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn start_of_a_failed_service_gets_a_fresh_window() {
    let dir = TestDir::new("ctl-failed");
    let yaml = r#"
services:
  flaky:
    command: ["/bin/sh", "-c", "if [ -e {d}/fixed ]; then exec sleep 1000; fi; exit 3"]
    backoff: { initial: 10ms, max: 10ms }
    max_restarts: { count: 3, within: 60s }
    critical: false
  steady:
    command: ["sleep", "1000"]
"#;
    let Some(c) = start(&dir, yaml) else { return };
    assert!(c.wait_state("flaky", "failed"));
    dir.write("fixed", b"");
    let out = c.ok(&["start", "flaky"]);
    assert!(out.contains("flaky: ready"), "{out}");
    assert_eq!(c.state("flaky"), "running");
}

#[test]
fn logs_tail_and_follow() {
    let dir = TestDir::new("ctl-logs");
    let yaml = r#"
services:
  talker:
    command: ["/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; while [ ! -e {d}/more ]; do sleep 0.02; done; echo after follow; exec sleep 1000"]
  other:
    command: ["/bin/sh", "-c", "echo from other; exec sleep 1000"]
"#;
    let Some(c) = start(&dir, yaml) else { return };
    assert!(wait_for(secs(5), || c
        .run(&["logs"])
        .1
        .contains("from other")));
    let tail = c.ok(&["logs", "-n", "2", "talker"]);
    assert_eq!(tail, "talker | line 4\ntalker | line 5\n");
    let all = c.ok(&["logs"]);
    assert!(
        all.contains("talker | line 1") && all.contains("other | from other"),
        "{all}"
    );
    let mut follower = Command::new(RINIT)
        .args(["ctl", "--control"])
        .arg(&c.sock)
        .args(["logs", "-f", "-n", "0", "talker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = follower.stdout.take().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    dir.write("more", b"");
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("after follow") && t0.elapsed() < secs(5) {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let took = t0.elapsed();
    let _ = follower.kill();
    let _ = follower.wait();
    println!("logs -f: a new line arrived after {took:?}");
    assert_eq!(String::from_utf8_lossy(&got), "talker | after follow\n");
    assert!(took < secs(1), "{took:?}");
}

#[test]
fn a_stalled_follower_loses_lines_and_slows_nobody() {
    let dir = TestDir::new("ctl-stall");
    let yaml = r#"
services:
  firehose:
    command: ["/bin/sh", "-c", "while [ ! -e {d}/go ]; do sleep 0.02; done; yes 'a line of some forty bytes of output....' | head -n 500000; touch {d}/done; exec sleep 1000"]
"#;
    let Some(c) = start(&dir, yaml) else { return };
    // A follower that never reads.
    let mut s = UnixStream::connect(&c.sock).unwrap();
    write!(s, "GET /v1/logs?service=firehose&follow=1 HTTP/1.1\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    dir.write("go", b"");
    assert!(
        wait_for(secs(60), || dir.exists("done")),
        "the firehose did not finish"
    );
    let took = t0.elapsed();
    // Now read what the follower got: the gap is marked.
    s.set_read_timeout(Some(secs(2))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || got.len() > 64 << 20 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&got).contains("bytes dropped") {
            break;
        }
    }
    println!(
        "20 MB with a stalled follower: done in {took:?}, follower read {} bytes",
        got.len()
    );
    assert!(
        String::from_utf8_lossy(&got).contains("rinit: "),
        "the gap is marked"
    );
    assert!(took < secs(20), "the service was slowed: {took:?}");
}

#[test]
fn non_root_may_ask_status_only_and_errors_exit_as_documented() {
    let dir = TestDir::new("ctl-perm");
    let Some(c) = start(&dir, STACK) else { return };
    if !Path::new("/usr/bin/setpriv").exists() || sys_uid() != 0 {
        println!("skipped: needs root and setpriv");
        return;
    }
    let (code, out, err) = c.run_as(Some(65534), &["status"]);
    assert_eq!(code, 0, "{out}{err}");
    for args in [&["stop", "web"][..], &["logs"][..]] {
        let (code, _, err) = c.run_as(Some(65534), args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains("permission denied"), "{err}");
    }
    assert_eq!(c.state("web"), "running", "nothing changed");
    assert!(
        c.inst.stderr().contains("denied to uid 65534"),
        "audit line"
    );
    let (code, _, err) = c.run(&["stop", "nope"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = c.run(&["--control", "/nonexistent/x.sock", "status"]);
    assert_eq!(code, 3);
    assert!(err.contains("/nonexistent/x.sock"), "{err}");
}

fn sys_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

#[test]
fn a_stale_socket_is_replaced_and_an_unwritable_runtime_dir_is_one_warning() {
    let dir = TestDir::new("ctl-stale");
    // A socket file nothing listens on, as a kill -9 leaves behind.
    let stale = std::os::unix::net::UnixListener::bind(dir.join("ctl.sock")).unwrap();
    drop(stale);
    assert!(dir.join("ctl.sock").exists());
    let Some(c) = start(&dir, STACK) else { return };
    assert!(c.inst.stderr().contains("control socket on"));
    drop(c);
    // A runtime dir under a file: cannot be made.
    let dir2 = TestDir::new("ctl-nodir");
    dir2.write(
        "rinit.yaml",
        b"services:\n  a:\n    command: [\"sleep\", \"1000\"]\n",
    );
    dir2.write("blocker", b"");
    let Some(mut inst) = Launch::new(RINIT)
        .arg("-c")
        .arg(dir2.join("rinit.yaml"))
        .env("RINIT_RUNTIME_DIR", dir2.join("blocker").join("rt"))
        .start_pid1(&dir2)
    else {
        return;
    };
    assert!(wait_for(secs(5), || inst.stderr().contains("a: running")));
    let err = inst.stderr();
    assert_eq!(err.matches("warning: control").count(), 1, "{err}");
    assert!(err.contains("--tmpfs /run"), "names the fix: {err}");
    assert!(inst.poll_exit().is_none(), "runs without control");
}

#[test]
fn many_clients_do_not_delay_restarts_or_probes() {
    let dir = TestDir::new("ctl-busy");
    let yaml = r#"
services:
  flapper:
    command: ["/bin/sh", "-c", "exit 1"]
    backoff: { initial: 10ms, max: 10ms }
    max_restarts: { count: 100000, within: 1s }
  steady:
    command: ["sleep", "1000"]
"#;
    let Some(c) = start(&dir, yaml) else { return };
    let idle: Vec<UnixStream> = (0..60)
        .filter_map(|_| UnixStream::connect(&c.sock).ok())
        .collect();
    let r0: u64 = c
        .field("flapper", "restarts")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let t0 = Instant::now();
    let sock = c.sock.clone();
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut ok = 0;
                for _ in 0..10 {
                    if let Ok(mut s) = UnixStream::connect(&sock) {
                        let _ = s.set_read_timeout(Some(secs(5)));
                        let _ = write!(s, "GET /v1/services HTTP/1.1\r\n\r\n");
                        let mut out = String::new();
                        let _ = s.read_to_string(&mut out);
                        if out.starts_with("HTTP/1.1 200") {
                            ok += 1;
                        }
                    }
                }
                ok
            })
        })
        .collect();
    let answered: i32 = clients.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    std::thread::sleep(secs(1));
    let r1: u64 = c
        .field("flapper", "restarts")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let elapsed = t0.elapsed().as_secs_f64();
    println!("{answered} of 500 status requests answered beside {} idle connections; {} restarts in {elapsed:.1} s", idle.len(), r1 - r0);
    assert!(answered >= 450, "{answered}");
    // At 10 ms backoff plus a spawn, dozens of restarts a second.
    assert!(
        (r1 - r0) as f64 >= 20.0 * elapsed,
        "restarts slowed: {} in {elapsed:.1} s",
        r1 - r0
    );
}
