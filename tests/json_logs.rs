//! The JSON log format (`logs.format: json`, `RINIT_LOG_FORMAT=json`):
//! rinit runs as PID 1, services print awkward lines (quotes, tabs, escape
//! bytes, invalid UTF-8, a 40 KB line), and every line on rinit's stdout and
//! stderr must parse as one JSON object with the documented fields. The
//! parsing is python3's `json`, not ours.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{python3, Launch, TestDir};

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");

/// argv: a file of lines. Checks each with json.loads and prints
/// `ok N` or the first bad line.
const CHECK_PY: &str = r#"
import json, sys
n = 0
for raw in open(sys.argv[1], "rb").read().splitlines():
    try:
        o = json.loads(raw)
    except Exception as e:
        print("bad", repr(raw[:200]), e); sys.exit(1)
    for k in ("ts", "service", "stream", "msg"):
        if k not in o:
            print("missing", k, repr(raw[:200])); sys.exit(1)
    if o["service"] == "rinit" and "level" not in o:
        print("no level", repr(raw[:200])); sys.exit(1)
    if len(o["ts"]) != 24 or not o["ts"].endswith("Z"):
        print("ts", o["ts"]); sys.exit(1)
    if len(raw) > 6 * 16384 + 200:
        print("too long", len(raw)); sys.exit(1)
    n += 1
    print(o["service"], o["stream"], o["msg"][:60].encode("unicode_escape").decode())
print("ok", n)
"#;

fn check_json(dir: &TestDir, file: &str) -> String {
    dir.write("check.py", CHECK_PY.as_bytes());
    let out = Command::new(python3())
        .arg(dir.join("check.py"))
        .arg(dir.join(file))
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{file}: {text}");
    text
}

#[test]
fn every_line_is_one_json_object_with_the_documented_fields() {
    let dir = TestDir::new("json-logs");
    let yaml = r#"
logs:
  format: json
services:
  talker:
    command: |
      printf 'say "hi"\ttab \033[1mbold\n'; printf 'bad \377 byte\n' >&2; head -c 40000 /dev/zero | tr '\0' x; echo; exit 0
    restart: never
"#;
    dir.write("rinit.yaml", yaml.as_bytes());
    let Some(mut h) = Launch::new(RINIT)
        .args(["-c", &dir.file("rinit.yaml")])
        .start_pid1(&dir)
    else {
        return;
    };
    h.expect_exit(Duration::from_secs(10));
    std::fs::write(dir.join("out"), h.stdout_bytes()).expect("write out");
    std::fs::write(dir.join("err"), h.stderr()).expect("write err");
    let out = check_json(&dir, "out");
    let err = check_json(&dir, "err");
    assert!(
        out.contains(r#"talker stdout say "hi"\ttab \x1b[1mbold"#),
        "{out}"
    );
    assert!(err.contains("talker stderr bad \\ufffd byte"), "{err}");
    // The 40,000-byte line arrives as 16 KiB pieces, each its own object.
    assert_eq!(out.matches("talker stdout xxxx").count(), 3, "{out}");
    assert!(err.contains("rinit stderr talker: started"), "{err}");
}

#[test]
fn the_environment_variable_wins_and_bad_values_are_refused() {
    let dir = TestDir::new("json-logs-env");
    dir.write(
        "rinit.yaml",
        b"logs:\n  format: json\nservices:\n  s:\n    command: \"echo plain\"\n    restart: never\n",
    );
    let Some(mut h) = Launch::new(RINIT)
        .env("RINIT_LOG_FORMAT", "text")
        .args(["-c", &dir.file("rinit.yaml")])
        .start_pid1(&dir)
    else {
        return;
    };
    h.expect_exit(Duration::from_secs(10));
    assert!(h.stdout().contains("s | plain"), "{}", h.stdout());
    // An empty variable is no choice: the file's `logs.format` applies.
    let Some(mut h) = Launch::new(RINIT)
        .env("RINIT_LOG_FORMAT", "")
        .args(["-c", &dir.file("rinit.yaml")])
        .start_pid1(&dir)
    else {
        return;
    };
    h.expect_exit(Duration::from_secs(10));
    std::fs::write(dir.join("out0"), h.stdout_bytes()).expect("write out");
    let out = check_json(&dir, "out0");
    assert!(out.contains("s stdout plain"), "{out}");
    // Single-command mode: rinit's own lines are JSON; the command's output
    // is its own (inherited fds), untouched.
    let Some(mut h) = Launch::new(RINIT)
        .env("RINIT_LOG_FORMAT", "json")
        .args(["--", "sh", "-c", "echo raw; exit 3"])
        .start_pid1(&dir)
    else {
        return;
    };
    assert_eq!(h.expect_exit(Duration::from_secs(10)), 3);
    assert_eq!(h.stdout(), "raw\n");
    std::fs::write(dir.join("err1"), h.stderr()).expect("write err");
    let err = check_json(&dir, "err1");
    assert!(err.contains("main command exited"), "{err}");
    let out = Command::new(RINIT)
        .env("RINIT_LOG_FORMAT", "yaml")
        .args(["--", "true"])
        .output()
        .expect("run rinit");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RINIT_LOG_FORMAT"));
}

#[test]
fn a_bad_logs_format_is_a_config_error_with_its_position() {
    let dir = TestDir::new("json-logs-bad");
    dir.write(
        "rinit.yaml",
        b"logs:\n  format: xml\nservices:\n  s:\n    command: \"true\"\n",
    );
    let out = Command::new(RINIT)
        .args(["check", &dir.file("rinit.yaml")])
        .output()
        .expect("run rinit check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("rinit.yaml:2:11") && err.contains("`text` or `json`"),
        "{err}"
    );
}
