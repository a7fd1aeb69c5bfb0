//! `rinit check FILE` end to end: the built binary prints the start plan and
//! exits 0 for a good config, and prints every problem as
//! `file:line:column: ...` on stderr and exits 2 for a bad one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A config file in a fresh temp directory, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(tag: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rinit-check-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rinit.yaml");
        std::fs::write(&path, text).unwrap();
        TempConfig(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn check(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rinit"))
        .arg("check")
        .arg(path)
        .env_remove("RINIT_CONFIG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const GOOD: &str = "\
health:
  listen: \"0.0.0.0:9090\"
shutdown:
  drain: 1s
  timeout: 9s
services:
  migrate:
    command: [\"/app/migrate\", \"--up\"]
    oneshot: true
  db:
    command: [\"postgres\", \"-D\", \"/data\"]
    workdir: /data
    env: { PGTZ: UTC }
    ready: { tcp: \"127.0.0.1:5432\" }
    stop_signal: SIGINT
    stop_timeout: 20s
  web:
    command: \"exec /app/server --port 8080\"
    depends_on: [db, migrate]
    ready: { http: \"http://127.0.0.1:8080/ping\", interval: 1s, timeout: 1s }
    restart: on-failure
    backoff: { initial: 100ms, max: 30s }
    max_restarts: { count: 5, within: 60s }
    critical: true
";

#[test]
fn a_good_config_prints_the_plan_and_exits_0() {
    let file = TempConfig::new("good", GOOD);
    let path = &file.0;
    let out = check(path);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let want = format!(
        "config {} is valid: 3 services in 2 waves\n\
         wave 1: migrate (oneshot), db\n\
         wave 2: web (after db, migrate)\n\
         health: 0.0.0.0:9090\n\
         shutdown: drain 1s, timeout 9s; stop order: web, then migrate, db\n\
         control: /run/rinit/control.sock (logs.buffer 65536 bytes per service)\n",
        path.display()
    );
    assert_eq!(text(&out.stdout), want);
}

#[test]
fn a_bad_config_lists_every_error_with_its_place_and_exits_2() {
    let bad = "\
services:
  web:
    comand: /app/server
    depends_on: [db, cache]
    stop_timeout: 5
  db:
    command: []
    ready: { http: \"https://127.0.0.1/\" }
";
    let file = TempConfig::new("bad", bad);
    let path = &file.0;
    let out = check(path);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let file = path.display();
    for want in [
        format!("{file}:3:5: service 'web': unknown key `comand` (did you mean `command`?)"),
        format!("{file}:4:22: service 'web': depends on `cache`, which is not a service"),
        format!("{file}:5:19: service 'web': `stop_timeout`: invalid duration `5`"),
        format!("{file}:7:14: service 'db': `command` is an empty list"),
        format!("{file}:8:20: service 'db': `https://127.0.0.1/` uses https"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
}

#[test]
fn a_dependency_cycle_is_printed() {
    let cyclic = "\
services:
  a: { command: x, depends_on: [c] }
  b: { command: x, depends_on: [a] }
  c: { command: x, depends_on: [b] }
";
    let file = TempConfig::new("cycle", cyclic);
    let path = &file.0;
    let out = check(path);
    assert_eq!(out.status.code(), Some(2));
    let want = format!(
        "{}:2:33: service 'a': dependency cycle: a -> c -> b -> a",
        path.display()
    );
    assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));
}

#[test]
fn a_yaml_syntax_error_has_its_location() {
    let file = TempConfig::new("syntax", "services:\n  web: {command: [a\n");
    let path = &file.0;
    let out = check(path);
    assert_eq!(out.status.code(), Some(2));
    let want = format!("{}:3:1: YAML syntax error:", path.display());
    assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));
}

#[test]
fn a_missing_file_is_an_error() {
    let file = TempConfig::new("missing", "");
    let path = file.0.with_file_name("nope.yaml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read the config file"));
}

#[test]
fn a_config_without_services_is_an_error_that_names_the_fix() {
    for (tag, yaml) in [
        ("empty", ""),
        ("comments", "# nothing here\n"),
        ("health-only", "health: {listen: \"127.0.0.1:9\"}\n"),
    ] {
        let file = TempConfig::new(tag, yaml);
        let out = check(&file.0);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tag}: {stderr}");
        assert!(out.stdout.is_empty(), "{tag}: {}", text(&out.stdout));
        let want = format!("rinit -c {} -- CMD", file.0.display());
        assert!(
            stderr.contains("no services") && stderr.contains(&want),
            "{tag}: {stderr}"
        );
    }
}

#[test]
fn invalid_utf8_names_the_line_and_column_of_the_first_bad_byte() {
    let file = TempConfig::new("utf8", "");
    std::fs::write(&file.0, b"services:\n  web:\n    command: [\"caf\xe9\"]\n").unwrap();
    let out = check(&file.0);
    assert_eq!(out.status.code(), Some(2));
    let want = format!("{}:3:19: the file is not valid UTF-8", file.0.display());
    assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));
}
