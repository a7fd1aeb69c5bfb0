//! What is left of a service's process group (SPEC section 5) and stopped
//! processes (SIGCONT after the stop signal), end to end with rinit as PID
//! 1 of a fresh namespace, including Debian's real nginx. Every wait is
//! bounded; every process is killed by pid at the end.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");
const LONG: Duration = Duration::from_secs(20);

fn start(dir: &TestDir, yaml: &str, extra: &[&str]) -> Option<Instance> {
    let text = yaml.replace("{d}", &dir.file(""));
    dir.write("rinit.yaml", text.as_bytes());
    Launch::new(RINIT)
        .arg("-c")
        .arg(dir.join("rinit.yaml"))
        .args(extra)
        .start_pid1(dir)
}

/// The command line of `pid`, arguments joined by spaces.
fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.join(" ")
}

#[test]
fn leftovers_of_the_group_are_stopped_before_the_restart() {
    let dir = TestDir::new("drain-restart");
    let yaml = r#"
services:
  gen:
    command: "echo x >> {d}/starts; sleep 1000 & exec sleep 0.3"
    backoff: { initial: 0s, max: 0s }
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    let mut worst: Vec<(i32, i32)> = Vec::new();
    let restarted = wait_for(LONG, || {
        let leftovers: Vec<(i32, i32)> = inst
            .processes()
            .into_iter()
            .filter(|p| !p.is_zombie() && cmdline(p.pid) == "sleep 1000")
            .map(|p| (p.pid, p.pgrp))
            .collect();
        if leftovers.len() > worst.len() {
            worst = leftovers;
        }
        dir.read("starts").is_some_and(|t| t.lines().count() >= 4)
    });
    assert!(restarted, "never restarted 3 times: {}", inst.stderr());
    assert!(
        worst.len() <= 1,
        "processes of earlier generations outlived their leader: {worst:?}"
    );
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
}

/// Nanoseconds since the epoch, as `date +%s%N` wrote them into `name`.
fn stamp(dir: &TestDir, name: &str) -> u128 {
    let text = dir
        .wait_line(name, LONG)
        .unwrap_or_else(|| panic!("{name} never written"));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {text:?}"))
}

#[test]
fn a_stop_wave_waits_for_the_whole_group_not_just_its_leader() {
    let dir = TestDir::new("drain-wave");
    // web's leader dies at once on SIGTERM; a child of its group takes
    // 300 ms to finish. db (the next wave) must not hear SIGTERM before.
    let yaml = r#"
services:
  db:
    command: "trap 'date +%s%N > {d}/db.term; exit 0' TERM; echo up > {d}/db.up; while :; do sleep 0.01; done"
  web:
    command: "sh -c 'trap \"sleep 0.3; date +%s%N > {d}/child.done; exit 0\" TERM; echo up > {d}/child.up; while :; do sleep 0.01; done' & exec sleep 1000"
    depends_on: [db]
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert!(dir.wait_line("db.up", LONG).is_some(), "{}", inst.stderr());
    assert!(
        dir.wait_line("child.up", LONG).is_some(),
        "{}",
        inst.stderr()
    );
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
    let (child, db) = (stamp(&dir, "child.done"), stamp(&dir, "db.term"));
    assert!(
        child < db,
        "db was stopped {} ms before web's group was empty",
        (child - db) / 1_000_000
    );
}

/// Waits until `pid` is stopped (state T).
fn wait_stopped(pid: i32) -> bool {
    wait_for(LONG, || proc_info(pid).is_some_and(|p| p.state == 'T'))
}

#[test]
fn a_stopped_service_gets_sigcont_after_its_stop_signal() {
    let dir = TestDir::new("drain-cont");
    let yaml = "services:\n  frozen:\n    command: [sleep, \"1000\"]\n    stop_timeout: 5s\n";
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    let sleep = inst.wait_process("sleep", LONG).expect("sleep runs");
    assert!(kill(sleep.pid, libc::SIGSTOP));
    assert!(wait_stopped(sleep.pid));
    let t = Instant::now();
    inst.signal(libc::SIGTERM);
    assert_eq!(
        inst.expect_exit(LONG),
        0,
        "the stopped service was SIGKILLed instead of acting on SIGTERM: {}",
        inst.stderr()
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn a_stopped_command_gets_sigcont_after_the_signal() {
    let dir = TestDir::new("drain-cont-main");
    let Some(mut inst) = Launch::new(RINIT)
        .args(["--grace", "5s", "--", "sleep", "1000"])
        .start_pid1(&dir)
    else {
        return;
    };
    let sleep = inst.wait_process("sleep", LONG).expect("sleep runs");
    assert!(kill(sleep.pid, libc::SIGSTOP));
    assert!(wait_stopped(sleep.pid));
    let t = Instant::now();
    inst.signal(libc::SIGTERM);
    assert_eq!(
        inst.expect_exit(LONG),
        128 + libc::SIGTERM,
        "{}",
        inst.stderr()
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

// ---------------------------------------------------------------------------
// Debian's nginx: kill -9 of the master
// ---------------------------------------------------------------------------

const NGINX: &str = "/usr/sbin/nginx";

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// GET over HTTP/1.0: (status code, whole response), or an error.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {out:?}"))?;
    Ok((code, out))
}

/// `"key":value` of the service `name` in a /status body, as text.
fn status_field(body: &str, name: &str, key: &str) -> Option<String> {
    let at = body.find(&format!("{{\"name\":\"{name}\""))?;
    let service = &body[at..at + body[at..].find('}')?];
    let from = service.find(&format!("\"{key}\":"))? + key.len() + 3;
    let value = &service[from..];
    let end = value.find([',', '}']).unwrap_or(value.len());
    Some(value[..end].trim_matches('"').to_string())
}

fn nginx_conf(dir: &TestDir, port: u16) -> String {
    let d = dir.file("");
    format!(
        "daemon off;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 \"served\\n\"; }}
    }}
}}
"
    )
}

#[test]
fn nginx_master_killed_leaves_no_worker_and_the_new_master_serves() {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} is not installed (apt-get install nginx)");
        return;
    }
    let dir = TestDir::new("drain-nginx");
    let (port, health) = (free_port(), free_port());
    dir.write("nginx.conf", nginx_conf(&dir, port).as_bytes());
    let yaml = format!(
        "health: {{ listen: \"127.0.0.1:{health}\" }}
services:
  nginx:
    command: [\"{NGINX}\", \"-p\", \"{{d}}\", \"-c\", \"{{d}}/nginx.conf\", \"-e\", \"{{d}}/error.log\"]
    ready: {{ tcp: \"127.0.0.1:{port}\", interval: 50ms }}
    stop_signal: SIGQUIT
"
    );
    let Some(mut inst) = start(&dir, &yaml, &[]) else {
        return;
    };
    let status = |field: &str| {
        let body = http_get(health, "/status").ok()?.1;
        status_field(&body, "nginx", field)
    };
    assert!(
        wait_for(LONG, || status("state").as_deref() == Some("running")),
        "nginx never ran: {}\n{:?}",
        inst.stderr(),
        dir.read("error.log")
    );
    let rinit = inst.pid();
    let nginx = |ppid: i32| -> Vec<i32> {
        inst.processes()
            .into_iter()
            .filter(|p| p.name == "nginx" && p.ppid == ppid && !p.is_zombie())
            .map(|p| p.pid)
            .collect()
    };
    let master = wait_for_some(LONG, || nginx(rinit).first().copied()).expect("master");
    let workers =
        wait_for_some(LONG, || Some(nginx(master)).filter(|w| w.len() == 2)).expect("two workers");
    assert!(kill(master, libc::SIGKILL));
    assert!(
        wait_for(LONG, || status("restarts").as_deref() == Some("1")
            && status("state").as_deref() == Some("running")),
        "nginx was not restarted once: {:?}; {}",
        http_get(health, "/status"),
        inst.stderr()
    );
    for w in &workers {
        assert!(
            proc_info(*w).is_none_or(|p| p.name != "nginx"),
            "worker {w} of the killed master is still there"
        );
    }
    let (code, body) = http_get(port, "/").expect("the new nginx serves");
    assert_eq!(code, 200, "{body}");
    assert!(body.ends_with("served\n"), "{body}");
    let log = dir.read("error.log").unwrap_or_default();
    assert!(!log.contains("Address already in use"), "{log}");
    assert_eq!(status("restarts").as_deref(), Some("1"));
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
}

// ---------------------------------------------------------------------------
// A process that survives SIGKILL: frozen by the cgroup v1 freezer, it sits
// in state D and dies only once thawed.
// ---------------------------------------------------------------------------

const FREEZER: &str = "/sys/fs/cgroup/freezer";

/// A freezer cgroup of the test's own; thawed and removed when dropped, so
/// that the frozen process (SIGKILLed by then) can die.
struct Frozen {
    path: std::path::PathBuf,
}

impl Frozen {
    fn new(tag: &str) -> Option<Frozen> {
        let path = Path::new(FREEZER).join(format!("rinit-test-{tag}-{}", std::process::id()));
        std::fs::create_dir(&path).ok()?;
        Some(Frozen { path })
    }

    fn freeze(&self, pid: i32) -> bool {
        let state = self.path.join("freezer.state");
        std::fs::write(self.path.join("tasks"), pid.to_string()).is_ok()
            && std::fs::write(&state, "FROZEN").is_ok()
            && wait_for(LONG, || {
                std::fs::read_to_string(&state).is_ok_and(|s| s.trim() == "FROZEN")
            })
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path.join("freezer.state"), "THAWED");
        wait_for(LONG, || {
            std::fs::read_to_string(self.path.join("tasks")).is_ok_and(|t| t.trim().is_empty())
        });
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[test]
fn a_process_that_survives_sigkill_is_logged_and_rinit_exits_1() {
    let Some(frozen) = Frozen::new("dstate") else {
        eprintln!("skipped: cannot create a cgroup under {FREEZER} (no v1 freezer, or not root)");
        return;
    };
    let dir = TestDir::new("drain-dstate");
    let mut inst = Launch::new(RINIT)
        .args(["--grace", "1s", "--", "sleep", "1000"])
        .start_subreaper(&dir);
    let sleep = inst.wait_process("sleep", LONG).expect("sleep runs");
    assert!(frozen.freeze(sleep.pid), "cannot freeze {}", sleep.pid);
    assert_eq!(proc_info(sleep.pid).map(|p| p.state), Some('D'));
    let t = Instant::now();
    inst.signal(libc::SIGTERM);
    // The grace period (1 s), SIGKILL, then 5 s for it to take effect.
    assert_eq!(inst.expect_exit(LONG), 1, "{}", inst.stderr());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(9),
        "{took:?}"
    );
    let log = inst.stderr();
    assert!(log.contains("processes survived SIGKILL"), "{log}");
    assert!(
        log.contains(&format!("{} (sleep) D", sleep.pid)),
        "the survivor is named with its state: {log}"
    );
    drop(frozen);
    assert!(wait_for(LONG, || proc_info(sleep.pid).is_none_or(|p| p.is_zombie())));
}
