//! End-to-end tests in a real Docker engine.
//!
//! Every image is built `FROM scratch` out of the static musl rinit (this
//! file runs `cargo build --release --target x86_64-unknown-linux-musl`
//! itself) and the host's static busybox, so nothing is pulled from a
//! registry. The Dockerfiles and configs live in `tests/docker/`.
//!
//! Each test skips, printing why, only when `docker info` fails. Every docker
//! command runs under a deadline, every wait polls a condition up to a
//! deadline, and every image and container is removed by a guard when the
//! test ends, pass or fail. Names carry the test process id, so two
//! `cargo test` runs on one engine do not collide.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "docker/examples.rs"]
mod examples;

#[path = "docker/harness.rs"]
mod harness;

use harness::*;

// ---------------------------------------------------------------------------
// 1. Single-command mode
// ---------------------------------------------------------------------------

#[test]
fn single_command_exit_codes_pass_through() {
    if !have_docker("single_command_exit_codes_pass_through") {
        return;
    }
    let image = Image::build("single-exit", "single.Dockerfile", None);
    let limit = Duration::from_secs(30);

    let c = Container::named("single-exit3");
    let out = c.run_to_end(&[&image.tag, "sh", "-c", "echo out; exit 3"], limit);
    assert_eq!(out.code, Some(3), "{out}");
    assert_eq!(c.exit_code(), 3);
    assert!(out.stdout.contains("out"), "{out}");

    // The app kills itself with SIGTERM: 128 + 15.
    let c = Container::named("single-term");
    let out = c.run_to_end(&[&image.tag, "sh", "-c", "kill -TERM $$; sleep 10"], limit);
    assert_eq!(out.code, Some(143), "{out}");
    assert_eq!(c.exit_code(), 143);

    // The image's default CMD, through ENTRYPOINT ["/sbin/rinit"].
    let c = Container::named("single-cmd");
    let out = c.run_to_end(&[&image.tag], limit);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("hello from rinit"), "{out}");

    // Not found: 127, with a message naming it.
    let c = Container::named("single-127");
    let out = c.run_to_end(&[&image.tag, "no-such-app"], limit);
    assert_eq!(out.code, Some(127), "{out}");
    assert!(out.stderr.contains("no-such-app"), "{out}");
}

#[test]
fn single_command_orphans_are_reaped() {
    if !have_docker("single_command_orphans_are_reaped") {
        return;
    }
    let image = Image::build("single-orphans", "single.Dockerfile", None);
    // Twenty double forks of short-lived processes (their parent subshell
    // exits at once, so they are orphans of rinit, PID 1) and a long-lived
    // one, then the command keeps running while it keeps making more.
    let script = "for i in $(seq 20); do (sleep 0.3 &); done; (sleep 31 &); echo orphans made; \
                  while :; do (sleep 0.05 &); sleep 0.2; done";
    let c = Container::start("single-orphans", &[&image.tag, "sh", "-c", script]);
    c.wait_log("orphans made");
    assert_orphans_reaped(&c, |p| p.args == "sleep 0.3");

    // rinit is PID 1 and adopted the long-lived orphan; nothing else is
    // left but the app and its sleeps.
    let procs = c.ps();
    let show = format!("{procs:#?}\n{}", c.describe());
    let init = procs.iter().find(|p| p.pid == 1).expect("PID 1");
    assert!(init.args.starts_with("/sbin/rinit"), "{show}");
    let orphan = procs
        .iter()
        .find(|p| p.args == "sleep 31")
        .unwrap_or_else(|| panic!("no long-lived orphan\n{show}"));
    assert_eq!(orphan.ppid, 1, "{show}");
    // ("[sh]": a subshell caught exiting, its command line already gone.)
    assert!(
        procs.iter().all(|p| {
            let args = p.args.trim_start_matches('[');
            p.pid == 1 || args.starts_with("sh") || args.starts_with("sleep")
        }),
        "{show}"
    );

    let took = c.stop();
    eprintln!("single-command docker stop took {took:?}");
    // The shell is killed by SIGTERM: the app's status, 143.
    assert_eq!(c.exit_code(), 143, "{}", c.describe());
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");
}

#[test]
fn single_command_ignoring_sigterm_is_killed_at_the_grace() {
    if !have_docker("single_command_ignoring_sigterm_is_killed_at_the_grace") {
        return;
    }
    let image = Image::build("single-grace", "single.Dockerfile", None);
    // The whole group ignores SIGTERM; rinit's --grace (from RINIT_GRACE)
    // ends it with SIGKILL well before Docker's 10 s.
    let script = "trap '' TERM; echo ignoring TERM; while :; do sleep 1; done";
    let c = Container::start(
        "single-grace",
        &["-e", "RINIT_GRACE=2s", &image.tag, "sh", "-c", script],
    );
    c.wait_log("ignoring TERM");
    let took = c.stop();
    eprintln!("single command ignoring SIGTERM, grace 2s: docker stop took {took:?}");
    assert_eq!(c.exit_code(), 137, "{}", c.describe());
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "docker stop took {took:?}"
    );
}

#[test]
fn ctrl_c_in_docker_run_it_reaches_the_app_not_rinit() {
    if !have_docker("ctrl_c_in_docker_run_it_reaches_the_app_not_rinit") {
        return;
    }
    use std::io::Write;
    let image = Image::build("single-tty", "single.Dockerfile", None);
    let c = Container::named("single-tty");
    // `docker run -it` needs a terminal: script(1) gives it a pseudo-tty.
    // The app's group must be the terminal's foreground group, so the ^C
    // reaches the app directly (and rinit never receives a SIGINT).
    let run = format!(
        "docker run -it --name {} {} sh -c 'echo app ready; sleep 30; echo not interrupted'",
        c.name, image.tag
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &run, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    // Takes what the terminal printed within the next 100 ms.
    let pump = |seen: &mut String| {
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    };
    let end = Instant::now() + Duration::from_secs(30);
    while !seen.contains("app ready") {
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the app did not start under docker run -it\n{seen}");
        }
        pump(&mut seen);
    }
    stdin.write_all(b"\x03").expect("send ^C");
    stdin.flush().expect("flush");
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("docker run -it did not end after ^C\n{seen}");
        }
        pump(&mut seen);
    };
    while let Ok(bytes) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert_eq!(status.code(), Some(130), "{seen}");
    assert_eq!(c.exit_code(), 130, "{seen}");
    assert!(!seen.contains("not interrupted"), "{seen}");
    assert!(
        !seen.contains("received SIGINT"),
        "rinit got the ^C\n{seen}"
    );
}

// ---------------------------------------------------------------------------
// 2. Services mode and docker stop
// ---------------------------------------------------------------------------

#[test]
fn docker_stop_shuts_services_down_in_reverse_order() {
    if !have_docker("docker_stop_shuts_services_down_in_reverse_order") {
        return;
    }
    let image = Image::build("ordered", "services.Dockerfile", Some("ordered.yaml"));
    let c = Container::start("ordered", &[&image.tag]);
    c.wait_ready();

    let took = c.stop();
    eprintln!("ordered services: docker stop took {took:?}");
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(c.exit_code(), 0, "{all}");
    assert!(
        took < Duration::from_secs(5),
        "docker stop took {took:?} (Docker's grace is {DOCKER_STOP_GRACE:?})\n{all}"
    );
    // rinit's own account, in order, each with its signal...
    assert_in_order(
        &stderr,
        &[
            "worker: sending SIGUSR1",
            "worker: stopped",
            "web: sending SIGHUP",
            "web: stopped",
            "db: sending SIGINT",
            "db: stopped",
            "exiting with status 0",
        ],
        &all,
    );
    // ...and the services' own words: each got its own signal. (Their order
    // in stdout is not asserted here: see
    // service_output_follows_the_stop_order_under_cpu_contention.)
    assert!(stdout.contains("migrate | migrate done"), "{all}");
    for line in [
        "worker | worker got USR1",
        "web | web got HUP",
        "db | db got INT",
    ] {
        assert!(stdout.contains(line), "{line:?} missing\n{all}");
    }
}

#[test]
fn docker_exec_rinit_ctl_restarts_one_service_and_reads_logs() {
    if !have_docker("docker_exec_rinit_ctl_restarts_one_service_and_reads_logs") {
        return;
    }
    let image = Image::build("ctl", "services.Dockerfile", Some("ordered.yaml"));
    let c = Container::start("ctl", &[&image.tag]);
    c.wait_ready();
    let before = c.exec(&["/sbin/rinit", "ctl", "status", "--json"]);
    assert!(before.ok(), "{before}");
    let restart = c.exec(&["/sbin/rinit", "ctl", "restart", "web"]);
    assert!(restart.ok(), "{restart}");
    assert!(restart.stdout.contains("web:"), "{restart}");
    let status = c.exec(&["/sbin/rinit", "ctl", "status"]);
    let web = status
        .stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or("");
    assert!(web.contains("running"), "{status}");
    let json = c.exec(&["/sbin/rinit", "ctl", "status", "--json"]).stdout;
    assert!(json.contains("\"restarts_operator\":1"), "{json}");
    let logs = c.exec(&["/sbin/rinit", "ctl", "logs"]);
    assert!(
        logs.ok() && logs.stdout.contains("migrate | migrate done"),
        "{logs}"
    );
    let (_, stderr) = c.logs();
    assert!(stderr.contains("control: restart web by uid 0"), "{stderr}");
    c.stop();
    assert_eq!(c.exit_code(), 0, "{}", c.logs().1);
}

#[test]
fn docker_stop_with_a_service_ignoring_sigterm_ends_in_rinits_sigkill() {
    if !have_docker("docker_stop_with_a_service_ignoring_sigterm_ends_in_rinits_sigkill") {
        return;
    }
    let image = Image::build("stubborn", "services.Dockerfile", Some("stubborn.yaml"));
    let c = Container::start("stubborn", &[&image.tag]);
    c.wait_ready();

    let took = c.stop();
    eprintln!("stubborn service: docker stop took {took:?}");
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    // rinit killed it after its stop_timeout (1 s); Docker's SIGKILL would
    // have come at 10 s and left exit code 137.
    assert!(
        took < Duration::from_secs(8),
        "docker stop took {took:?}\n{all}"
    );
    assert_eq!(c.exit_code(), 1, "{all}");
    assert!(stdout.contains("polite | polite got TERM"), "{all}");
    assert!(!stdout.contains("stubborn got"), "{all}");
    assert_in_order(
        &stderr,
        &[
            "stubborn: sending SIGTERM",
            "polite: sending SIGTERM",
            "exiting with status 1",
        ],
        &all,
    );
}

#[test]
fn docker_stop_drains_readiness_before_stopping_services() {
    if !have_docker("docker_stop_drains_readiness_before_stopping_services") {
        return;
    }
    let image = Image::build("drain", "services.Dockerfile", Some("drain.yaml"));
    let c = Container::start("drain", &[&image.tag]);
    c.wait_ready();

    let t = Instant::now();
    let took = std::thread::scope(|s| {
        let stopper = s.spawn(|| c.stop());
        // /readyz fails at once, while web has not been signalled yet and
        // /healthz, too, says a shutdown is under way.
        wait_for(
            "/readyz to fail after docker stop",
            Duration::from_millis(1500),
            || (!c.exec(&["/sbin/rinit", "probe", "--ready"]).ok()).then_some(()),
            || c.describe(),
        );
        let during = t.elapsed();
        // (Checked only while surely still inside the 2 s drain.)
        let (stdout, _) = c.logs();
        if t.elapsed() < Duration::from_millis(1800) {
            assert!(
                !stdout.contains("web got TERM"),
                "web signalled during the drain\n{}",
                c.describe()
            );
        }
        let out = c.exec(&["/sbin/rinit", "probe"]);
        if t.elapsed() < Duration::from_millis(1800) {
            assert_eq!(out.code, Some(1), "/healthz during the drain: {out}");
        }
        eprintln!("drain: /readyz failed {during:?} after docker stop began");
        stopper.join().expect("docker stop thread")
    });
    eprintln!("drain 2s: docker stop took {took:?}");
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(c.exit_code(), 0, "{all}");
    assert!(stdout.contains("web | web got TERM"), "{all}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "docker stop took {took:?}\n{all}"
    );
}

// ---------------------------------------------------------------------------
// 3. HEALTHCHECK with rinit probe
// ---------------------------------------------------------------------------

#[test]
fn healthcheck_with_rinit_probe_follows_service_health() {
    if !have_docker("healthcheck_with_rinit_probe_follows_service_health") {
        return;
    }
    let image = Image::build("health", "health.Dockerfile", Some("health.yaml"));
    let c = Container::start("health", &[&image.tag]);
    let health = || c.inspect("{{.State.Health.Status}}");

    wait_for(
        "docker to report healthy",
        Duration::from_secs(30),
        || (health() == "healthy").then_some(()),
        || format!("health: {}\n{}", health(), c.describe()),
    );

    let pid = wait_for(
        "the victim's pid file",
        Duration::from_secs(10),
        || {
            let out = c.exec(&["cat", "/tmp/victim.pid"]);
            out.ok().then(|| out.stdout.trim().to_string())
        },
        || c.describe(),
    );
    let out = c.exec(&["kill", "-9", &pid]);
    assert!(out.ok(), "{out}");

    wait_for(
        "docker to report unhealthy",
        Duration::from_secs(30),
        || (health() == "unhealthy").then_some(()),
        || format!("health: {}\n{}", health(), c.describe()),
    );
    // The container itself keeps running: victim is not critical.
    assert_eq!(c.inspect("{{.State.Running}}"), "true");
    let out = c.exec(&["/sbin/rinit", "probe"]);
    assert_eq!(out.code, Some(1), "{out}");
    let (_, stderr) = c.logs();
    assert!(stderr.contains("victim"), "{stderr}");
    let took = c.stop();
    eprintln!("health: docker stop took {took:?}");
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");
}

// ---------------------------------------------------------------------------
// 4. A critical crash loop
// ---------------------------------------------------------------------------

#[test]
fn critical_crash_loop_ends_the_container_with_its_status() {
    if !have_docker("critical_crash_loop_ends_the_container_with_its_status") {
        return;
    }
    let image = Image::build("crashloop", "services.Dockerfile", Some("crashloop.yaml"));
    let c = Container::start("crashloop", &[&image.tag]);
    let code = c.wait_exit(Duration::from_secs(30));
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(code, 7, "{all}");
    // The first run and three restarts.
    assert_eq!(
        stdout.matches("crasher | crasher exiting 7").count(),
        4,
        "{all}"
    );
    assert!(stderr.contains("exiting with status 7"), "{all}");
}

// ---------------------------------------------------------------------------
// 5. Behind docker run --init
// ---------------------------------------------------------------------------

#[test]
fn behind_docker_init_rinit_is_a_subreaper_and_stops_cleanly() {
    if !have_docker("behind_docker_init_rinit_is_a_subreaper_and_stops_cleanly") {
        return;
    }
    let image = Image::build("init", "services.Dockerfile", Some("orphans.yaml"));
    let c = Container::named("init");
    let out = c.run_detached(&["--init", &image.tag]);
    if !out.ok() {
        eprintln!("skipping behind_docker_init_rinit_is_a_subreaper_and_stops_cleanly: docker run --init failed\n{out}");
        return;
    }
    c.wait_log("orphans made");
    c.wait_log("worker: running");
    assert_orphans_reaped(&c, |p| p.args == "sleep 0.2");

    let procs = c.top();
    let show = format!("{procs:#?}\n{}", c.describe());
    let rinit = procs
        .iter()
        .find(|p| p.args.starts_with("/sbin/rinit"))
        .unwrap_or_else(|| panic!("no rinit\n{show}"));
    let init = procs
        .iter()
        .find(|p| p.pid == rinit.ppid)
        .unwrap_or_else(|| panic!("no parent of rinit\n{show}"));
    assert!(
        init.args.contains("init"),
        "rinit is not behind docker-init\n{show}"
    );
    // The long-lived orphan was adopted by rinit, not by Docker's init.
    let orphan = procs
        .iter()
        .find(|p| p.args == "sleep 31")
        .unwrap_or_else(|| panic!("no orphan\n{show}"));
    assert_eq!(
        orphan.ppid, rinit.pid,
        "orphan not adopted by rinit\n{show}"
    );

    let took = c.stop();
    eprintln!("behind --init: docker stop took {took:?}");
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(c.exit_code(), 0, "{all}");
    assert!(
        took < Duration::from_secs(5),
        "docker stop took {took:?}\n{all}"
    );
    assert_in_order(
        &stderr,
        &[
            "worker: sending SIGTERM",
            "worker: stopped",
            "orphaner: sending SIGTERM",
            "orphaner: stopped",
            "exiting with status 0",
        ],
        &all,
    );
    assert!(stdout.contains("worker | worker got TERM"), "{all}");
    assert!(stdout.contains("orphaner | orphaner got TERM"), "{all}");
}

// ---------------------------------------------------------------------------
// 6. Read-only root file system, non-root user
// ---------------------------------------------------------------------------

#[test]
fn read_only_root_and_non_root_user_single_command() {
    if !have_docker("read_only_root_and_non_root_user_single_command") {
        return;
    }
    let image = Image::build("ro-single", "single.Dockerfile", None);
    let c = Container::named("ro-single");
    let out = c.run_to_end(
        &[
            "--read-only",
            "--user",
            "1000:1000",
            &image.tag,
            "sh",
            "-c",
            "echo uid $(id -u) gid $(id -g); exit 5",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(5), "{out}");
    assert!(out.stdout.contains("uid 1000 gid 1000"), "{out}");
    assert!(!out.stderr.contains("ermission denied"), "{out}");
}

#[test]
fn read_only_root_and_non_root_user_services() {
    if !have_docker("read_only_root_and_non_root_user_services") {
        return;
    }
    let image = Image::build("ro-services", "services.Dockerfile", Some("readonly.yaml"));
    let c = Container::named("ro-services");
    let out = c.run_detached(&["--read-only", "--user", "1000:1000", &image.tag]);
    assert!(out.ok(), "{out}");
    c.wait_ready();
    let out = c.exec(&["/sbin/rinit", "probe"]);
    assert!(out.ok(), "{out}");

    let took = c.stop();
    eprintln!("read-only, uid 1000: docker stop took {took:?}");
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(c.exit_code(), 0, "{all}");
    assert!(
        took < Duration::from_secs(5),
        "docker stop took {took:?}\n{all}"
    );
    assert!(
        stdout.contains("setup | setup as uid 1000 gid 1000"),
        "{all}"
    );
    assert!(stdout.contains("app | app got TERM"), "{all}");
}

// ---------------------------------------------------------------------------
// 7. The examples
// ---------------------------------------------------------------------------

#[test]
fn examples_run_in_docker() {
    if !have_docker("examples_run_in_docker") {
        return;
    }
    let single = Image::example_single();

    // examples/single.Dockerfile as documented: its CMD, stopped by Docker.
    let c = Container::start("example-single", &[&single.tag]);
    c.wait_log("hello from rinit");
    let took = c.stop();
    eprintln!("examples/single.Dockerfile: docker stop took {took:?}");
    assert_eq!(c.exit_code(), 0, "{}", c.describe());
    assert!(c.logs().0.contains("bye"), "{}", c.describe());
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");
    drop(c);

    // examples/devcontainer.yaml, run as its header says (--entrypoint drops
    // the base image's CMD, so there is no main command).
    let text = std::fs::read_to_string(examples::examples_dir().join("devcontainer.yaml"))
        .expect("examples/devcontainer.yaml");
    let dev = Image::with_config("example-dev", &single, &text);
    let c = Container::start("example-dev", &["--entrypoint", "/sbin/rinit", &dev.tag]);
    c.wait_ready();
    let page = c.exec(&["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]);
    assert!(
        page.stdout.contains("hello from the dev container"),
        "{page}"
    );
    c.wait_log("worker | hello from the dev container");
    let took = c.stop();
    eprintln!("examples/devcontainer.yaml: docker stop took {took:?}");
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(c.exit_code(), 0, "{all}");
    assert!(
        took < Duration::from_secs(5),
        "docker stop took {took:?}\n{all}"
    );
    assert!(!stderr.contains("main command"), "{all}");
    assert_in_order(
        &stderr,
        &[
            "worker: sending SIGINT",
            "worker: stopped",
            "web: sending SIGTERM",
            "web: stopped",
        ],
        &all,
    );
    assert!(stdout.contains("worker | worker draining"), "{all}");
    drop(c);

    // The Kubernetes ConfigMap's config, under the Pod's securityContext
    // (read-only root, uid 1000, an emptyDir at /tmp) and grace period.
    let k8s = Image::with_config("example-k8s", &single, &examples::kubernetes_config());
    let c = Container::start(
        "example-k8s",
        &[
            "--read-only",
            "--user",
            "1000:1000",
            "--tmpfs",
            "/tmp:mode=1777",
            "--entrypoint",
            "/sbin/rinit",
            &k8s.tag,
            "--config",
            "/etc/rinit.yaml",
        ],
    );
    c.wait_ready();
    let out = c.exec(&["/sbin/rinit", "probe"]);
    assert!(out.ok(), "{out}");
    let t = Instant::now();
    let out = docker(&["stop", "-t", "30", &c.name], Duration::from_secs(60));
    let took = t.elapsed();
    assert!(out.ok(), "{out}");
    eprintln!("examples/kubernetes.yaml: docker stop -t 30 took {took:?} (drain 5s)");
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(c.exit_code(), 0, "{all}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(10),
        "docker stop took {took:?}\n{all}"
    );
    assert_in_order(
        &stderr,
        &[
            "drain 5s",
            "worker: sending SIGTERM",
            "web: sending SIGTERM",
        ],
        &all,
    );
}

/// Regression: a non-root rinit used to accept a `user:` naming its own
/// uid, then call setgroups(2) in the child, which needs privilege: EPERM,
/// exit 126, a crash loop. Only root switches identity now.
#[test]
fn non_root_rinit_runs_a_service_whose_user_is_its_own() {
    if !have_docker("non_root_rinit_runs_a_service_whose_user_is_its_own") {
        return;
    }
    let image = Image::build("ownuser", "services.Dockerfile", Some("ownuser.yaml"));
    let c = Container::named("ownuser");
    let out = c.run_detached(&["--read-only", "--user", "1000:1000", &image.tag]);
    assert!(out.ok(), "{out}");
    c.wait_log("app: running");
    c.wait_log("app | app as uid 1000 gid 1000");
    let took = c.stop();
    let (stdout, stderr) = c.logs();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(c.exit_code(), 0, "{all}");
    assert!(
        took < Duration::from_secs(5),
        "docker stop took {took:?}\n{all}"
    );
    assert!(!stderr.contains("cannot switch user"), "{all}");
}

/// Regression: each service's output has its own relay thread, and the
/// next wave used to be signalled as soon as the exit was reaped, so under
/// CPU contention a service's last lines ("s7 got TERM") reached docker logs
/// after those of services stopped later (9 of 10 runs). The runtime now
/// lets a stopped service's relays finish (bounded) before moving on.
#[test]
fn service_output_follows_the_stop_order_under_cpu_contention() {
    if !have_docker("service_output_follows_the_stop_order_under_cpu_contention") {
        return;
    }
    let image = Image::build("chain", "services.Dockerfile", Some("chain.yaml"));
    let expected: Vec<String> = (1..=8)
        .rev()
        .map(|i| format!("s{i} | s{i} got TERM"))
        .collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    for run in 0..3 {
        let c = Container::start(&format!("chain{run}"), &["--cpuset-cpus", "0", &image.tag]);
        c.wait_log("s8: running");
        let took = c.stop();
        let (stdout, stderr) = c.logs();
        let all =
            format!("run {run}, stop took {took:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
        let rinit_order: Vec<String> = (1..=8).rev().map(|i| format!("s{i}: stopped")).collect();
        let rinit_order: Vec<&str> = rinit_order.iter().map(String::as_str).collect();
        assert_in_order(&stderr, &rinit_order, &all);
        assert_in_order(&stdout, &expected, &all);
    }
}

/// The config as a Kubernetes ConfigMap or a dev container's bind mount
/// gives it: a mounted directory whose file is edited in place.
const RELOAD_BEFORE: &str = r#"
health:
  listen: "127.0.0.1:9090"
services:
  db:
    command: "echo db up; exec sleep 100000"
  web:
    command: "echo web up; exec sleep 100001"
    depends_on: [db]
"#;

#[test]
fn docker_exec_rinit_ctl_reload_applies_an_edited_mounted_config() {
    if !have_docker("docker_exec_rinit_ctl_reload_applies_an_edited_mounted_config") {
        return;
    }
    // No config in the image: it comes from the mount.
    let image = Image::build("reload", "single.Dockerfile", None);
    let dir = std::env::temp_dir().join(unique("reload-conf"));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = harness::TempDir(dir.clone());
    let file = dir.join("rinit.yaml");
    std::fs::write(&file, RELOAD_BEFORE).unwrap();
    let mount = format!("{}:/etc/rinit", dir.display());
    let c = Container::start(
        "reload",
        // The variable is also what `rinit probe` in `wait_ready` reads.
        &[
            "-v",
            &mount,
            "-e",
            "RINIT_HEALTH_ADDR=127.0.0.1:9090",
            &image.tag,
            "-c",
            "/etc/rinit/rinit.yaml",
        ],
    );
    c.wait_ready();
    let pids = |c: &Container| {
        let json = c.exec(&["/sbin/rinit", "ctl", "status", "--json"]).stdout;
        ["db", "web"].map(|n| {
            let at = json.find(&format!("\"name\":\"{n}\"")).unwrap_or(0);
            let rest = &json[at..];
            let pid = rest.find("\"pid\":").map_or("", |p| &rest[p + 6..]);
            pid[..pid.find(',').unwrap_or(0)].to_string()
        })
    };
    let before = pids(&c);
    // Edit the mounted file in place (the inode the container sees).
    let next = format!(
        "{RELOAD_BEFORE}  cache:\n    command: \"echo cache up on reload; exec sleep 100002\"\n    depends_on: [db]\n"
    );
    std::fs::write(&file, next).unwrap();
    let plan = c.exec(&["/sbin/rinit", "ctl", "reload", "--dry-run"]);
    assert!(
        plan.ok() && plan.stdout.contains("cache: start (added)"),
        "{plan}"
    );
    let out = c.exec(&["/sbin/rinit", "ctl", "reload"]);
    assert!(out.ok(), "{out}");
    assert!(
        out.stdout.contains("cache: started (added): ready"),
        "{out}"
    );
    assert!(out.stdout.contains("db: unchanged"), "{out}");
    c.wait_log("cache | cache up on reload");
    assert_eq!(before, pids(&c), "db and web were not restarted");
    let (stdout, stderr) = c.logs();
    assert_eq!(stdout.matches("db | db up").count(), 1, "{stdout}");
    assert!(stderr.contains("control: reload by uid 0"), "{stderr}");
    c.stop();
    assert_eq!(c.exit_code(), 0, "{}", c.logs().1);
}
