//! From config text to a validated `Config`, or every problem at once.
//! Order of work: YAML syntax (fatal: nothing else can be checked), the
//! shape check of `raw`, then each value (durations, signals, addresses,
//! probes, users, paths), then the dependency graph of `graph`. Every check
//! reports through `Report` and carries on, so one run lists all problems.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

use super::graph;
use super::hardening;
use super::locate::{Locator, Pos, Report};
use super::raw::{self, RawCommand, RawEnv, RawFile, RawForward, RawService, Scalar};
use super::{ready, users, CommandLine, Config, ConfigError, Hardening, Identity, Output, Service};
use crate::core::types::{Forward, RestartPolicy, ServicePolicy};

pub use super::graph::describe_plan;

pub fn validate(path: &Path, text: &str, etc: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut report = Report::new(text);
    let value = parse_yaml(text, report.locator()).map_err(|e| vec![e])?;
    let file = raw::file(&value, &mut report);
    let health_listen = listen(&file, &mut report);
    let (drain, timeout) = shutdown(&file, &mut report);
    let runtime = super::runtime_keys::check(&file, &mut report);
    let mut services = Vec::new();
    let mut depends = Vec::new();
    let mut seen = HashSet::new();
    for (key, value) in file.services.iter().flatten() {
        let Some(name) = service_name(key, &mut seen, &mut report) else {
            continue;
        };
        let raw = raw::service(&name, value, &mut report);
        let (service, deps) = match raw {
            Some(raw) => service(&name, raw, path, etc, &mut report),
            None => (placeholder(&name), Vec::new()),
        };
        services.push(service);
        depends.push(deps);
    }
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    let (indices, waves) = graph::plan(&names, &depends, &mut report);
    for (service, deps) in services.iter_mut().zip(indices) {
        service.policy.depends_on = deps;
    }
    let errors = report.into_errors();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        path: path.to_path_buf(),
        health_listen,
        drain,
        timeout,
        services,
        waves,
        runtime,
    })
}

fn parse_yaml(text: &str, locator: &Locator) -> Result<Value, ConfigError> {
    let mut value: Value = serde_norway::from_str(text).map_err(|e| syntax(&e, locator))?;
    value.apply_merge().map_err(|e| syntax(&e, locator))?;
    Ok(value)
}

/// A YAML error at serde_norway's location (moved to the second key for a
/// duplicate key, which serde_norway reports at the mapping's start).
fn syntax(e: &serde_norway::Error, locator: &Locator) -> ConfigError {
    let mut pos = e.location().map_or(Pos { line: 1, column: 1 }, |l| Pos {
        line: l.line(),
        column: l.column(),
    });
    let mut message = e.to_string();
    let mark = format!(" at line {} column {}", pos.line, pos.column);
    if let Some(i) = message.find(&mark) {
        message.replace_range(i..i + mark.len(), "");
    }
    let duplicate = message
        .split_once("duplicate entry with key \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(key, _)| locator.duplicate(pos, key));
    pos = duplicate.unwrap_or(pos);
    let service = message
        .strip_prefix("services.")
        .and_then(|rest| rest.split([':', '.']).next())
        .map(String::from);
    ConfigError {
        line: pos.line,
        column: pos.column,
        service,
        message: format!("YAML syntax error: {message}"),
    }
}

fn service_name(key: &Value, seen: &mut HashSet<String>, report: &mut Report) -> Option<String> {
    let name = match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            let kind = raw::kind(other);
            report.at_key(
                &["services"],
                format!("service names must be strings, found {kind}"),
            );
            return None;
        }
    };
    let path = ["services", name.as_str()];
    if let Err(why) = check_name(&name) {
        let shown = name.escape_debug();
        report.at_key(
            &path,
            format!("`{shown}` is not a valid service name: {why}"),
        );
    }
    // A set, not a scan of the services so far: a scan made loading
    // quadratic in the number of services.
    if !seen.insert(name.clone()) {
        report.at_key(
            &path,
            format!("service `{}` is defined twice", name.escape_debug()),
        );
        return None;
    }
    Some(name)
}

/// The longest service name, in characters.
pub const MAX_NAME: usize = 64;

/// Service names end up at the start of every output line (`name | line`),
/// in metrics labels and in URLs: only characters that cannot forge another
/// service's line or break those formats.
fn check_name(name: &str) -> Result<(), String> {
    const ALLOWED: &str = "use ASCII letters, digits, `-`, `_`, `.` and `@`";
    if name.is_empty() {
        return Err(format!("it is empty; {ALLOWED}"));
    }
    let bad = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if let Some((i, c)) = name.chars().enumerate().find(|&(_, c)| bad(c)) {
        let shown = c.escape_debug();
        let code = u32::from(c);
        return Err(format!(
            "its {} character, `{shown}` (U+{code:04X}), is not allowed; {ALLOWED}",
            ordinal(i + 1)
        ));
    }
    let len = name.chars().count();
    if len > MAX_NAME {
        return Err(format!("it has {len} characters, more than {MAX_NAME}"));
    }
    Ok(())
}

/// `1st`, `2nd`, `3rd`, `4th`, ... for messages.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Stands in for a service whose settings were not a mapping (already
/// reported), so that dependents still find its name.
fn placeholder(name: &str) -> Service {
    Service {
        name: name.to_string(),
        command: CommandLine::Argv(Vec::new()),
        ready: None,
        liveness: None,
        user: None,
        workdir: None,
        env: Vec::new(),
        output: Output::Prefix,
        hardening: Hardening::default(),
        policy: ServicePolicy::new(name),
    }
}

fn listen(file: &RawFile, report: &mut Report) -> Option<SocketAddr> {
    let Scalar(text) = file.health.as_ref()?.listen.as_ref()?;
    match text.trim().parse::<SocketAddr>() {
        Ok(addr) if addr.port() != 0 => Some(addr),
        _ => {
            let message = format!("`listen` must be IP:port with a port from 1 to 65535, like 0.0.0.0:9090 or [::]:9090, found `{text}`");
            report.at_value(&["health", "listen"], message);
            None
        }
    }
}

fn shutdown(file: &RawFile, report: &mut Report) -> (Duration, Duration) {
    let raw = file.shutdown.as_ref();
    let drain_at = ["shutdown", "drain"];
    let timeout_at = ["shutdown", "timeout"];
    let drain = duration(raw.and_then(|s| s.drain.as_ref()), &drain_at, report);
    let timeout = positive(raw.and_then(|s| s.timeout.as_ref()), &timeout_at, report);
    let drain = drain.unwrap_or(Duration::ZERO);
    let timeout = timeout.unwrap_or(Duration::from_secs(9));
    if drain >= timeout {
        let (d, t) = (show(drain), show(timeout));
        let message =
            format!("`drain` ({d}) must be shorter than `timeout` ({t}), which includes it");
        report.at_value(&drain_at, message);
    }
    (drain, timeout)
}

/// Converts one well-shaped service; also returns its `depends_on` names.
fn service(
    name: &str,
    raw: RawService,
    config: &Path,
    etc: &Path,
    report: &mut Report,
) -> (Service, Vec<String>) {
    let at = |key| ["services", name, key];
    let mut policy = policy(name, &raw, report);
    let ready = raw
        .ready
        .as_ref()
        .and_then(|r| ready::ready(r, name, report));
    if policy.oneshot && raw.ready.is_some() {
        let message =
            "a oneshot is ready when it exits with a success code; it takes no `ready` probe";
        report.at_key(&at("ready"), message);
    }
    policy.probe = ready.as_ref().and_then(|(_, probe)| *probe);
    policy.notify = matches!(
        ready,
        Some((super::ReadyCheck::Notify | super::ReadyCheck::Fd(_), _))
    );
    let watchdog = positive_bounded(
        raw.watchdog.as_ref(),
        MAX_PROBE_DURATION,
        &at("watchdog"),
        report,
    );
    let sd_notify = matches!(ready, Some((super::ReadyCheck::Notify, _)));
    if watchdog.is_some() && !sd_notify {
        let message =
            "`watchdog` needs `ready: {sd_notify: true}`: the service feeds it with WATCHDOG=1";
        report.at_key(&at("watchdog"), message);
    }
    policy.watchdog = watchdog.filter(|_| sd_notify);
    let liveness = raw
        .liveness
        .as_ref()
        .and_then(|l| ready::liveness(l, name, report));
    if policy.oneshot && raw.liveness.is_some() {
        let message = "a oneshot runs to completion; it takes no `liveness` check (bound it with `start_timeout`)";
        report.at_key(&at("liveness"), message);
    }
    policy.liveness = liveness.as_ref().map(|(_, l)| *l);
    let max = MAX_PROBE_DURATION;
    policy.start_timeout = positive_bounded(
        raw.start_timeout.as_ref(),
        max,
        &at("start_timeout"),
        report,
    );
    let outputs = [("prefix", Output::Prefix), ("inherit", Output::Inherit)];
    let output = choice(raw.output.as_ref(), &outputs, &at("output"), report);
    let depends = raw.depends_on.iter().flatten();
    let (user, account) = user(raw.user.as_ref(), name, etc, report).unzip();
    // Lowest first: the login variables of `user`, then `env_file`, then
    // `env`, which wins over both.
    let login = account.map(|a| a.env()).unwrap_or_default();
    let files = hardening::env_files(raw.env_file.as_ref(), name, config, report);
    let own = env(raw.env.clone().unwrap_or_default(), name, report);
    let hardening = Hardening {
        umask: hardening::umask(raw.umask.as_ref(), name, report),
        rlimits: hardening::rlimits(raw.rlimits.as_ref(), name, report),
        no_new_privs: raw.no_new_privs.unwrap_or(false),
    };
    let service = Service {
        name: name.to_string(),
        command: command(raw.command.as_ref(), name, report),
        ready: ready.map(|(check, _)| check),
        liveness: liveness.map(|(check, _)| check),
        user,
        workdir: workdir(raw.workdir.as_ref(), name, report),
        env: merge_env([login, files, own]),
        output: output.unwrap_or(Output::Prefix),
        hardening,
        policy,
    };
    (service, depends.map(|Scalar(d)| d.clone()).collect())
}

/// What the core decides with, from the defaults of SPEC section 4.
fn policy(name: &str, raw: &RawService, report: &mut Report) -> ServicePolicy {
    let at = |key| ["services", name, key];
    let mut policy = ServicePolicy::new(name);
    policy.oneshot = raw.oneshot.unwrap_or(false);
    policy.restart = restart(raw, name, report);
    policy.critical = raw.critical.unwrap_or(true);
    backoff(raw, name, &mut policy, report);
    max_restarts(raw, name, &mut policy, report);
    if let Some(codes) = &raw.success_codes {
        let codes = success_codes(codes, &at("success_codes"), report);
        policy.success_codes = codes.unwrap_or(policy.success_codes);
    }
    if let Some(Scalar(text)) = &raw.stop_signal {
        match crate::core::signal::parse(text) {
            Some(sig) => policy.stop_signal = sig,
            None => {
                let message = format!("unknown signal `{text}`; use a name like SIGTERM, SIGINT, SIGQUIT or a number from 1 to 64");
                report.at_value(&at("stop_signal"), message);
            }
        }
    }
    let stop_timeout = duration(raw.stop_timeout.as_ref(), &at("stop_timeout"), report);
    policy.stop_timeout = stop_timeout.unwrap_or(policy.stop_timeout);
    policy.forward = forward(raw.forward.as_ref(), &at("forward"), report);
    policy
}

/// SPEC sections 4 and 6: which forwarded signals reach the service. The
/// shutdown signals are never forwarded as such (each service gets its
/// `stop_signal`), and SIGKILL, SIGSTOP and SIGCHLD never at all, so
/// listing them is an error rather than a filter that does nothing.
fn forward(raw: Option<&RawForward>, at: &[&str], report: &mut Report) -> Forward {
    use crate::core::signal;
    let names = match raw {
        None => return Forward::All,
        Some(RawForward::Word(w)) if w == "all" => return Forward::All,
        Some(RawForward::Word(w)) if w == "none" => return Forward::Only(Vec::new()),
        Some(RawForward::Word(w)) => {
            let hint = raw::did_you_mean(w, &["all", "none"])
                .map_or(String::new(), |h| format!(" (did you mean `{h}`?)"));
            let message = format!("unknown `forward` value `{w}`{hint}; write `all`, `none` or a list of signal names like [SIGHUP, SIGUSR1]");
            report.at_value(at, message);
            return Forward::All;
        }
        Some(RawForward::List(names)) => names,
    };
    let mut sigs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some(sig) = signal::parse(name) else {
            let message = format!("unknown signal `{name}` in `forward`; use names like SIGHUP, SIGUSR1, SIGWINCH or numbers from 1 to 64");
            report.at_item(at, i, message);
            continue;
        };
        let shown = signal::name(sig);
        if signal::starts_shutdown(sig) {
            let message = format!("{shown} starts the shutdown, which stops every service with its own `stop_signal`; it is not forwarded, so `forward` cannot filter it (SIGTERM, SIGINT and SIGQUIT cannot be listed)");
            report.at_item(at, i, message);
        } else if matches!(sig, signal::SIGKILL | 17 | 19) {
            let message = format!("{shown} is never forwarded (rinit cannot catch SIGKILL or SIGSTOP, and SIGCHLD is its own); it cannot be listed in `forward`");
            report.at_item(at, i, message);
        } else if !sigs.contains(&sig) {
            sigs.push(sig);
        }
    }
    Forward::Only(sigs)
}

fn command(raw: Option<&RawCommand>, name: &str, report: &mut Report) -> CommandLine {
    let at = ["services", name, "command"];
    match raw {
        // Missing: reported by the shape check.
        None => CommandLine::Argv(Vec::new()),
        Some(RawCommand::Shell(line)) => {
            if line.trim().is_empty() {
                report.at_value(&at, "`command` is empty");
            } else if line.contains('\0') {
                report.at_value(&at, "`command` contains a NUL character");
            }
            CommandLine::Shell(line.clone())
        }
        Some(RawCommand::Argv(argv)) => {
            match argv.first() {
                None => report.at_value(&at, "`command` is an empty list"),
                Some(program) if program.trim().is_empty() => {
                    let message = "the program (first item of `command`) is empty";
                    report.at_item(&at, 0, message);
                }
                Some(_) => {}
            }
            if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
                report.at_item(&at, i, "this argument contains a NUL character");
            }
            CommandLine::Argv(argv.clone())
        }
    }
}

fn restart(raw: &RawService, name: &str, report: &mut Report) -> RestartPolicy {
    let at = ["services", name, "restart"];
    let oneshot = raw.oneshot.unwrap_or(false);
    let choices = [
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ];
    match choice(raw.restart.as_ref(), &choices, &at, report) {
        Some(RestartPolicy::Always) if oneshot => {
            let message = "a oneshot cannot use `restart: always` (it would never be done); use `on-failure` or `never`";
            report.at_value(&at, message);
            RestartPolicy::Never
        }
        Some(policy) => policy,
        None if oneshot => RestartPolicy::Never,
        None => RestartPolicy::Always,
    }
}

fn backoff(raw: &RawService, name: &str, policy: &mut ServicePolicy, report: &mut Report) {
    let Some(backoff) = &raw.backoff else {
        return;
    };
    let initial_at = ["services", name, "backoff", "initial"];
    let max_at = ["services", name, "backoff", "max"];
    let initial = duration(backoff.initial.as_ref(), &initial_at, report);
    let max = duration(backoff.max.as_ref(), &max_at, report);
    policy.backoff_initial = initial.unwrap_or(policy.backoff_initial);
    policy.backoff_max = max.unwrap_or(policy.backoff_max);
    if policy.backoff_initial > policy.backoff_max {
        let (i, m) = (show(policy.backoff_initial), show(policy.backoff_max));
        let message = format!("backoff `initial` ({i}) is longer than `max` ({m})");
        match (initial, max) {
            (None, Some(_)) => report.at_value(&max_at, message),
            _ => report.at_value(&initial_at, message),
        }
    }
}

fn max_restarts(raw: &RawService, name: &str, policy: &mut ServicePolicy, report: &mut Report) {
    let Some(limit) = &raw.max_restarts else {
        return;
    };
    if let Some(count) = limit.count {
        match u32::try_from(count) {
            Ok(count) if count <= MAX_RESTART_COUNT => policy.max_restarts = count,
            _ => {
                let message = format!(
                    "`count` must be a number from 0 to {MAX_RESTART_COUNT}, found {count}"
                );
                report.at_value(&["services", name, "max_restarts", "count"], message);
            }
        }
    }
    let within_at = ["services", name, "max_restarts", "within"];
    let within = positive(limit.within.as_ref(), &within_at, report);
    policy.restart_window = within.unwrap_or(policy.restart_window);
}

/// The codes, or `None` when one is out of range or there is none.
fn success_codes(codes: &[i64], at: &[&str], report: &mut Report) -> Option<Vec<i32>> {
    if codes.is_empty() {
        report.at_value(at, "`success_codes` is empty: nothing could ever succeed");
        return None;
    }
    let mut valid = Vec::new();
    for (i, &code) in codes.iter().enumerate() {
        match u8::try_from(code) {
            Ok(code) => valid.push(i32::from(code)),
            Err(_) => report.at_item(
                at,
                i,
                format!("exit code {code} is out of range (0 to 255)"),
            ),
        }
    }
    (valid.len() == codes.len()).then_some(valid)
}

/// Each name once, at its first place, with the value of its last layer.
fn merge_env<const N: usize>(layers: [Vec<(String, String)>; N]) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (key, value) in layers.into_iter().flatten() {
        match index.get(&key) {
            Some(&i) => merged[i] = (key, value),
            None => {
                index.insert(key.clone(), merged.len());
                merged.push((key, value));
            }
        }
    }
    merged
}

fn user(
    raw: Option<&Scalar>,
    name: &str,
    etc: &Path,
    report: &mut Report,
) -> Option<(Identity, users::Account)> {
    let Scalar(spec) = raw?;
    match users::resolve_account(spec, etc) {
        Ok(found) => Some(found),
        Err(message) => {
            report.at_value(&["services", name, "user"], message);
            None
        }
    }
}

fn workdir(raw: Option<&Scalar>, name: &str, report: &mut Report) -> Option<PathBuf> {
    let Scalar(dir) = raw?;
    if !Path::new(dir).is_absolute() || dir.contains('\0') {
        let message = format!("`workdir` must be an absolute path, found `{dir}`");
        report.at_value(&["services", name, "workdir"], message);
        return None;
    }
    Some(PathBuf::from(dir))
}

fn env(raw: RawEnv, name: &str, report: &mut Report) -> Vec<(String, String)> {
    for (key, value) in &raw.0 {
        let at = ["services", name, "env", key.as_str()];
        if key.is_empty() {
            report.at_key(&at, "a variable name is empty");
        } else if key.contains(['=', '\0']) {
            let message = format!("`{key}` is not a valid variable name (it has `=` or NUL)");
            report.at_key(&at, message);
        } else if value.contains('\0') {
            report.at_value(
                &at,
                format!("the value of `{key}` contains a NUL character"),
            );
        }
    }
    raw.0
}

/// One of a fixed set of words, if given and valid.
fn choice<T: Copy>(
    raw: Option<&Scalar>,
    choices: &[(&str, T)],
    at: &[&str],
    report: &mut Report,
) -> Option<T> {
    let Scalar(text) = raw?;
    if let Some((_, value)) = choices.iter().find(|(word, _)| word == text) {
        return Some(*value);
    }
    let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
    let key = at.last().copied().unwrap_or_default();
    let hint = raw::did_you_mean(text, &words)
        .map_or(String::new(), |w| format!(" (did you mean `{w}`?)"));
    let valid = words.join(", ");
    report.at_value(
        at,
        format!("unknown `{key}` value `{text}`{hint}; valid values: {valid}"),
    );
    None
}

/// The longest duration any key takes: beyond it a value is a typo, and
/// the shell's deadlines (`Instant + Duration`) could overflow and make
/// PID 1 panic. One year as humantime counts it (365.25 days), so that
/// `1y` is accepted. Keys where a long value does harm have tighter limits.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// The longest probe `interval` and `timeout`.
pub const MAX_PROBE_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The largest `max_restarts.count`.
pub const MAX_RESTART_COUNT: u32 = 1_000_000;

/// A duration like `250ms`, `5s` or `1m30s`, if given, valid and at most
/// `MAX_DURATION`.
pub fn duration(raw: Option<&Scalar>, at: &[&str], report: &mut Report) -> Option<Duration> {
    bounded(raw, MAX_DURATION, at, report)
}

/// A duration that must not be longer than `max`, if given and valid.
pub fn bounded(
    raw: Option<&Scalar>,
    max: Duration,
    at: &[&str],
    report: &mut Report,
) -> Option<Duration> {
    let Scalar(text) = raw?;
    let key = at.last().copied().unwrap_or_default();
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d <= max => Some(d),
        Ok(_) => {
            let message = format!(
                "`{key}`: `{text}` is longer than the maximum of {}",
                show(max)
            );
            report.at_value(at, message);
            None
        }
        Err(e) => {
            let message = format!(
                "`{key}`: invalid duration `{text}` ({e}); write it like 250ms, 5s or 1m30s"
            );
            report.at_value(at, message);
            None
        }
    }
}

/// A duration that must be longer than zero, if given and valid.
pub fn positive(raw: Option<&Scalar>, at: &[&str], report: &mut Report) -> Option<Duration> {
    positive_bounded(raw, MAX_DURATION, at, report)
}

/// A duration longer than zero and at most `max`, if given and valid.
pub fn positive_bounded(
    raw: Option<&Scalar>,
    max: Duration,
    at: &[&str],
    report: &mut Report,
) -> Option<Duration> {
    let d = bounded(raw, max, at, report)?;
    if d.is_zero() {
        let key = at.last().copied().unwrap_or_default();
        report.at_value(at, format!("`{key}` must be longer than 0s"));
        return None;
    }
    Some(d)
}

/// A duration as the file would write it: `9s`, `1m30s`, `250ms`.
pub fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::users::tests::FakeEtc;
    use crate::config::ReadyCheck;
    use crate::core::types::{ProbeKind, ProbePolicy};

    #[test]
    fn fills_in_the_defaults() {
        let text = "services:\n  web: {command: [app]}\n  job: {command: x, oneshot: true}\n";
        let cfg = validate(Path::new("c.yaml"), text, Path::new("/nonexistent")).unwrap();
        assert_eq!((cfg.health_listen, cfg.drain), (None, Duration::ZERO));
        assert_eq!(cfg.timeout, Duration::from_secs(9));
        let web = &cfg.services[0];
        assert_eq!(web.policy, ServicePolicy::new("web"));
        assert_eq!(web.command, CommandLine::Argv(vec!["app".into()]));
        assert_eq!((&web.ready, &web.user, &web.workdir), (&None, &None, &None));
        assert_eq!((web.env.len(), web.output), (0, Output::Prefix));
        let job = &cfg.services[1].policy;
        assert_eq!((job.oneshot, job.restart), (true, RestartPolicy::Never));
        assert_eq!(cfg.services[1].command.to_argv(), ["/bin/sh", "-c", "x"]);
    }

    #[test]
    fn converts_every_setting() {
        let etc = FakeEtc::new("validate");
        let text = "\
health: {listen: \"[::]:9090\"}
shutdown: {drain: 2s, timeout: 20s}
services:
  db:
    command: [\"postgres\", \"-D\", \"/data\"]
    user: postgres
    workdir: /data
    env: { PGTZ: UTC, PORT: 5432 }
    ready: { tcp: \"127.0.0.1:5432\", interval: 250ms, timeout: 2s }
    stop_signal: SIGINT
    stop_timeout: 20s
    restart: on-failure
    backoff: { initial: 1s, max: 1m }
    max_restarts: { count: 5, within: 30s }
    critical: false
    success_codes: [0, 143]
    output: inherit
";
        let cfg = validate(Path::new("c.yaml"), text, &etc.0).unwrap();
        assert_eq!(cfg.health_listen, Some("[::]:9090".parse().unwrap()));
        assert_eq!(
            (cfg.drain, cfg.timeout),
            (Duration::from_secs(2), Duration::from_secs(20))
        );
        let db = &cfg.services[0];
        let ready = ReadyCheck::Tcp {
            host: "127.0.0.1".into(),
            port: 5432,
        };
        assert_eq!(db.ready, Some(ready));
        assert_eq!(
            db.user,
            Some(Identity {
                uid: 70,
                gid: 70,
                groups: vec![70, 29, 101]
            })
        );
        assert_eq!(db.workdir, Some(PathBuf::from("/data")));
        let env: Vec<String> = db.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let login = [
            "HOME=/var/lib/postgresql",
            "USER=postgres",
            "LOGNAME=postgres",
        ];
        assert_eq!(env[..3], login);
        assert_eq!(env[3..], ["SHELL=/bin/sh", "PGTZ=UTC", "PORT=5432"]);
        assert_eq!(db.output, Output::Inherit);
        let p = &db.policy;
        assert_eq!(
            (p.stop_signal, p.stop_timeout),
            (2, Duration::from_secs(20))
        );
        assert_eq!((p.restart, p.critical), (RestartPolicy::OnFailure, false));
        assert_eq!(
            (p.backoff_initial, p.backoff_max),
            (Duration::from_secs(1), Duration::from_secs(60))
        );
        assert_eq!(
            (p.max_restarts, p.restart_window),
            (5, Duration::from_secs(30))
        );
        assert_eq!(p.success_codes, [0, 143]);
        let probe = ProbePolicy {
            kind: ProbeKind::Network,
            interval: Duration::from_millis(250),
            timeout: Duration::from_secs(2),
        };
        assert_eq!(p.probe, Some(probe));
    }

    #[test]
    fn shows_durations_as_written() {
        assert_eq!(show(Duration::from_millis(90_500)), "1m30s500ms");
        assert_eq!(show(Duration::ZERO), "0s");
    }
}
