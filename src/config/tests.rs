//! Whole-file validation tests: one case per error class, each checking
//! the line, column, service and message of every error reported, and that
//! all problems of a file come out in one run.

use std::path::Path;

use super::users::tests::FakeEtc;
use super::{parse, ConfigError};

/// Each error as `line:column service message`, `-` for no service.
fn errors(text: &str, etc: &Path) -> Vec<String> {
    let show = |e: &ConfigError| {
        let service = e.service.as_deref().unwrap_or("-");
        format!("{}:{} {service} {}", e.line, e.column, e.message)
    };
    match parse(Path::new("t.yaml"), text, etc) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(show).collect(),
    }
}

/// Asserts that `text` gives exactly the errors that start with `want`.
#[track_caller]
fn check(text: &str, want: &[&str]) {
    let etc = FakeEtc::new("cases");
    let got = errors(text, &etc.0);
    let matches = got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g.starts_with(w));
    assert!(
        matches,
        "\n text: {text:?}\n  got: {got:#?}\n want: {want:#?}"
    );
}

fn service(body: &str) -> String {
    format!("services:\n  web:\n{body}")
}

#[test]
fn yaml_syntax_errors_carry_their_location() {
    check(
        "services:\n  web: {command: [a\n",
        &["3:1 - YAML syntax error: did not find expected ',' or ']'"],
    );
    check(
        "a: b: c\n",
        &["1:5 - YAML syntax error: mapping values are not allowed in this context"],
    );
    let duplicate = "services:\n  web:\n    command: x\n    oneshot: true\n    command: y\n";
    check(
        duplicate,
        &["5:5 web YAML syntax error: services.web: duplicate entry with key \"command\""],
    );
}

#[test]
fn unknown_keys_get_a_hint_and_the_valid_keys() {
    check(&service("    command: x\n    dependson: [a]\n"), &["4:5 web unknown key `dependson` (did you mean `depends_on`?); valid keys here: command, oneshot, depends_on,"]);
    check(
        "health: {listen: \"0.0.0.0:1\", port: 2}\n",
        &["1:31 - unknown key `port`; valid keys here: listen"],
    );
    check(&service("    command: x\n    max_restarts: {count: 1, whithin: 1s}\n"), &["4:30 web unknown key `whithin` (did you mean `within`?); valid keys here: count, within"]);
}

#[test]
fn unknown_keys_are_reported_wherever_they_are() {
    let text = "helth: {}\nshutdown: {drian: 1s}\nservices:\n  web:\n    comand: x\n    ready: {tcp: \"h:1\", intervall: 1s}\n";
    check(text, &[
        "1:1 - unknown key `helth` (did you mean `health`?); valid keys here: health, shutdown, services",
        "2:12 - unknown key `drian` (did you mean `drain`?); valid keys here: drain, timeout",
        "5:5 web unknown key `comand` (did you mean `command`?); valid keys here: command, oneshot,",
        "6:25 web unknown key `intervall` (did you mean `interval`?); valid keys here: tcp, http, exec, sd_notify, fd, interval, timeout",
    ]);
}

#[test]
fn every_wrong_type_is_reported() {
    let text = service("    command: [a]\n    oneshot: yes\n    critical: 1\n    backoff: {initial: [1]}\n    success_codes: x\n");
    check(
        &text,
        &[
            "4:14 web `oneshot`: invalid type: string \"yes\", expected a boolean",
            "5:15 web `critical`: invalid type: integer `1`, expected a boolean",
            "6:24 web `initial`: invalid type: sequence, expected a string",
            "7:20 web `success_codes`: invalid type: string \"x\", expected a sequence",
        ],
    );
}

#[test]
fn documents_services_and_sections_must_be_mappings() {
    check("- a\n", &["1:1 - the config must be a mapping with `services` (and optionally `health`, `shutdown`), found a list"]);
    check(
        "services:\n  web:\n  db: [x]\n",
        &[
            "2:3 web the service has no settings; `command` is required",
            "3:7 db a service must be a mapping of settings (`command`, ...), found a list",
        ],
    );
    check("shutdown: 5s\nservices:\n  web: {command: x, ready: \"h:1\"}\n", &[
        "1:11 - `shutdown` must be a mapping (keys: drain, timeout), found a string",
        "3:28 web `ready` must be a mapping (keys: tcp, http, exec, sd_notify, fd, interval, timeout), found a string",
    ]);
}

#[test]
fn wrong_types_point_at_the_value() {
    check(
        &service("    command: x\n    depends_on: db\n"),
        &["4:17 web `depends_on`: invalid type: string \"db\", expected a sequence"],
    );
    check(&service("    command: {a: 1}\n"), &["3:14 web `command`: invalid type: map, expected a string (run by /bin/sh -c) or a list"]);
    check(
        "services: [a]\n",
        &["1:11 - `services`: invalid type: sequence, expected a YAML mapping"],
    );
}

#[test]
fn bad_durations_and_signals() {
    check(
        &service("    command: x\n    stop_timeout: 5\n    stop_signal: SIGFOO\n"),
        &[
            "4:19 web `stop_timeout`: invalid duration `5` (time unit needed",
            "5:18 web unknown signal `SIGFOO`; use a name like SIGTERM",
        ],
    );
    check(
        "shutdown:\n  drain: soon\n  timeout: 0s\n",
        &[
            "2:10 - `drain`: invalid duration `soon`",
            "3:12 - `timeout` must be longer than 0s",
        ],
    );
    check(
        "shutdown: {drain: 10s}\n",
        &["1:19 - `drain` (10s) must be shorter than `timeout` (9s)"],
    );
}

#[test]
fn empty_and_missing_commands() {
    check(
        &service("    command: \"  \"\n"),
        &["3:14 web `command` is empty"],
    );
    check(
        &service("    command: []\n"),
        &["3:14 web `command` is an empty list"],
    );
    check(
        &service("    command: [\"\", x]\n"),
        &["3:15 web the program (first item of `command`) is empty"],
    );
    check(
        &service("    oneshot: true\n"),
        &["2:3 web `command` is required"],
    );
    check(
        &service("    command:\n"),
        &["3:5 web `command` is required"],
    );
}

#[test]
fn ready_needs_exactly_one_valid_probe() {
    check(
        &service("    command: x\n    ready: {interval: 1s}\n"),
        &["4:5 web `ready` needs one of `tcp`, `http`, `exec`, `sd_notify` or `fd`"],
    );
    check(
        &service("    command: x\n    ready: {tcp: \"h:1\", http: \"http://h/\"}\n"),
        &["4:25 web `ready` takes exactly one of `tcp`, `http`, `exec`, `sd_notify`, `fd`, found `tcp` and `http`"],
    );
    check(&service("    command: x\n    ready: {tcp: \"localhost:99999\"}\n"), &["4:18 web `localhost:99999` is not a host:port address: the port must be a number from 1 to 65535"]);
    check(
        &service("    command: x\n    ready:\n      http: https://h/ping\n"),
        &["5:13 web `https://h/ping` uses https"],
    );
    check(
        &service("    command: x\n    ready: {http: \"h:80/ping\"}\n"),
        &["4:19 web `h:80/ping` is not an http URL"],
    );
    check(
        &service("    command: x\n    ready: {exec: []}\n"),
        &["4:19 web `exec` is an empty list"],
    );
    check(
        &service("    command: x\n    ready: {exec: [\"\"], interval: 0s}\n"),
        &[
            "4:20 web the probe program (first item of `exec`) is empty",
            "4:35 web `interval` must be longer than 0s",
        ],
    );
}

#[test]
fn a_badly_typed_probe_still_counts_as_given() {
    let text = service("    command: x\n    ready:\n      exec: pg_isready\n");
    check(
        &text,
        &["5:13 web `exec`: invalid type: string \"pg_isready\", expected a sequence"],
    );
}

#[test]
fn health_listen_must_be_ip_and_port() {
    check(
        "health:\n  listen: localhost:9090\n",
        &["2:11 - `listen` must be IP:port with a port from 1 to 65535"],
    );
    check(
        "health: {listen: \"0.0.0.0:0\"}\n",
        &["1:18 - `listen` must be IP:port"],
    );
    check("health: {listen: \"[::]:9090\"}\n", &[]);
}

#[test]
fn words_with_a_fixed_set_of_values() {
    check(&service("    command: x\n    restart: on_failure\n    output: pretty\n"), &[
        "4:14 web unknown `restart` value `on_failure` (did you mean `on-failure`?); valid values: always, on-failure, never",
        "5:13 web unknown `output` value `pretty`; valid values: prefix, inherit",
    ]);
    check(
        &service(
            "    command: x\n    oneshot: true\n    restart: always\n    ready: {tcp: \"h:1\"}\n",
        ),
        &[
            "5:14 web a oneshot cannot use `restart: always`",
            "6:5 web a oneshot is ready when it exits with a success code",
        ],
    );
}

#[test]
fn restart_limits() {
    check(
        &service("    command: x\n    max_restarts: {count: -1, within: 0s}\n"),
        &[
            "4:27 web `count` must be a number from 0 to 1000000, found -1",
            "4:39 web `within` must be longer than 0s",
        ],
    );
    check(
        &service("    command: x\n    backoff: {initial: 1m}\n"),
        &["4:24 web backoff `initial` (1m) is longer than `max` (30s)"],
    );
    check(
        &service("    command: x\n    backoff: {max: 10ms}\n"),
        &["4:20 web backoff `initial` (100ms) is longer than `max` (10ms)"],
    );
    check(
        &service("    command: x\n    success_codes: [0, 256, -1]\n"),
        &[
            "4:24 web exit code 256 is out of range (0 to 255)",
            "4:29 web exit code -1 is out of range (0 to 255)",
        ],
    );
    check(
        &service("    command: x\n    success_codes: []\n"),
        &["4:20 web `success_codes` is empty"],
    );
}

#[test]
fn users_workdirs_and_env() {
    check(
        &service("    command: x\n    user: nobody\n"),
        &["4:11 web user `nobody` is not in"],
    );
    check(
        &service("    command: x\n    user: app:wheel\n"),
        &["4:11 web group `wheel` is not in"],
    );
    check(
        &service("    command: x\n    user: \"1234:1234\"\n    workdir: data\n"),
        &["5:14 web `workdir` must be an absolute path, found `data`"],
    );
    check(
        &service("    command: x\n    env: {\"A=B\": 1}\n"),
        &["4:11 web `A=B` is not a valid variable name"],
    );
}

#[test]
fn service_names() {
    check(
        "services:\n  \"my app\": {command: x}\n",
        &["2:3 my app `my app` is not a valid service name"],
    );
    let numbered = "services:\n  1: {command: x}\n  \"1\": {command: y}\n";
    check(numbered, &["2:3 1 service `1` is defined twice"]);
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let text = "\
helth: {}
services:
  db:
    command: []
    stop_signal: SIGNOPE
  web:
    command: x
    depends_on: [db, cache]
    restart: sometimes
";
    check(
        text,
        &[
            "1:1 - unknown key `helth`",
            "4:14 db `command` is an empty list",
            "5:18 db unknown signal `SIGNOPE`",
            "8:22 web depends on `cache`, which is not a service",
            "9:14 web unknown `restart` value `sometimes`",
        ],
    );
}

#[test]
fn service_names_are_restricted_to_a_safe_set() {
    check(
        "services:\n  \"a|b\": {command: x}\n",
        &["2:3 a|b `a|b` is not a valid service name: its 2nd character, `|` (U+007C), is not allowed; use ASCII letters, digits, `-`, `_`, `.` and `@`"],
    );
    check(
        "services:\n  \"web\u{202e}\": {command: x}\n",
        &["2:3 web\u{202e} `web\\u{202e}` is not a valid service name: its 4th character, `\\u{202e}` (U+202E)"],
    );
    check(
        "services:\n  \"\": {command: x}\n",
        &["2:3  `` is not a valid service name: it is empty"],
    );
    let long = "a".repeat(65);
    check(
        &format!("services:\n  {long}: {{command: x}}\n"),
        &["2:3 aaaa"],
    );
    check(
        "services:\n  web-1.prod_x@2: {command: x}\n  A9: {command: x}\n",
        &[],
    );
    check(
        &format!("services:\n  {}: {{command: x}}\n", "b".repeat(64)),
        &[],
    );
}

/// A config of `n` services: a chain of dependencies (the worst case for
/// wave building) interleaved with independent ones.
fn many_services(n: usize) -> String {
    let mut text = String::from("services:\n");
    for i in 0..n {
        text.push_str(&format!("  s{i}:\n    command: [sleep, \"1\"]\n"));
        if i >= 2 && i % 2 == 0 {
            text.push_str(&format!("    depends_on: [s{}]\n", i - 2));
        }
    }
    text
}

fn time_to_validate(text: &str) -> std::time::Duration {
    let etc = Path::new("/nonexistent");
    let start = std::time::Instant::now();
    assert!(parse(Path::new("big.yaml"), text, etc).is_ok());
    start.elapsed()
}

/// Loading and validation are linear in the number of services: ten times
/// the services take about ten times as long, not a hundred (a name check,
/// the waves and a hint computation were quadratic: 100,000 services took
/// 43 s). The bound is loose so that a busy machine does not fail it.
#[test]
fn validation_is_linear_in_the_number_of_services() {
    let (small, large) = (many_services(2_000), many_services(20_000));
    let best = |text: &str| (0..3).map(|_| time_to_validate(text)).min().unwrap();
    let (t_small, t_large) = (best(&small), time_to_validate(&large));
    let ratio = t_large.as_secs_f64() / t_small.as_secs_f64();
    assert!(
        ratio < 25.0,
        "2,000 services: {t_small:?}, 20,000: {t_large:?} ({ratio:.1}x)"
    );
}

/// Values that once passed validation and then overflowed `Instant +
/// Duration` in PID 1 (a readiness timeout of i64::MAX seconds panicked at
/// the first probe).
#[test]
fn every_duration_and_count_is_bounded() {
    let huge = "9223372036854775807s";
    check(
        &service(&format!(
            "    command: x\n    ready: {{tcp: \"h:1\", timeout: {huge}, interval: 25h}}\n"
        )),
        &[
            "4:34 web `timeout`: `9223372036854775807s` is longer than the maximum of 1day",
            "4:66 web `interval`: `25h` is longer than the maximum of 1day",
        ],
    );
    check(
        &service(&format!("    command: x\n    stop_timeout: {huge}\n    backoff: {{initial: 1s, max: 400days}}\n    max_restarts: {{count: 1000001, within: 366d}}\n")),
        &[
            "4:19 web `stop_timeout`: `9223372036854775807s` is longer than the maximum of 1year",
            "5:33 web `max`: `400days` is longer than the maximum of 1year",
            "6:27 web `count` must be a number from 0 to 1000000, found 1000001",
            "6:44 web `within`: `366d` is longer than the maximum of 1year",
        ],
    );
    check(
        &format!("shutdown: {{drain: {huge}, timeout: 400d}}\n"),
        &[
            "1:19 - `drain`: `9223372036854775807s` is longer than the maximum of 1year",
            "1:50 - `timeout`: `400d` is longer than the maximum of 1year",
        ],
    );
    check(
        &service("    command: x\n    ready: {tcp: \"h:1\", timeout: 1day, interval: 24h}\n    stop_timeout: 365d\n    max_restarts: {count: 1000000, within: 1y}\n"),
        &[],
    );
}

#[test]
fn invalid_utf8_is_placed_at_its_first_bad_byte() {
    let show = |e: ConfigError| format!("{}:{} {}", e.line, e.column, e.message);
    let err = super::utf8(b"services:\n  w\xc3\xa9b: {command: \xff}\n".to_vec()).unwrap_err();
    assert_eq!(
        show(err),
        "2:18 the file is not valid UTF-8: byte 0xFF here cannot start or continue a character"
    );
    let err = super::utf8(b"\xe2\x82".to_vec()).unwrap_err();
    assert_eq!((err.line, err.column), (1, 1));
    assert_eq!(super::utf8(b"ok\n".to_vec()).unwrap(), "ok\n");
}

#[test]
fn umask_rlimits_and_no_new_privs_are_checked_at_their_place() {
    let text = service(
        "    command: x\n    umask: \"0027\"\n    no_new_privs: true\n    rlimits:\n      nofile: 1024\n      core: unlimited\n      nproc: {soft: 10, hard: 20}\n      stack: {hard: \"8388608\"}\n",
    );
    let cfg = parse(Path::new("t.yaml"), &text, Path::new("/nonexistent")).unwrap();
    let h = &cfg.services[0].hardening;
    assert_eq!((h.umask, h.no_new_privs), (Some(0o027), true));
    let limits: Vec<(Option<u64>, Option<u64>)> =
        h.rlimits.iter().map(|r| (r.soft, r.hard)).collect();
    let inf = super::UNLIMITED;
    assert_eq!(
        limits,
        [
            (Some(1024), Some(1024)),
            (Some(inf), Some(inf)),
            (Some(10), Some(20)),
            (None, Some(8388608))
        ]
    );
    assert_eq!(h.rlimits[0].resource, libc::RLIMIT_NOFILE as i32);
    check(
        &service("    command: x\n    umask: 27\n"),
        &["4:12 web `umask` must be a quoted octal string like \"0027\" (found the number 27"],
    );
    // YAML reads an unquoted 0027 as a string (not octal 23): accepted.
    check(&service("    command: x\n    umask: 0027\n"), &[]);
    check(
        &service("    command: x\n    umask: \"0089\"\n"),
        &["4:12 web `umask` `0089` is not an octal mask from 0000 to 0777"],
    );
    check(
        &service("    command: x\n    umask: \"1777\"\n"),
        &["4:12 web `umask` `1777` is not an octal mask"],
    );
    check(
        &service("    command: x\n    rlimits:\n      nofiles: 10\n      nproc: {soft: 20, hard: 10}\n      core: -1\n      as: {sfot: 1}\n"),
        &[
            "5:7 web unknown resource `nofiles` (did you mean `nofile`?); valid: as, core,",
            "6:21 web the soft limit (20) is above the hard limit (10)",
            "7:13 web `core`: a limit is a number from 0 to 18446744073709551614 or `unlimited`, found `-1`",
            "8:12 web unknown key `sfot`; valid keys here: soft, hard",
        ],
    );
    check(
        &service("    command: x\n    no_new_privs: 1\n"),
        &["4:19 web `no_new_privs`: invalid type: integer `1`, expected a boolean"],
    );
}

/// A directory holding env files, removed on drop.
struct EnvDir(std::path::PathBuf);

impl EnvDir {
    fn new(tag: &str, files: &[(&str, &str)]) -> EnvDir {
        let dir = std::env::temp_dir().join(format!("rinit-envfile-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        EnvDir(dir)
    }
}

impl Drop for EnvDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vars(text: &str, dir: &EnvDir, etc: &Path) -> Result<Vec<String>, Vec<String>> {
    let config = dir.0.join("rinit.yaml");
    match parse(&config, text, etc) {
        Ok(cfg) => Ok(cfg.services[0]
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()),
        Err(e) => Err(e
            .errors
            .iter()
            .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
            .collect()),
    }
}

#[test]
fn env_files_are_read_from_the_configs_directory_and_env_wins() {
    let dir = EnvDir::new(
        "merge",
        &[
            ("a.env", "# base\nA=1\nB=from-a\n"),
            ("b.env", "B=from-b\nC=3\n"),
        ],
    );
    let abs = dir.0.join("b.env");
    let text = format!(
        "services:\n  web:\n    command: x\n    env_file: [a.env, \"{}\"]\n    env: {{C: own}}\n",
        abs.display()
    );
    let nowhere = Path::new("/nonexistent");
    assert_eq!(
        vars(&text, &dir, nowhere).unwrap(),
        ["A=1", "B=from-b", "C=own"]
    );
    let one = "services:\n  web:\n    command: x\n    env_file: a.env\n";
    assert_eq!(vars(one, &dir, nowhere).unwrap(), ["A=1", "B=from-a"]);
}

#[test]
fn a_missing_or_malformed_env_file_is_an_error_naming_it() {
    let dir = EnvDir::new("bad", &[("bad.env", "A=1\nNOT A NAME=2\n")]);
    let text = "services:\n  web:\n    command: x\n    env_file: [missing.env, bad.env]\n";
    let errors = vars(text, &dir, Path::new("/nonexistent")).unwrap_err();
    let (missing, bad) = (dir.0.join("missing.env"), dir.0.join("bad.env"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("4:16 cannot read env_file {}", missing.display())),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with(&format!(
            "4:29 env_file {}:2: variable name `NOT A NAME`",
            bad.display()
        )),
        "{errors:?}"
    );
}

#[test]
fn user_sets_the_login_variables_unless_env_or_env_file_does() {
    let etc = FakeEtc::new("login");
    let dir = EnvDir::new("login", &[("home.env", "HOME=/from-file\n")]);
    let plain = "services:\n  web:\n    command: x\n    user: app\n";
    assert_eq!(
        vars(plain, &dir, &etc.0).unwrap(),
        ["HOME=/home/app", "USER=app", "LOGNAME=app", "SHELL=/bin/sh"]
    );
    let own = "services:\n  web:\n    command: x\n    user: app\n    env_file: home.env\n    env: {USER: me}\n";
    assert_eq!(
        vars(own, &dir, &etc.0).unwrap(),
        ["HOME=/from-file", "USER=me", "LOGNAME=app", "SHELL=/bin/sh"]
    );
    let unknown = "services:\n  web:\n    command: x\n    user: \"4242\"\n";
    assert_eq!(vars(unknown, &dir, &etc.0).unwrap(), ["HOME=/"]);
    let none = "services:\n  web:\n    command: x\n";
    assert!(vars(none, &dir, &etc.0).unwrap().is_empty());
}

/// `n` services, each with one error (a duration without a unit).
fn many_errors(n: usize) -> String {
    let mut text = String::from("services:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  s{i}:\n    command: [sleep, \"1\"]\n    stop_timeout: 5\n"
        ));
    }
    text
}

fn time_to_reject(text: &str, errors: usize) -> std::time::Duration {
    let start = std::time::Instant::now();
    let got = parse(Path::new("bad.yaml"), text, Path::new("/nonexistent"));
    assert_eq!(got.map(|_| ()).unwrap_err().errors.len(), errors);
    start.elapsed()
}

/// Placing errors is linear too: each error used to rescan the file from
/// the top (2,000 services with one error each took 15 s).
#[test]
fn placing_errors_is_linear_in_the_size_of_the_file() {
    let (small, large) = (many_errors(300), many_errors(3_000));
    let t_small = (0..3).map(|_| time_to_reject(&small, 300)).min().unwrap();
    let t_large = time_to_reject(&large, 3_000);
    let ratio = t_large.as_secs_f64() / t_small.as_secs_f64();
    assert!(
        ratio < 25.0,
        "300 errors: {t_small:?}, 3,000: {t_large:?} ({ratio:.1}x)"
    );
}

#[test]
fn liveness_and_start_timeout() {
    let ok = "    command: x\n    liveness: {http: \"http://127.0.0.1:8080/health\", interval: 2s}\n    start_timeout: 30s\n";
    check(&service(ok), &[]);
    check(
        &service("    command: x\n    liveness: {tcp: \"h:1\", interval: 1s, timeout: 1s}\n"),
        &["4:51 web must be shorter than `interval` (1s)"],
    );
    check(
        &service("    command: x\n    liveness: {exec: [true], failures: 0}\n"),
        &["4:40 web must be from 1 to 1000 consecutive failures, found 0"],
    );
    check(
        &service("    command: x\n    liveness: {interval: 1s}\n"),
        &["4:5 web `liveness` needs one of `tcp`, `http` or `exec`"],
    );
    check(
        &service("    command: x\n    liveness: {tcp: \"h:1\", failurs: 2}\n"),
        &["4:28 web unknown key `failurs` (did you mean `failures`?); valid keys here: tcp, http, exec, interval, timeout, failures"],
    );
    check(
        &service("    command: x\n    oneshot: true\n    liveness: {tcp: \"h:1\"}\n"),
        &["5:5 web a oneshot runs to completion; it takes no `liveness` check"],
    );
    check(
        &service("    command: x\n    start_timeout: 0s\n"),
        &["4:20 web `start_timeout` must be longer than 0s"],
    );
}

#[test]
fn sd_notify_and_watchdog() {
    check(
        &service("    command: x\n    ready: {sd_notify: true}\n    watchdog: 10s\n"),
        &[],
    );
    check(
        &service("    command: x\n    ready: {sd_notify: false}\n"),
        &["4:24 web must be `true`; for no readiness check leave `ready` out"],
    );
    check(
        &service("    command: x\n    ready: {sd_notify: true, interval: 1s}\n"),
        &["4:30 web `interval` is for polled probes"],
    );
    check(
        &service("    command: x\n    ready: {sd_notify: true, tcp: \"h:1\"}\n"),
        &["4:13 web `ready` takes exactly one of `tcp`, `http`, `exec`, `sd_notify`, `fd`, found `tcp` and `sd_notify`"],
    );
    check(
        &service("    command: x\n    ready: {tcp: \"h:1\"}\n    watchdog: 1s\n"),
        &["5:5 web `watchdog` needs `ready: {sd_notify: true}`"],
    );
    check(
        &service(
            "    command: x
    ready: {fd: 3}
",
        ),
        &[],
    );
    check(
        &service(
            "    command: x
    ready: {fd: 2}
",
        ),
        &["4:17 web must be a descriptor from 3 to 1023"],
    );
}
