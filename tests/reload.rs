//! `rinit ctl reload` end to end (SPEC section 11): rinit runs as PID 1 of a
//! fresh namespace; the test rewrites its config file and reloads, and the
//! kernel's view (pids, process groups, files the services write) and the
//! health and control sockets say what changed and what did not.

mod common;
#[path = "ctl/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use harness::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const STACK: &str = r#"
services:
  db:
    command: ["/bin/sh", "-c", "echo db $$ >> {d}/db.starts; exec sleep 1001"]
  web:
    command: ["/bin/sh", "-c", "echo web $$ >> {d}/web.starts; exec sleep 1002"]
    depends_on: [db]
  worker:
    command: ["/bin/sh", "-c", "sleep 1000 & exec sleep 1003"]
  batch:
    command: ["/bin/sh", "-c", "echo batch $$ >> {d}/batch.starts; exec sleep 1004"]
"#;

fn up(c: &Ctl, names: &[&str]) {
    for n in names {
        assert!(
            c.wait_state(n, "running"),
            "{n} not running: {}",
            c.inst.stderr()
        );
    }
}

fn pids(c: &Ctl, names: &[&str]) -> Vec<Option<i32>> {
    names.iter().map(|n| c.pid(n)).collect()
}

/// Rewrites the config the test started rinit with (`{d}`: the test dir).
fn rewrite(dir: &TestDir, yaml: &str) {
    let text = yaml.replace("{d}", &dir.path().display().to_string());
    dir.write("rinit.yaml", text.as_bytes());
}

fn lines(file: &str) -> usize {
    file.lines().count()
}

/// Waits until `name` has `n` lines (a service is ready once spawned, a
/// moment before its shell has written anything).
fn wait_lines(dir: &TestDir, name: &str, n: usize) -> usize {
    wait_for(secs(5), || lines(&dir.read(name).unwrap_or_default()) >= n);
    lines(&dir.read(name).unwrap_or_default())
}

#[test]
fn a_reload_adds_removes_restarts_and_leaves_the_rest_alone() {
    let dir = TestDir::new("reload-mixed");
    let Some(c) = start(&dir, STACK) else { return };
    up(&c, &["db", "web", "worker", "batch"]);
    let (db, web) = (c.pid("db"), c.pid("web"));
    let worker = c.pid("worker").expect("worker pid");
    assert_eq!(group_members(&c, worker).len(), 2, "worker and its sleep");
    // web's command changes, batch's backoff only, worker goes, cache
    // comes (depending on db), db stays as it is.
    let next = STACK
        .replace("exec sleep 1002", "exec sleep 1012")
        .replace(
            "  worker:\n    command: [\"/bin/sh\", \"-c\", \"sleep 1000 & exec sleep 1003\"]\n",
            "",
        )
        .replace(
            "  batch:\n",
            "  batch:\n    backoff: { initial: 1s }\n",
        )
        + "  cache:\n    command: [\"/bin/sh\", \"-c\", \"echo cache $$ >> {d}/cache.starts; exec sleep 1005\"]\n    depends_on: [db]\n";
    rewrite(&dir, &next);
    let batch = c.pid("batch");
    let out = c.ok(&["reload"]);
    for line in [
        "db: unchanged",
        "web: restarted (command changed): ready",
        "worker: removed: stopped",
        "batch: updated in place (backoff changed): kept running",
        "cache: started (added): ready",
        "reload applied",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert_eq!(c.pid("db"), db, "unchanged: same pid");
    assert_eq!(c.pid("batch"), batch, "a backoff change restarts nothing");
    assert_ne!(c.pid("web"), web, "a new command is a new process");
    assert_eq!(wait_lines(&dir, "web.starts", 2), 2);
    assert_eq!(wait_lines(&dir, "cache.starts", 1), 1);
    assert_eq!(
        lines(&dir.file("db.starts")),
        1,
        "cache started without touching db"
    );
    assert_eq!(lines(&dir.file("batch.starts")), 1);
    assert_eq!(c.state("cache"), "running");
    // The removed service is gone, its whole group with it, and forgotten.
    assert!(wait_for(secs(5), || group_members(&c, worker).is_empty()));
    let (code, _, err) = c.run(&["status", "worker"]);
    assert_ne!(code, 0, "forgotten: {err}");
    assert!(err.contains("no such service: worker"), "{err}");
    let log = c.inst.stderr();
    assert!(
        log.contains("reload: web: restarted (command changed)"),
        "{log}"
    );
    assert!(log.contains("control: reload"), "audited: {log}");
}

#[test]
fn a_changed_dependency_restarts_and_gates_its_changed_dependent() {
    let dir = TestDir::new("reload-gate");
    let yaml = r#"
services:
  db:
    command: ["/bin/sh", "-c", "rm -f {d}/db.ready; sleep 0.3; touch {d}/db.ready; exec sleep 1001"]
    ready: { exec: ["test", "-f", "{d}/db.ready"], interval: 50ms }
  web:
    command: ["/bin/sh", "-c", "test -f {d}/db.ready && echo saw-ready >> {d}/web.log; exec sleep 1002"]
    depends_on: [db]
  api:
    command: ["/bin/sh", "-c", "echo api $$ >> {d}/api.starts; exec sleep 1003"]
    depends_on: [db]
"#;
    let Some(c) = start(&dir, yaml) else { return };
    up(&c, &["db", "web", "api"]);
    let api = c.pid("api");
    // db's and web's commands change; api depends on db and is unchanged.
    // The marker goes first, so that only the new db can make it again.
    let _ = std::fs::remove_file(dir.join("db.ready"));
    rewrite(
        &dir,
        &yaml
            .replace("exec sleep 1001", "exec sleep 1011")
            .replace("exec sleep 1002", "exec sleep 1012"),
    );
    let out = c.ok(&["reload"]);
    assert!(
        out.contains("db: restarted (command changed): ready"),
        "{out}"
    );
    assert!(
        out.contains("web: restarted (command changed): ready"),
        "{out}"
    );
    assert!(out.contains("api: unchanged"), "{out}");
    // web started, both times, only once db was ready.
    assert_eq!(wait_lines(&dir, "web.log", 2), 2);
    assert_eq!(
        dir.read("web.log").as_deref(),
        Some("saw-ready\nsaw-ready\n")
    );
    assert_eq!(c.pid("api"), api, "an unchanged dependent keeps running");
}

#[test]
fn a_bad_file_changes_nothing_and_says_where() {
    let dir = TestDir::new("reload-bad");
    let Some(c) = start(&dir, STACK) else { return };
    up(&c, &["db", "web", "worker", "batch"]);
    let before = pids(&c, &["db", "web", "worker", "batch"]);
    dir.write("rinit.yaml", b"services:\n  web:\n    comand: x\n");
    let (code, out, err) = c.run(&["reload"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("rinit.yaml:3:5"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(before, pids(&c, &["db", "web", "worker", "batch"]));
    assert!(c.inst.stderr().contains("reload rejected"), "logged too");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let dir = TestDir::new("reload-plan");
    let Some(c) = start(&dir, STACK) else { return };
    up(&c, &["db", "web", "worker", "batch"]);
    let before = pids(&c, &["db", "web", "worker", "batch"]);
    rewrite(
        &dir,
        &STACK
            .replace("exec sleep 1002", "exec sleep 1012")
            .replace("  batch:\n", "  batch:\n    backoff: { initial: 1s }\n"),
    );
    let out = c.ok(&["reload", "--dry-run"]);
    for line in [
        "db: unchanged",
        "web: restart (command changed)",
        "batch: updated in place (backoff changed)",
        "dry run: nothing was changed",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert_eq!(before, pids(&c, &["db", "web", "worker", "batch"]));
    assert_eq!(lines(&dir.file("web.starts")), 1);
}

#[test]
fn a_renamed_service_is_a_stop_and_a_start() {
    let dir = TestDir::new("reload-rename");
    let Some(c) = start(&dir, STACK) else { return };
    up(&c, &["db", "web", "worker", "batch"]);
    let old = c.pid("batch").expect("batch");
    rewrite(&dir, &STACK.replace("  batch:\n", "  jobs:\n"));
    let out = c.ok(&["reload"]);
    assert!(out.contains("batch: removed: stopped"), "{out}");
    assert!(out.contains("jobs: started (added): ready"), "{out}");
    assert!(wait_for(secs(5), || group_members(&c, old).is_empty()));
    assert_eq!(c.state("jobs"), "running");
    assert_eq!(
        wait_lines(&dir, "batch.starts", 2),
        2,
        "the same command, again"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The status code of `GET /healthz`, or None when nothing answers.
fn healthz(port: u16) -> Option<u16> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, secs(2)).ok()?;
    s.set_read_timeout(Some(secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").ok()?;
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn health_listen_and_control_socket_move_on_reload() {
    let dir = TestDir::new("reload-sockets");
    let (a, b) = (free_port(), free_port());
    let yaml = format!(
        "health:\n  listen: 127.0.0.1:{a}\ncontrol:\n  socket: {{d}}/one.sock\nservices:\n  app:\n    command: [sleep, \"1000\"]\n"
    );
    rewrite(&dir, &yaml);
    // No --control: the file's socket is the one in use, and moves.
    let Some(inst) = Launch::new(RINIT)
        .arg("-c")
        .arg(dir.join("rinit.yaml"))
        .start_pid1(&dir)
    else {
        return;
    };
    let mut c = Ctl {
        inst,
        sock: dir.join("one.sock"),
    };
    assert!(
        wait_for(secs(10), || healthz(a) == Some(200)),
        "{}",
        c.inst.stderr()
    );
    // /healthz answers before app is spawned: its pid is taken once it runs.
    assert!(c.wait_state("app", "running"), "{}", c.inst.stderr());
    let app = c.pid("app");
    rewrite(
        &dir,
        &yaml
            .replace(&a.to_string(), &b.to_string())
            .replace("one.sock", "two.sock"),
    );
    let out = c.ok(&["reload"]);
    assert!(
        out.contains(&format!("health: 127.0.0.1:{a} -> 127.0.0.1:{b}")),
        "{out}"
    );
    assert!(out.contains("two.sock"), "{out}");
    assert_eq!(healthz(b), Some(200), "answers on the new port");
    assert_eq!(healthz(a), None, "and no longer on the old one");
    assert!(!dir.exists("one.sock"), "the old socket file is removed");
    c.sock = dir.join("two.sock");
    assert_eq!(c.pid("app"), app);
    // A port that cannot be bound rejects the whole reload.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    rewrite(
        &dir,
        &yaml
            .replace(&a.to_string(), &port.to_string())
            .replace("one.sock", "two.sock")
            .replace("sleep, \"1000\"", "sleep, \"1001\""),
    );
    let (code, out, err) = c.run(&["reload"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    assert_eq!(c.pid("app"), app, "rejected: nothing restarted");
    assert_eq!(healthz(b), Some(200), "still on the current port");
}

fn threads(pid: i32) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

#[test]
fn a_hundred_no_op_reloads_restart_nothing_and_leak_nothing() {
    let dir = TestDir::new("reload-noop");
    let Some(c) = start(&dir, STACK) else { return };
    up(&c, &["db", "web", "worker", "batch"]);
    let before = pids(&c, &["db", "web", "worker", "batch"]);
    c.ok(&["reload"]);
    let rinit = c.inst.pid();
    let (fds, tasks) = (open_fds(rinit).len(), threads(rinit));
    for _ in 0..100 {
        let out = c.ok(&["reload"]);
        assert!(out.contains("reload applied"), "{out}");
    }
    assert_eq!(before, pids(&c, &["db", "web", "worker", "batch"]));
    for n in ["db", "web", "worker", "batch"] {
        assert_eq!(c.field(n, "restarts").as_deref(), Some("0"), "{n}");
    }
    assert_eq!(lines(&dir.file("web.starts")), 1);
    assert_eq!(open_fds(rinit).len(), fds, "no descriptor growth");
    assert_eq!(threads(rinit), tasks, "no thread growth");
}

#[test]
fn a_reload_while_a_service_crash_loops_fixes_it() {
    let dir = TestDir::new("reload-crashloop");
    let yaml = r#"
services:
  app:
    command: [sleep, "1000"]
  flaky:
    command: ["/bin/sh", "-c", "echo try >> {d}/flaky.tries; exit 3"]
    critical: false
    backoff: { initial: 200ms, max: 200ms }
"#;
    let Some(c) = start(&dir, yaml) else { return };
    up(&c, &["app"]);
    assert!(dir.wait_contains("flaky.tries", "try\ntry\n", secs(10)));
    let app = c.pid("app");
    // Unchanged while it crash-loops: answered at once, nothing else moves.
    let out = c.ok(&["reload"]);
    assert!(out.contains("flaky: unchanged"), "{out}");
    rewrite(
        &dir,
        &yaml.replace("exit 3", "echo fixed >> {d}/flaky.tries; exec sleep 1000"),
    );
    let out = c.ok(&["reload"]);
    assert!(
        out.contains("flaky: restarted (command changed): ready"),
        "{out}"
    );
    assert_eq!(c.state("flaky"), "running");
    assert_eq!(c.pid("app"), app);
}

#[test]
fn a_reload_during_a_shutdown_is_refused() {
    let dir = TestDir::new("reload-shutdown");
    let yaml = r#"
services:
  stubborn:
    command: ["/bin/sh", "-c", "trap 'echo term >> {d}/term' TERM; echo up > {d}/up; while :; do sleep 0.05; done"]
    stop_timeout: 5s
"#;
    let Some(mut c) = start(&dir, yaml) else {
        return;
    };
    assert!(dir.wait_contains("up", "up", secs(10)));
    c.inst.signal(15);
    assert!(
        dir.wait_contains("term", "term", secs(10)),
        "{}",
        c.inst.stderr()
    );
    let (code, out, err) = c.run(&["reload"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("shutting down"),
        "{out}{err}"
    );
    assert!(c.inst.wait_exit(secs(15)).is_some());
}

#[test]
fn a_restarted_service_that_does_not_come_up_fails_the_reload_by_name() {
    let dir = TestDir::new("reload-fails");
    let Some(c) = start(&dir, STACK) else { return };
    up(&c, &["db", "web", "worker", "batch"]);
    let db = c.pid("db");
    // batch's new command exits before its readiness check passes, and
    // with `restart: never` that is its end: the reload says so, exit 1.
    rewrite(
        &dir,
        &STACK.replace(
            "exec sleep 1004\"]\n",
            "sleep 0.2; exit 7\"]\n    ready: { exec: [\"false\"], interval: 50ms }\n    restart: never\n    critical: false\n",
        ),
    );
    let (code, out, err) = c.run(&["reload"]);
    assert_eq!(code, 1, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("batch: restarted (command, ready changed): failed (exit code 7)"),
        "{all}"
    );
    assert!(
        all.contains("not everything it started became ready"),
        "{all}"
    );
    assert_eq!(c.pid("db"), db);
    // The next reload is not blocked by the failed one.
    let out = c.ok(&["reload"]);
    assert!(out.contains("batch: unchanged"), "{out}");
}

#[test]
fn a_config_given_by_a_relative_path_is_found_again_at_reload() {
    let dir = TestDir::new("reload-relative");
    rewrite(&dir, STACK);
    // `-c rinit.yaml` from the test dir: rinit leaves that directory at
    // its first spawn, and must still reread the same file.
    let sock = dir.join("ctl.sock");
    let Some(inst) = Launch::new(RINIT)
        .cwd(dir.path())
        .args(["-c", "rinit.yaml", "--control"])
        .arg(&sock)
        .start_pid1(&dir)
    else {
        return;
    };
    let c = Ctl { inst, sock };
    up(&c, &["db", "web", "worker", "batch"]);
    rewrite(&dir, &STACK.replace("exec sleep 1002", "exec sleep 1012"));
    let out = c.ok(&["reload"]);
    assert!(
        out.contains("web: restarted (command changed): ready"),
        "{out}"
    );
}
