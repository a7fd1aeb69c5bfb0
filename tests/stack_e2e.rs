//! Real daemons under rinit in a real Docker engine: the image of
//! `examples/stack/` (PostgreSQL, Redis, a python3 app, nginx) built on a
//! Debian root made with debootstrap (`tests/docker/debian-base.sh`, cached
//! by its hash, so a machine builds it once).
//!
//! Skips, saying why, when `docker info` fails or the Debian mirror cannot
//! be reached. Every wait has a deadline; every container and stack image
//! is removed when its test ends (the base image is the cache and stays).

#[path = "docker/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use harness::*;

/// Docker's default `docker stop` grace; the stack must end well inside it.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// First start: initdb, then every daemon; generous for a loaded 2-CPU CI.
const UP: Duration = Duration::from_secs(90);

/// The debootstrap base image's tag, or why there is none (skip).
fn debian_base() -> Result<&'static str, String> {
    static BASE: OnceLock<Result<String, String>> = OnceLock::new();
    BASE.get_or_init(|| {
        let script = Path::new(MANIFEST_DIR).join("tests/docker/debian-base.sh");
        let out = try_run(Command::new("bash").arg(script), Duration::from_secs(1200))?;
        match out.code {
            Some(0) => Ok(out.stdout.trim().to_string()),
            Some(77) => Err(out.stderr.trim().to_string()),
            _ => panic!("building the Debian base image failed\n{out}"),
        }
    })
    .as_ref()
    .map(String::as_str)
    .map_err(Clone::clone)
}

/// The stack image over the Debian base, or None (printed why) to skip.
fn stack_image(test: &str) -> Option<Image> {
    if !have_docker(test) {
        return None;
    }
    let base = match debian_base() {
        Ok(tag) => tag,
        Err(why) => {
            eprintln!("skipping {test}: {why}");
            return None;
        }
    };
    let name = format!("stack-{}", test.replace('_', "-"));
    let ctx = TempDir(std::env::temp_dir().join(unique(&name)));
    let _ = std::fs::remove_dir_all(&ctx.0);
    std::fs::create_dir_all(&ctx.0).expect("context dir");
    let example = Path::new(MANIFEST_DIR).join("examples/stack");
    for entry in std::fs::read_dir(&example).expect("examples/stack") {
        let path = entry.expect("examples/stack entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            let to = ctx.0.join(path.file_name().expect("a file name"));
            std::fs::copy(&path, to).expect("copy an example file");
        }
    }
    std::fs::copy(static_rinit(), ctx.0.join("rinit")).expect("copy rinit");
    let arg = format!("BASE={base}");
    Some(Image::build_context(&name, &ctx.0, &["--build-arg", &arg]))
}

/// One row of `rinit ctl status`.
#[derive(Debug, PartialEq)]
struct Row {
    state: String,
    pid: String,
    restarts: String,
}

fn status(c: &Container) -> std::collections::HashMap<String, Row> {
    let out = c.exec(&["/sbin/rinit", "ctl", "status"]);
    assert!(out.ok(), "rinit ctl status\n{out}");
    out.stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let row = Row {
                state: f.get(1)?.to_string(),
                pid: f.get(3)?.to_string(),
                restarts: f.get(5)?.to_string(),
            };
            Some((f.first()?.to_string(), row))
        })
        .collect()
}

/// GET http://127.0.0.1:8080/ inside the container: through nginx to the
/// app, which asks Redis and PostgreSQL.
fn get_through_nginx(c: &Container) -> String {
    let py = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/', timeout=5).read().decode(), end='')";
    let out = c.exec(&["python3", "-c", py]);
    assert!(out.ok(), "GET through nginx\n{out}\n{}", c.describe());
    out.stdout
}

/// Waits for Docker's health status `healthy`; how long it took.
fn wait_healthy(c: &Container, since: Instant) -> Duration {
    wait_for(
        "docker's health status to be healthy",
        UP,
        || (c.inspect("{{.State.Health.Status}}") == "healthy").then_some(()),
        || c.describe(),
    );
    since.elapsed()
}

fn start_stack(name: &str, image: &Image, extra: &[&str]) -> (Container, Duration) {
    let t = Instant::now();
    let mut args = vec!["--health-interval", "250ms", "--health-start-period", "60s"];
    args.extend_from_slice(extra);
    args.push(&image.tag);
    let c = Container::start(name, &args);
    let took = wait_healthy(&c, t);
    eprintln!("{name}: docker run -> healthy in {took:?}");
    (c, took)
}

/// `docker stop` within Docker's grace, exit 0, every daemon's own word
/// that it ended cleanly.
fn assert_clean_stop(c: &Container) {
    let took = c.stop();
    assert!(
        took < STOP_GRACE,
        "docker stop took {took:?}\n{}",
        c.describe()
    );
    assert_eq!(c.exit_code(), 0, "{}", c.describe());
    let (out, err) = c.logs();
    let logs = format!("{out}{err}");
    for needle in [
        "received fast shutdown request",
        "database system is shut down",
        "DB saved on disk",
        "gracefully shutting down",
        "rinit: nginx: stopped (exit code 0)",
        "rinit: app: stopped (exit code 0)",
        "rinit: postgres: stopped (exit code 0)",
        "rinit: redis: stopped (exit code 0)",
        "exiting with status 0",
    ] {
        assert!(logs.contains(needle), "{needle:?} missing\n{logs}");
    }
    eprintln!("docker stop -> exited in {took:?}");
}

#[test]
fn the_stack_becomes_healthy_answers_through_nginx_and_stops_cleanly() {
    let Some(image) = stack_image("healthy_and_stop") else {
        return;
    };
    let (c, _) = start_stack("stack-main", &image, &[]);
    // Healthy means ready: every daemon answers already.
    assert_eq!(get_through_nginx(&c), "hits=1 visits=1\n");
    assert_eq!(get_through_nginx(&c), "hits=2 visits=2\n");
    // PostgreSQL and Redis said READY=1 themselves (sd_notify), and the
    // app started only after PostgreSQL did, not at its first tcp accept.
    let (out, err) = c.logs();
    let logs = format!("{out}{err}");
    assert_in_order(
        &logs,
        &[
            "database system is ready to accept connections",
            "rinit: postgres: running",
            "rinit: app: started",
        ],
        &logs,
    );
    let py = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9090/status').read().decode())";
    let status = c.exec(&["python3", "-c", py]);
    assert!(
        status
            .stdout
            .contains("\"notify_status\":\"Ready to accept connections\""),
        "{status}"
    );
    assert_clean_stop(&c);
}

#[test]
fn killed_daemons_are_restarted_alone_and_nginx_leaves_no_worker() {
    let Some(image) = stack_image("kill_daemons") else {
        return;
    };
    let (c, _) = start_stack("stack-kill", &image, &[]);
    let before = status(&c);
    let redis = &before["redis"].pid;
    assert!(c.exec(&["sh", "-c", &format!("kill -9 {redis}")]).ok());
    wait_for(
        "redis to be restarted",
        Duration::from_secs(20),
        || {
            let now = status(&c);
            (now["redis"].restarts == "1" && now["redis"].state == "running").then_some(())
        },
        || c.describe(),
    );
    c.wait_ready();
    let after = status(&c);
    for name in ["postgres", "app", "nginx"] {
        assert_eq!(before[name], after[name], "{name} was touched");
    }
    assert_eq!(get_through_nginx(&c), "hits=1 visits=1\n");

    // nginx's master killed with SIGKILL cannot tell its workers: rinit
    // ends the rest of the service's group before the restart.
    let master = c
        .top()
        .into_iter()
        .find(|p| p.args.contains("nginx: master"));
    let old_master = master.expect("an nginx master").pid;
    let kill = format!("kill -9 {}", after["nginx"].pid);
    assert!(c.exec(&["sh", "-c", &kill]).ok());
    wait_for(
        "a new nginx master with two workers, and no worker of the old one",
        Duration::from_secs(20),
        || {
            let top = c.top();
            let masters: Vec<_> = top
                .iter()
                .filter(|p| p.args.contains("nginx: master"))
                .collect();
            let workers: Vec<_> = top
                .iter()
                .filter(|p| p.args.contains("nginx: worker"))
                .collect();
            let fresh = masters.len() == 1 && masters[0].pid != old_master;
            (fresh && workers.len() == 2 && workers.iter().all(|w| w.ppid == masters[0].pid))
                .then_some(())
        },
        || c.describe(),
    );
    c.wait_ready();
    let last = status(&c);
    for name in ["postgres", "app", "redis"] {
        assert_eq!(after[name].pid, last[name].pid, "{name} was touched");
    }
    assert_clean_stop(&c);
}

#[test]
fn sighup_reaches_only_the_daemons_that_reload_on_it() {
    let Some(image) = stack_image("sighup") else {
        return;
    };
    // A HUP while initdb runs: `forward: none` keeps it away from the
    // critical oneshot, so the container still comes up.
    let c = Container::start(
        "stack-hup",
        &[
            "--health-interval",
            "250ms",
            "--health-start-period",
            "60s",
            &image.tag,
        ],
    );
    c.wait_log("rinit: pg-init: started");
    let hup = docker(&["kill", "-s", "HUP", &c.name], Duration::from_secs(30));
    assert!(hup.ok(), "{hup}");
    wait_healthy(&c, Instant::now());
    let before = status(&c);
    let hup = docker(&["kill", "-s", "HUP", &c.name], Duration::from_secs(30));
    assert!(hup.ok(), "{hup}");
    c.wait_log("forwarded SIGHUP to postgres, nginx (not: redis, app)");
    c.wait_log("received SIGHUP, reloading configuration files");
    c.wait_log("(SIGHUP) received from 1, reconfiguring");
    let after = status(&c);
    assert_eq!(before, after, "a HUP restarted something");
    assert_eq!(get_through_nginx(&c), "hits=1 visits=1\n");
    assert_clean_stop(&c);
}

#[test]
fn read_only_root_with_tmpfs_and_data_volumes() {
    let Some(image) = stack_image("read_only") else {
        return;
    };
    let args = [
        "--read-only",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/tmp",
        "-v",
        "/var/lib/pgdata",
        "-v",
        "/var/lib/redis",
    ];
    let (c, _) = start_stack("stack-ro", &image, &args);
    assert_eq!(get_through_nginx(&c), "hits=1 visits=1\n");
    assert_clean_stop(&c);
}

#[test]
fn behind_docker_init_and_across_docker_restart() {
    let Some(image) = stack_image("init_restart") else {
        return;
    };
    let (c, _) = start_stack("stack-init", &image, &["--init"]);
    let pid1 = c.exec(&["cat", "/proc/1/comm"]);
    assert_eq!(pid1.stdout.trim(), "docker-init", "{pid1}");
    assert_eq!(get_through_nginx(&c), "hits=1 visits=1\n");
    let t = Instant::now();
    let out = docker(&["restart", &c.name], Duration::from_secs(60));
    assert!(out.ok(), "{out}");
    let took = wait_healthy(&c, t);
    eprintln!("docker restart -> healthy in {took:?}");
    // The container's file system survives a restart: initdb ran once and
    // the visit is still there; Redis loaded the snapshot it saved.
    assert_eq!(get_through_nginx(&c), "hits=2 visits=2\n");
    let (out, err) = c.logs();
    assert_eq!(
        format!("{out}{err}")
            .matches("Success. You can now")
            .count(),
        1
    );
    assert_clean_stop(&c);
}

#[test]
fn runs_as_a_non_root_user_with_user_when_not_root() {
    let Some(image) = stack_image("non_root") else {
        return;
    };
    let (c, _) = start_stack("stack-user", &image, &["--user", "postgres:0"]);
    assert_eq!(get_through_nginx(&c), "hits=1 visits=1\n");
    let (out, err) = c.logs();
    let logs = format!("{out}{err}");
    assert!(
        logs.contains("instead of their `user` (user_when_not_root: rinit)"),
        "{logs}"
    );
    // The image's group-0 /run/rinit holds the control socket.
    assert_eq!(status(&c)["postgres"].state, "running");
    assert_clean_stop(&c);
}

#[test]
fn a_reload_restarts_only_the_changed_app_and_adds_a_worker() {
    let Some(image) = stack_image("reload") else {
        return;
    };
    let (c, _) = start_stack("stack-reload", &image, &[]);
    assert_eq!(get_through_nginx(&c), "hits=1 visits=1\n");
    let before = status(&c);
    // The operator's edit: the app gets a variable (a restart), postgres a
    // shorter stop_timeout (in place), and a worker is added after redis.
    let edit = r#"
import re
p = "/etc/rinit.yaml"
s = open(p).read()
s = s.replace("    command: [python3, /app/app.py]\n",
              "    command: [python3, /app/app.py]\n    env: { APP_MODE: reloaded }\n")
s = s.replace("    stop_timeout: 8s\n    forward: [SIGHUP]         # HUP = reload postgresql.conf",
              "    stop_timeout: 7s\n    forward: [SIGHUP]         # HUP = reload postgresql.conf")
s += """
  worker:
    depends_on: [redis]
    user: www-data
    command: [python3, -c, "import time; print('worker up', flush=True); time.sleep(100000)"]
    forward: none
"""
open(p, "w").write(s)
"#;
    let out = c.exec(&["python3", "-c", edit]);
    assert!(out.ok(), "{out}");
    let out = c.exec(&["/sbin/rinit", "ctl", "reload"]);
    assert!(out.ok(), "{out}\n{}", c.describe());
    for line in [
        "app: restarted (env changed): ready",
        "postgres: updated in place (stop_timeout changed): kept running",
        "worker: started (added): ready",
        "redis: unchanged",
        "nginx: unchanged",
    ] {
        assert!(out.stdout.contains(line), "{line:?} missing\n{out}");
    }
    c.wait_log("worker | worker up");
    c.wait_ready();
    let after = status(&c);
    for name in ["postgres", "redis", "nginx", "pg-init"] {
        assert_eq!(before[name], after[name], "{name} was touched");
    }
    assert_ne!(
        before["app"].pid, after["app"].pid,
        "app runs its new config"
    );
    assert_eq!(after["app"].restarts, "0", "a reload is not a crash");
    // The data lived through the app's restart, in Redis and PostgreSQL.
    assert_eq!(get_through_nginx(&c), "hits=2 visits=2\n");
    assert_clean_stop(&c);
}
