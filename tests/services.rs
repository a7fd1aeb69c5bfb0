//! Services mode end to end: rinit runs as PID 1 of a fresh PID namespace
//! with a YAML config, and the tests read the facts its services write to
//! files (timestamps, signals received, ids, cwd) and what the kernel shows
//! in /proc. Every wait is bounded; every process is killed by pid at the end.

mod common;

use std::time::{Duration, Instant};

use common::*;

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");
const LONG: Duration = Duration::from_secs(20);

/// Writes `yaml` (with `{d}` replaced by the test dir) and starts rinit on it
/// as PID 1, with `extra` arguments after the config.
fn start(dir: &TestDir, yaml: &str, extra: &[&str]) -> Option<Instance> {
    let text = yaml.replace("{d}", &dir.file(""));
    dir.write("rinit.yaml", text.as_bytes());
    Launch::new(RINIT)
        .arg("-c")
        .arg(dir.join("rinit.yaml"))
        .args(extra)
        .start_pid1(dir)
}

/// Nanoseconds since the epoch written by `date +%s%N` into a file.
fn stamp(dir: &TestDir, name: &str) -> u128 {
    let text = dir.wait_line(name, LONG).unwrap_or_else(|| {
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        panic!("{name} never written; files: {files:?}")
    });
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {text:?}"))
}

/// All stamps of a file that gets one `date +%s%N` line per event.
fn stamps(dir: &TestDir, name: &str) -> Vec<u128> {
    dir.read(name)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn count_lines(dir: &TestDir, name: &str) -> usize {
    dir.read(name).map_or(0, |t| t.lines().count())
}

fn stderr_has(inst: &Instance, needle: &str) -> bool {
    wait_for(LONG, || inst.stderr().contains(needle))
}

#[test]
fn waves_start_in_order_and_dependents_wait_for_readiness() {
    let dir = TestDir::new("waves");
    let yaml = r#"
services:
  db:
    command: "sleep 0.4; date +%s%N > {d}/db.ready; exec sleep 1000"
    ready: { exec: ["test", "-f", "{d}/db.ready"], interval: 20ms, timeout: 1s }
  cache:
    command: "date +%s%N > {d}/cache.start; exec sleep 1000"
  web:
    command: "date +%s%N > {d}/web.start; exec sleep 1000"
    depends_on: [db, cache]
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    let (ready, web, cache) = (
        stamp(&dir, "db.ready"),
        stamp(&dir, "web.start"),
        stamp(&dir, "cache.start"),
    );
    assert!(
        web >= ready,
        "web started {} ms before db was ready",
        (ready - web) / 1_000_000
    );
    assert!(
        cache < ready,
        "cache (no dependencies) must start at once, not after db"
    );
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
}

#[test]
fn a_oneshot_gates_its_dependents_on_success() {
    let dir = TestDir::new("oneshot-ok");
    let yaml = r#"
services:
  migrate:
    command: "sleep 0.3; date +%s%N > {d}/migrated"
    oneshot: true
  web:
    command: "date +%s%N > {d}/web.start; exec sleep 1000"
    depends_on: [migrate]
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert!(stamp(&dir, "web.start") >= stamp(&dir, "migrated"));
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
}

#[test]
fn a_failed_critical_oneshot_ends_everything_with_its_status() {
    let dir = TestDir::new("oneshot-fail");
    let yaml = r#"
services:
  migrate:
    command: "exit 4"
    oneshot: true
  web:
    command: "date +%s%N > {d}/web.start; exec sleep 1000"
    depends_on: [migrate]
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert_eq!(inst.expect_exit(LONG), 4, "{}", inst.stderr());
    assert!(
        !dir.exists("web.start"),
        "a dependent started after its oneshot failed"
    );
}

#[test]
fn restart_always_restarts_even_after_success() {
    let dir = TestDir::new("always");
    let yaml = r#"
services:
  tick:
    command: "date +%s%N >> {d}/starts; exit 0"
    backoff: { initial: 10ms, max: 10ms }
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert!(wait_for(LONG, || count_lines(&dir, "starts") >= 3));
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
}

#[test]
fn on_failure_stops_after_success_and_rinit_exits_zero() {
    let dir = TestDir::new("on-failure-ok");
    let yaml = r#"
services:
  job:
    command: "date +%s%N >> {d}/starts; exit 0"
    restart: on-failure
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert_eq!(inst.expect_exit(LONG), 0, "nothing left to run: exit 0");
    assert_eq!(count_lines(&dir, "starts"), 1);
}

#[test]
fn on_failure_restarts_until_the_crash_loop_limit_then_exits_with_its_status() {
    let dir = TestDir::new("crash-loop");
    let yaml = r#"
services:
  other:
    command: "trap 'date +%s%N > {d}/other.term; exit 0' TERM; while :; do sleep 0.05; done"
  job:
    command: "date +%s%N >> {d}/starts; exit 7"
    restart: on-failure
    backoff: { initial: 10ms, max: 20ms }
    max_restarts: { count: 3, within: 60s }
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert_eq!(inst.expect_exit(LONG), 7, "{}", inst.stderr());
    assert_eq!(
        count_lines(&dir, "starts"),
        4,
        "the first run and 3 restarts"
    );
    assert!(
        dir.exists("other.term"),
        "the rest was stopped by the critical failure"
    );
    assert!(
        inst.stderr().contains("failed (critical"),
        "{}",
        inst.stderr()
    );
}

#[test]
fn a_non_critical_failure_leaves_the_rest_running_and_keeps_status_zero() {
    let dir = TestDir::new("non-critical");
    let yaml = r#"
services:
  flaky:
    command: "exit 3"
    restart: never
    critical: false
  web:
    command: "echo $$ > {d}/web.pid; exec sleep 1000"
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert!(stderr_has(
        &inst,
        "flaky: exited (exit code 3), failed (not critical)"
    ));
    let pid = dir.wait_line("web.pid", LONG).expect("web started");
    assert!(
        inst.processes()
            .iter()
            .any(|p| p.name == "sleep" && !p.is_zombie()),
        "web still runs ({pid})"
    );
    assert!(inst.poll_exit().is_none());
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
}

#[test]
fn backoff_doubles_between_restarts_and_is_capped() {
    let dir = TestDir::new("backoff");
    let yaml = r#"
services:
  crash:
    command: "date +%s%N >> {d}/starts; exit 1"
    backoff: { initial: 100ms, max: 400ms }
    max_restarts: { count: 100, within: 60s }
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert!(wait_for(LONG, || count_lines(&dir, "starts") >= 7));
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
    let s = stamps(&dir, "starts");
    let gaps: Vec<u128> = s.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).collect();
    let want = [100u128, 200, 400, 400, 400, 400];
    for (i, (&got, &w)) in gaps.iter().zip(want.iter()).enumerate() {
        assert!(
            got + 5 >= w && got <= w + 150,
            "restart {}: waited {got} ms, want ~{w} ms (all: {gaps:?})",
            i + 1
        );
    }
}

/// Each service traps its own stop signal and records when and which.
const ORDERED: &str = r#"
services:
  db:
    command: "trap 'date +%s%N > {d}/db.stop; echo INT > {d}/db.sig; exit 0' INT; echo up > {d}/db.up; while :; do sleep 0.02; done"
    stop_signal: SIGINT
  api:
    command: "trap 'date +%s%N > {d}/api.stop; echo USR1 > {d}/api.sig; exit 0' USR1; echo up > {d}/api.up; while :; do sleep 0.02; done"
    depends_on: [db]
    stop_signal: SIGUSR1
  web:
    command: "trap 'date +%s%N > {d}/web.stop; echo TERM > {d}/web.sig; exit 0' TERM; echo up > {d}/web.up; while :; do sleep 0.02; done"
    depends_on: [api]
"#;

#[test]
fn shutdown_runs_in_reverse_dependency_order_each_with_its_own_signal_and_promptly() {
    let dir = TestDir::new("reverse");
    let Some(mut inst) = start(&dir, ORDERED, &[]) else {
        return;
    };
    for svc in ["db", "api", "web"] {
        dir.wait_line(&format!("{svc}.up"), LONG)
            .expect("service trapping its signal");
    }
    let t = Instant::now();
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
    let took = t.elapsed();
    let (web, api, db) = (
        stamp(&dir, "web.stop"),
        stamp(&dir, "api.stop"),
        stamp(&dir, "db.stop"),
    );
    assert!(
        web < api && api < db,
        "stop order must be web, api, db: {web} {api} {db}"
    );
    for (svc, sig) in [("web", "TERM"), ("api", "USR1"), ("db", "INT")] {
        assert_eq!(
            dir.read(&format!("{svc}.sig")).unwrap_or_default().trim(),
            sig
        );
    }
    // Stop timeouts are 5 s and the cap 9 s: exiting well before shows no
    // timer was waited out once the processes were gone.
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

#[test]
fn the_stop_signal_reaches_every_process_of_the_group() {
    let dir = TestDir::new("group");
    let yaml = r#"
services:
  shell:
    command: "trap 'echo parent >> {d}/got; exit 0' USR1; sh -c 'trap \"\" TERM; trap \"echo child >> {d}/got; exit 0\" USR1; echo up > {d}/child.ready; while :; do sleep 0.02; done' & echo started > {d}/ready; while :; do sleep 0.02; done"
    stop_signal: SIGUSR1
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    dir.wait_line("ready", LONG).expect("service started");
    dir.wait_line("child.ready", LONG)
        .expect("its child trapping USR1");
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
    let got = dir.read("got").unwrap_or_default();
    assert!(
        got.contains("parent") && got.contains("child"),
        "got: {got:?}"
    );
}

/// A service that ignores SIGTERM; `{timeout}` is its stop_timeout.
const STUBBORN: &str = r#"
services:
  stubborn:
    command: "trap '' TERM; echo up > {d}/up; while :; do sleep 0.02; done"
    stop_timeout: {timeout}
"#;

/// Starts rinit on `yaml`, waits until the service wrote `up`, sends
/// SIGTERM and waits for rinit's exit: (instance, exit code, time taken).
fn stop_when_up(dir: &TestDir, yaml: &str, extra: &[&str]) -> Option<(Instance, i32, Duration)> {
    let mut inst = start(dir, yaml, extra)?;
    dir.wait_line("up", LONG).expect("service started");
    let t = Instant::now();
    inst.signal(libc::SIGTERM);
    let code = inst.expect_exit(LONG);
    Some((inst, code, t.elapsed()))
}

fn assert_took(took: Duration, min_ms: u64, max_ms: u64) {
    let ms = took.as_millis() as u64;
    assert!(
        (min_ms..max_ms).contains(&ms),
        "took {took:?}, want {min_ms}..{max_ms} ms"
    );
}

#[test]
fn a_service_ignoring_its_stop_signal_is_killed_after_stop_timeout_and_status_is_1() {
    let dir = TestDir::new("stop-timeout");
    let yaml = STUBBORN.replace("{timeout}", "500ms");
    let Some((inst, code, took)) = stop_when_up(&dir, &yaml, &[]) else {
        return;
    };
    assert_eq!(code, 1, "{}", inst.stderr());
    assert_took(took, 450, 4000);
    assert!(inst.stderr().contains("stop timeout, sending SIGKILL"));
}

#[test]
fn the_shutdown_timeout_caps_every_stop_timeout() {
    let dir = TestDir::new("cap");
    let yaml = format!(
        "shutdown:\n  timeout: 1s\n{}",
        STUBBORN.replace("{timeout}", "60s")
    );
    let Some((_inst, code, took)) = stop_when_up(&dir, &yaml, &[]) else {
        return;
    };
    assert_eq!(code, 1);
    assert_took(took, 950, 4000);
}

#[test]
fn grace_flag_overrides_the_config_timeout() {
    let dir = TestDir::new("grace-flag");
    let yaml = format!(
        "shutdown:\n  timeout: 60s\n{}",
        STUBBORN.replace("{timeout}", "60s")
    );
    let Some((_inst, code, took)) = stop_when_up(&dir, &yaml, &["--grace", "700ms"]) else {
        return;
    };
    assert_eq!(code, 1);
    assert_took(took, 650, 4000);
}

#[test]
fn drain_delays_the_first_stop_signal() {
    let dir = TestDir::new("drain");
    let yaml = r#"
shutdown:
  drain: 1s
  timeout: 5s
services:
  web:
    command: "trap 'date +%s%N > {d}/stop; exit 0' TERM; echo up > {d}/up; while :; do sleep 0.02; done"
"#;
    let Some((_inst, code, took)) = stop_when_up(&dir, yaml, &[]) else {
        return;
    };
    assert_eq!(code, 0);
    assert!(dir.exists("stop"), "the service got its stop signal");
    // It exits at once on TERM, so SIGTERM-to-exit is the drain.
    assert_took(took, 990, 3000);
}

#[test]
fn a_second_sigterm_skips_to_sigkill() {
    let dir = TestDir::new("second-term");
    let yaml = r#"
shutdown:
  timeout: 60s
services:
  stubborn:
    command: "trap 'echo got >> {d}/term' TERM; echo up > {d}/up; while :; do sleep 0.02; done"
    stop_timeout: 60s
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    dir.wait_line("up", LONG).expect("service started");
    inst.signal(libc::SIGTERM);
    assert!(
        dir.wait_line("term", LONG).is_some(),
        "first SIGTERM reached the service"
    );
    let t = Instant::now();
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 1, "{}", inst.stderr());
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn sigterm_during_startup_stops_cleanly() {
    let dir = TestDir::new("term-starting");
    let yaml = r#"
services:
  db:
    command: "echo up > {d}/up; exec sleep 1000"
    ready: { exec: ["test", "-f", "{d}/never"], interval: 50ms, timeout: 1s }
  web:
    command: "echo started > {d}/web; exec sleep 1000"
    depends_on: [db]
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    dir.wait_line("up", LONG).expect("db spawned");
    let t = Instant::now();
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(!dir.exists("web"));
}

#[test]
fn an_escaped_double_forked_daemon_is_swept_before_rinit_exits() {
    let dir = TestDir::new("escaped");
    let yaml = r#"
services:
  launcher:
    command: "setsid sh -c 'trap \"sleep 0.2; echo swept > {d}/swept; exit 0\" TERM; echo $$ > {d}/daemon.pid; while :; do sleep 0.02; done' & exec sleep 1000"
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    dir.wait_line("daemon.pid", LONG).expect("daemon started");
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
    assert_eq!(
        dir.read("swept").as_deref(),
        Some("swept\n"),
        "the daemon's cleanup ran before rinit exited"
    );
}

#[test]
fn a_main_command_starts_after_the_services_are_ready_and_its_status_wins() {
    let dir = TestDir::new("main");
    let yaml = r#"
services:
  db:
    command: "trap 'echo stopped > {d}/db.stop; exit 0' TERM; sleep 0.3; touch {d}/db.ready; while :; do sleep 0.02; done"
    ready: { exec: ["test", "-f", "{d}/db.ready"], interval: 20ms }
"#;
    let script = format!("test -f {} && exit 5; exit 9", dir.file("db.ready"));
    let Some(mut inst) = start(&dir, yaml, &["--", "sh", "-c", &script]) else {
        return;
    };
    assert_eq!(inst.expect_exit(LONG), 5, "{}", inst.stderr());
    assert_eq!(dir.read("db.stop").as_deref(), Some("stopped\n"));
}

#[test]
fn other_signals_reach_every_service_and_the_main_command() {
    let dir = TestDir::new("hup");
    let svc = |n: &str| {
        format!("  {n}:\n    command: \"trap 'echo {n} >> {{d}}/hup' HUP; echo up >> {{d}}/up; while :; do sleep 0.02; done\"\n")
    };
    let yaml = format!("services:\n{}{}", svc("a"), svc("b"));
    // The main command keeps running after HUP: exiting would start a
    // shutdown whose SIGTERM could overtake a service's pending HUP trap.
    let main = format!(
        "trap 'echo main >> {0}' HUP; trap 'exit 0' TERM; echo up >> {1}; while :; do sleep 0.02; done",
        dir.file("hup"),
        dir.file("up")
    );
    let Some(mut inst) = start(&dir, &yaml, &["--", "sh", "-c", &main]) else {
        return;
    };
    assert!(wait_for(LONG, || count_lines(&dir, "up") == 3));
    inst.signal(libc::SIGHUP);
    assert!(
        wait_for(LONG, || count_lines(&dir, "hup") == 3),
        "{:?}",
        dir.read("hup")
    );
    let mut got: Vec<String> = dir
        .read("hup")
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    got.sort();
    assert_eq!(got, ["a", "b", "main"]);
    inst.signal(libc::SIGTERM);
    assert_eq!(
        inst.expect_exit(LONG),
        0,
        "the main command exited 0 on TERM"
    );
}

#[test]
fn quick_restarts_leave_no_zombie_and_no_fd_or_thread_growth() {
    let dir = TestDir::new("churn");
    let yaml = r#"
services:
  churn:
    command: "if [ -f {d}/crash ]; then echo x >> {d}/starts; exit 1; fi; echo up > {d}/stable; while [ ! -f {d}/crash ]; do sleep 0.01; done; exit 1"
    backoff: { initial: 0s, max: 0s }
    max_restarts: { count: 100000, within: 1s }
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    dir.wait_line("stable", LONG).expect("service up");
    let pid = inst.pid();
    let (fds0, threads0) = steady_counts(pid);
    std::fs::remove_file(dir.join("stable")).ok();
    dir.write("crash", b"");
    assert!(wait_for(Duration::from_secs(60), || count_lines(
        &dir, "starts"
    ) >= 300));
    std::fs::remove_file(dir.join("crash")).ok();
    dir.wait_line("stable", LONG).expect("service stable again");
    assert!(
        wait_for(LONG, || inst.zombies().is_empty()),
        "zombies: {:?}",
        inst.zombies()
    );
    assert!(
        wait_for(LONG, || open_fds(pid).len() == fds0
            && thread_count(pid) == threads0),
        "fds {fds0} -> {}, threads {threads0} -> {}",
        open_fds(pid).len(),
        thread_count(pid)
    );
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
}

/// rinit's (fd count, thread count) once two samples 100 ms apart agree,
/// so a spawn or a relay thread caught mid-start is not the baseline.
fn steady_counts(pid: i32) -> (usize, usize) {
    let sample = || (open_fds(pid).len(), thread_count(pid));
    let mut last = sample();
    let steady = wait_for(LONG, || {
        std::thread::sleep(Duration::from_millis(100));
        let now = sample();
        std::mem::replace(&mut last, now) == now
    });
    assert!(steady, "rinit's fds and threads never settled");
    last
}

fn thread_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

#[test]
fn a_missing_executable_restarted_a_thousand_times_never_crashes_rinit() {
    let dir = TestDir::new("missing");
    let yaml = r#"
services:
  ghost:
    command: ["/nonexistent/ghost"]
    backoff: { initial: 0s, max: 0s }
    max_restarts: { count: 1000, within: 1h }
"#;
    let Some(mut inst) = start(&dir, yaml, &["-q"]) else {
        return;
    };
    assert_eq!(
        inst.expect_exit(Duration::from_secs(120)),
        127,
        "{}",
        inst.stderr()
    );
    assert_eq!(
        inst.stderr().matches("/nonexistent/ghost").count(),
        1001,
        "one line per attempt"
    );
}

#[test]
fn user_workdir_and_env_are_applied_with_supplementary_groups() {
    let dir = TestDir::new("user");
    let (Some(passwd), Some(group)) = (
        std::fs::read_to_string("/etc/passwd").ok(),
        std::fs::read_to_string("/etc/group").ok(),
    ) else {
        return;
    };
    if !passwd.lines().any(|l| l.starts_with("nobody:")) {
        eprintln!("skipped: no nobody user in /etc/passwd");
        return;
    }
    // A private /etc/group (bind-mounted inside the namespace) that puts
    // nobody into an extra group.
    dir.write(
        "group",
        format!("{group}rinittest:x:4242:daemon,nobody\n").as_bytes(),
    );
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .ok();
    let yaml = r#"
services:
  who:
    command: "echo $(id -u) $(id -g) $(id -G) > {d}/id.tmp; pwd > {d}/cwd; echo \"$GREETING\" > {d}/env; mv {d}/id.tmp {d}/id; exec sleep 1000"
    user: nobody
    workdir: /tmp
    env: { GREETING: "hello world" }
"#;
    dir.write("rinit.yaml", yaml.replace("{d}", &dir.file("")).as_bytes());
    let mount = format!(
        "mount --bind {} /etc/group && exec \"$0\" \"$@\"",
        dir.file("group")
    );
    let Some(mut inst) = Launch::new(RINIT)
        .wrap_inside(["sh", "-c", &mount])
        .arg("-c")
        .arg(dir.join("rinit.yaml"))
        .start_pid1(&dir)
    else {
        return;
    };
    let id = dir
        .wait_line("id", LONG)
        .unwrap_or_else(|| panic!("{}", inst.stderr()));
    let nobody: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .unwrap_or("")
        .split(':')
        .collect();
    let mut fields = id.split_whitespace();
    assert_eq!(fields.next(), Some(nobody[2]), "uid: {id}");
    assert_eq!(fields.next(), Some(nobody[3]), "gid: {id}");
    let groups: Vec<&str> = fields.collect();
    assert!(
        groups.contains(&"4242") && groups.contains(&nobody[3]),
        "groups: {groups:?}"
    );
    assert_eq!(dir.read("cwd").as_deref(), Some("/tmp\n"));
    assert_eq!(dir.read("env").as_deref(), Some("hello world\n"));
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
}

/// A service that prints 10,000 numbered lines of filler, then a last
/// line without a newline.
fn printer(name: &str, fill: &str) -> String {
    format!(
        "  {name}:\n    command: \"i=0; while [ $i -lt 10000 ]; do echo \\\"{name}-$i-{fill}-end\\\"; i=$((i+1)); done; printf '{name}-tail'\"\n    restart: never\n"
    )
}

#[test]
fn prefixed_output_keeps_whole_lines_from_concurrent_services() {
    let dir = TestDir::new("prefix");
    let fills = ["a".repeat(70), "b".repeat(83)];
    let yaml = format!(
        "services:\n{}{}",
        printer("alpha", &fills[0]),
        printer("beta", &fills[1])
    );
    let Some(mut inst) = start(&dir, &yaml, &[]) else {
        return;
    };
    assert_eq!(
        inst.expect_exit(Duration::from_secs(60)),
        0,
        "{}",
        inst.stderr()
    );
    let out = inst.stdout();
    let mut next = [0usize, 0usize];
    let mut tails = 0;
    for line in out.lines() {
        let (idx, name, text) = if let Some(rest) = line.strip_prefix("alpha | ") {
            (0, "alpha", rest)
        } else if let Some(rest) = line.strip_prefix("beta | ") {
            (1, "beta", rest)
        } else {
            panic!("line without a service prefix: {line:?}");
        };
        if text == format!("{name}-tail") {
            tails += 1;
            continue;
        }
        assert_eq!(
            text,
            format!("{name}-{}-{}-end", next[idx], fills[idx]),
            "cut or mixed line"
        );
        next[idx] += 1;
    }
    assert_eq!(next, [10000, 10000]);
    assert_eq!(tails, 2, "an unterminated last line is still relayed");
}

#[test]
fn a_bad_config_starts_nothing_and_exits_2() {
    let dir = TestDir::new("bad-config");
    let yaml = r#"
services:
  web:
    command: "touch {d}/started; exec sleep 1000"
    depends_on: [dbb]
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert_eq!(inst.expect_exit(LONG), 2);
    let err = inst.stderr();
    assert!(
        err.contains("rinit.yaml:5:") && err.contains("dbb"),
        "{err}"
    );
    assert!(!dir.exists("started"));
}

#[test]
fn rinit_check_accepts_every_example() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_some_and(|e| e == "yaml")
            && text.contains("services:")
            && !text.contains("kind:")
        {
            let out = std::process::Command::new(RINIT)
                .arg("check")
                .arg(&path)
                .output()
                .expect("run check");
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn an_empty_config_without_a_main_command_exits_2_instead_of_idling() {
    let dir = TestDir::new("empty-config");
    let Some(mut inst) = start(&dir, "", &[]) else {
        return;
    };
    assert_eq!(inst.expect_exit(LONG), 2, "{}", inst.stderr());
    let err = inst.stderr();
    assert!(
        err.contains("no services") && err.contains("-- CMD"),
        "{err}"
    );
}

#[test]
fn a_health_only_config_with_a_main_command_still_runs() {
    let dir = TestDir::new("health-only");
    // A port that was free a moment ago (the config refuses port 0).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(19387, |a| a.port());
    let yaml = format!("health: {{listen: \"127.0.0.1:{port}\"}}\nshutdown: {{timeout: 5s}}\n");
    let Some(mut inst) = start(&dir, &yaml, &["--", "sh", "-c", "exit 3"]) else {
        return;
    };
    assert_eq!(inst.expect_exit(LONG), 3, "{}", inst.stderr());
}

/// rinit started with stdin and stdout closed: they must not be reused for
/// rinit's own descriptors (a CLOEXEC pipe, a socket) and then handed to a
/// service; the service gets /dev/null there instead. (The inner shell
/// reads its parent's descriptors, which no redirection has touched.)
#[test]
fn closed_stdio_of_rinit_becomes_dev_null_for_services() {
    let dir = TestDir::new("closed-stdio");
    let yaml = r#"
services:
  look:
    command: "sh -c 'readlink /proc/$PPID/fd/0 /proc/$PPID/fd/1 > {d}/fd.tmp; mv {d}/fd.tmp {d}/fd'; exec sleep 1000"
    output: inherit
"#;
    dir.write("rinit.yaml", yaml.replace("{d}", &dir.file("")).as_bytes());
    let Some(mut inst) = Launch::new(RINIT)
        .wrap_inside(["sh", "-c", "exec \"$0\" \"$@\" <&- >&-"])
        .arg("-c")
        .arg(dir.join("rinit.yaml"))
        .start_pid1(&dir)
    else {
        return;
    };
    assert!(wait_for(LONG, || dir.exists("fd")), "{}", inst.stderr());
    assert_eq!(
        dir.read("fd").as_deref(),
        Some("/dev/null\n/dev/null\n"),
        "{}",
        inst.stderr()
    );
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
}

#[test]
fn umask_rlimits_no_new_privs_and_env_file_reach_the_service() {
    let dir = TestDir::new("hardening");
    dir.write("app.env", b"# from a file\nFROM_FILE=yes\nOVERRIDE=file\n");
    let yaml = r#"
services:
  tight:
    command: "umask > {d}/umask; ulimit -n > {d}/soft; ulimit -H -n > {d}/hard; grep NoNewPrivs /proc/self/status > {d}/nnp; echo \"$FROM_FILE $OVERRIDE\" > {d}/env.tmp; mv {d}/env.tmp {d}/env; exec sleep 1000"
    umask: "0027"
    rlimits: { nofile: { soft: 123, hard: 456 } }
    no_new_privs: true
    env_file: app.env
    env: { OVERRIDE: env }
  loose:
    command: "grep NoNewPrivs /proc/self/status > {d}/nnp-loose.tmp; mv {d}/nnp-loose.tmp {d}/nnp-loose; exec sleep 1000"
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    let env = dir.wait_line("env", LONG);
    assert_eq!(env.as_deref(), Some("yes env\n"), "{}", inst.stderr());
    assert_eq!(dir.read("umask").as_deref(), Some("0027\n"));
    assert_eq!(dir.read("soft").as_deref(), Some("123\n"));
    assert_eq!(dir.read("hard").as_deref(), Some("456\n"));
    let nnp = |name: &str| {
        dir.read(name)
            .unwrap_or_default()
            .split_whitespace()
            .last()
            .map(String::from)
    };
    assert_eq!(nnp("nnp").as_deref(), Some("1"));
    assert!(dir.wait_line("nnp-loose", LONG).is_some());
    assert_eq!(nnp("nnp-loose").as_deref(), Some("0"), "only where asked");
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
}

#[test]
fn a_failing_rlimit_is_reported_like_other_child_steps() {
    let dir = TestDir::new("rlimit-fail");
    // More open files than the kernel allows at all (fs.nr_open): valid
    // config, refused by prlimit in the child, reported through the pipe.
    let yaml = r#"
services:
  bad:
    command: "touch {d}/ran"
    restart: never
    rlimits: { nofile: 4000000000 }
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    assert_ne!(inst.expect_exit(LONG), 0, "{}", inst.stderr());
    let err = inst.stderr();
    assert!(err.contains("cannot set the rlimits of"), "{err}");
    assert!(!dir.exists("ran"));
}

#[test]
fn user_sets_home_user_logname_and_shell_from_passwd() {
    let dir = TestDir::new("login-env");
    let Some(passwd) = std::fs::read_to_string("/etc/passwd").ok() else {
        return;
    };
    let Some(nobody) = passwd.lines().find(|l| l.starts_with("nobody:")) else {
        eprintln!("skipped: no nobody user in /etc/passwd");
        return;
    };
    let fields: Vec<&str> = nobody.split(':').collect();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .ok();
    let yaml = r#"
services:
  as-nobody:
    command: "echo \"$HOME|$USER|$LOGNAME|$SHELL\" > {d}/login.tmp; mv {d}/login.tmp {d}/login; exec sleep 1000"
    user: nobody
  own-home:
    command: "echo \"$HOME|$USER\" > {d}/own.tmp; mv {d}/own.tmp {d}/own; exec sleep 1000"
    user: nobody
    env: { HOME: /srv }
"#;
    let Some(mut inst) = start(&dir, yaml, &[]) else {
        return;
    };
    let login = dir.wait_line("login", LONG);
    let want = format!("{}|nobody|nobody|{}\n", fields[5], fields[6]);
    assert_eq!(login.as_deref(), Some(want.as_str()), "{}", inst.stderr());
    let own = dir.wait_line("own", LONG);
    assert_eq!(own.as_deref(), Some("/srv|nobody\n"));
    inst.signal(libc::SIGTERM);
    assert_eq!(inst.expect_exit(LONG), 0);
}

/// `user_when_not_root: rinit`: one image config that names `user:` still
/// runs under `docker run --user` (here: setpriv to 65534 inside the
/// namespace), with the services as rinit's own uid and one warning;
/// without the key the same config is refused, naming the key.
#[test]
fn a_non_root_rinit_runs_user_services_as_itself_only_when_told() {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root (to drop to 65534) and setpriv");
        return;
    }
    for fallback in [true, false] {
        let dir = TestDir::new("user-fallback");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .ok();
        let key = if fallback {
            "user_when_not_root: rinit"
        } else {
            ""
        };
        let yaml = format!(
            "{key}\nservices:\n  db:\n    command: \"id -u > {d}/uid.tmp; mv {d}/uid.tmp {d}/uid; exec sleep 1000\"\n    user: root\n",
            d = dir.file("")
        );
        dir.write("rinit.yaml", yaml.as_bytes());
        let drop = [
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
        ];
        let Some(mut inst) = Launch::new(RINIT)
            .wrap_inside(drop)
            .arg("-c")
            .arg(dir.join("rinit.yaml"))
            .env("RINIT_CONTROL", "off")
            .start_pid1(&dir)
        else {
            return;
        };
        if !fallback {
            assert_eq!(inst.expect_exit(LONG), 2, "{}", inst.stderr());
            assert!(
                inst.stderr().contains("user_when_not_root: rinit"),
                "{}",
                inst.stderr()
            );
            continue;
        }
        let uid = dir
            .wait_line("uid", LONG)
            .unwrap_or_else(|| panic!("{}", inst.stderr()));
        assert_eq!(uid.trim(), "65534");
        let err = inst.stderr();
        assert_eq!(err.matches("instead of their `user`").count(), 1, "{err}");
        assert!(err.contains("running db as 65534:65534"), "{err}");
        inst.signal(libc::SIGTERM);
        assert_eq!(inst.expect_exit(LONG), 0);
    }
}
