//! tini's and dumb-init's flags as their users write them in Dockerfiles
//! (`ENTRYPOINT ["/sbin/tini", "-g", "--"]` and friends), with the binary
//! swapped for rinit, plus `-c none` (SPEC section 1). rinit runs as PID 1
//! of a fresh PID namespace; every wait has a deadline.

mod common;

use std::time::Duration;

use common::{wait_for, Launch, TestDir};

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs `rinit ARGS` as PID 1 and returns (exit code, stderr); None when no
/// PID namespace can be made here.
fn run(dir: &TestDir, args: &[&str]) -> Option<(i32, String)> {
    let mut h = Launch::new(RINIT).args(args).start_pid1(dir)?;
    let code = h.expect_exit(secs(10));
    Some((code, h.stderr()))
}

#[test]
fn tinis_no_op_flags_are_accepted() {
    let dir = TestDir::new("compat-noop");
    // -s: subreaper, -g: signal the group: both are what rinit always does.
    for flags in [&["-s"][..], &["-g"], &["-s", "-g"], &["-w"], &["-vvv"]] {
        let mut args = flags.to_vec();
        args.extend(["--", "sh", "-c", "exit 3"]);
        let Some((code, err)) = run(&dir, &args) else {
            return;
        };
        assert_eq!(code, 3, "rinit {flags:?}: {err}");
    }
}

#[test]
fn tinis_env_variables_are_accepted_silently() {
    let dir = TestDir::new("compat-env");
    let launch = Launch::new(RINIT)
        .env("TINI_SUBREAPER", "1")
        .env("TINI_KILL_PROCESS_GROUP", "1")
        .args(["--", "sh", "-c", "exit 4"]);
    let Some(mut h) = launch.start_pid1(&dir) else {
        return;
    };
    assert_eq!(h.expect_exit(secs(10)), 4, "{}", h.stderr());
    assert!(!h.stderr().contains("TINI"), "{}", h.stderr());
}

#[test]
fn e_turns_listed_exit_codes_into_success() {
    let dir = TestDir::new("compat-e");
    let cases: [(&[&str], &str, i32); 4] = [
        // A server that dies of the SIGTERM it was sent: 143 → 0.
        (&["-e", "143"], "kill -TERM $$", 0),
        (&["-e", "3", "-e", "4"], "exit 4", 0),
        // Codes not listed pass through unchanged.
        (&["-e", "143"], "exit 5", 5),
        (&["-e", "143"], "exit 0", 0),
    ];
    for (flags, script, want) in cases {
        let mut args = flags.to_vec();
        args.extend(["--", "sh", "-c", script]);
        let Some((code, err)) = run(&dir, &args) else {
            return;
        };
        assert_eq!(code, want, "rinit {flags:?} `{script}`: {err}");
    }
}

#[test]
fn l_prints_the_licence_and_exits_0() {
    let out = std::process::Command::new(RINIT)
        .arg("-l")
        .output()
        .expect("run rinit -l");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("MIT OR Apache-2.0"));
}

#[test]
fn dumb_init_flags_rinit_does_not_take_are_refused_with_what_to_use() {
    for (flag, hint) in [
        ("--single-child", "exec"),
        ("--rewrite", "stop_signal"),
        ("--setsid", "process group"),
    ] {
        let out = std::process::Command::new(RINIT)
            .args([flag, "--", "true"])
            .output()
            .expect("run rinit");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains("dumb-init") && err.contains(hint),
            "{flag}: {err}"
        );
    }
}

#[test]
fn bad_e_and_p_values_are_usage_errors() {
    for args in [&["-e", "256"][..], &["-e", "x"], &["-p", "SIGNOPE"]] {
        let out = std::process::Command::new(RINIT)
            .args(args)
            .args(["--", "true"])
            .output()
            .expect("run rinit");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
}

/// `-p SIGTERM`: when rinit's parent dies, the kernel sends rinit SIGTERM
/// and rinit stops its command. The namespace's init here is a shell; a
/// subshell starts rinit and exits once the command is running, so rinit's
/// parent is gone and rinit must end on its own.
#[test]
fn p_makes_rinit_stop_when_its_parent_dies() {
    let dir = TestDir::new("compat-p");
    let script = r#"cd "$1"
( "$2" -p SIGTERM -- sh -c 'echo $$ > child.pid; exec sleep 1000' 2> rinit.err &
  while [ ! -s child.pid ]; do sleep 0.01; done )
while kill -0 "$(cat child.pid)" 2>/dev/null; do sleep 0.02; done
echo gone > done"#;
    let launch = Launch::new("sh").args([
        "-c",
        script,
        "sh",
        dir.path().to_str().expect("utf-8 test dir"),
        RINIT,
    ]);
    let Some(mut h) = launch.start_pid1(&dir) else {
        return;
    };
    assert!(
        wait_for(secs(10), || dir.exists("done")),
        "the command outlived rinit's parent; rinit said:\n{}",
        dir.read("rinit.err").unwrap_or_default()
    );
    assert_eq!(h.expect_exit(secs(10)), 0);
    let err = dir.read("rinit.err").unwrap_or_default();
    assert!(err.contains("SIGTERM"), "{err}");
}

/// Starts rinit as PID 1 with `dir/etc` mounted over /etc, so that
/// `dir/etc/rinit.yaml` is the default config it finds.
fn with_default_config(dir: &TestDir) -> Launch {
    let mount = format!(
        "mount --bind {} /etc && exec \"$0\" \"$@\"",
        dir.file("etc")
    );
    Launch::new(RINIT).wrap_inside(["sh", "-c", &mount])
}

#[test]
fn c_none_ignores_the_default_config() {
    let dir = TestDir::new("compat-c-none");
    std::fs::create_dir_all(dir.join("etc")).expect("mkdir etc");
    // /etc/rinit.yaml would start a service that writes a file; with
    // `-c none` (or RINIT_CONFIG=none) only the command runs.
    dir.write(
        "etc/rinit.yaml",
        format!(
            "services:\n  web:\n    command: [\"sh\", \"-c\", \"touch {}; exec sleep 100\"]\n",
            dir.file("started")
        )
        .as_bytes(),
    );
    for (args, env) in [
        (vec!["-c", "none", "--", "sh", "-c", "exit 7"], None),
        (vec!["--", "sh", "-c", "exit 7"], Some("none")),
    ] {
        let mut launch = with_default_config(&dir).args(&args);
        if let Some(v) = env {
            launch = launch.env("RINIT_CONFIG", v);
        }
        let Some(mut h) = launch.start_pid1(&dir) else {
            return;
        };
        assert_eq!(h.expect_exit(secs(10)), 7, "{}", h.stderr());
        assert!(!dir.exists("started"), "{args:?}: the service ran");
        assert!(!h.stderr().contains("web"), "{}", h.stderr());
    }
    // The control: without `none` the default config is read and its
    // service runs (the command waits for it, then exits 7).
    let wait = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; exit 7",
        dir.file("started")
    );
    let launch = with_default_config(&dir).args(["--", "sh", "-c", &wait]);
    let Some(mut h) = launch.start_pid1(&dir) else {
        return;
    };
    assert_eq!(h.expect_exit(secs(10)), 7, "{}", h.stderr());
    assert!(h.stderr().contains("web: started"), "{}", h.stderr());
}
