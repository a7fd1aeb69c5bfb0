//! The YAML shapes: serde types mirroring the file (`deny_unknown_fields`
//! everywhere) and the shape check that fills them. The check walks the
//! parsed `Value` one key at a time so that every unknown key (with a "did
//! you mean" hint) and every wrongly typed value is reported, each at its own
//! place, instead of serde stopping at the first one. What it returns holds
//! only the entries that passed; values are still unchecked strings.

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_norway::{Mapping, Value};

use super::locate::Report;

pub const TOP_KEYS: &[&str] = &[
    "health",
    "shutdown",
    "services",
    "runtime_dir",
    "control",
    "logs",
    "user_when_not_root",
];
pub const LOGS_KEYS: &[&str] = &["buffer", "format"];
pub const HEALTH_KEYS: &[&str] = &["listen"];
pub const SHUTDOWN_KEYS: &[&str] = &["drain", "timeout"];
pub const READY_KEYS: &[&str] = &[
    "tcp",
    "http",
    "exec",
    "sd_notify",
    "fd",
    "interval",
    "timeout",
];
pub const LIVENESS_KEYS: &[&str] = &["tcp", "http", "exec", "interval", "timeout", "failures"];
pub const BACKOFF_KEYS: &[&str] = &["initial", "max"];
pub const MAX_RESTARTS_KEYS: &[&str] = &["count", "within"];
pub const SERVICE_KEYS: &[&str] = &[
    "command",
    "oneshot",
    "depends_on",
    "ready",
    "restart",
    "backoff",
    "max_restarts",
    "critical",
    "success_codes",
    "stop_signal",
    "stop_timeout",
    "user",
    "workdir",
    "env",
    "output",
    "forward",
    "env_file",
    "umask",
    "rlimits",
    "no_new_privs",
    "start_timeout",
    "liveness",
    "watchdog",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub health: Option<RawHealth>,
    pub shutdown: Option<RawShutdown>,
    /// Kept as a mapping: its order is the file order of the services.
    pub services: Option<Mapping>,
    pub runtime_dir: Option<Scalar>,
    /// `false` or `{socket: PATH}`; checked in `runtime_keys`.
    pub control: Option<Value>,
    pub logs: Option<RawLogs>,
    pub user_when_not_root: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    pub buffer: Option<Scalar>,
    pub format: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub listen: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    pub drain: Option<Scalar>,
    pub timeout: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub command: Option<RawCommand>,
    pub oneshot: Option<bool>,
    pub depends_on: Option<Vec<Scalar>>,
    pub ready: Option<RawReady>,
    pub restart: Option<Scalar>,
    pub backoff: Option<RawBackoff>,
    pub max_restarts: Option<RawMaxRestarts>,
    pub critical: Option<bool>,
    pub success_codes: Option<Vec<i64>>,
    pub stop_signal: Option<Scalar>,
    pub stop_timeout: Option<Scalar>,
    pub user: Option<Scalar>,
    pub workdir: Option<Scalar>,
    pub env: Option<RawEnv>,
    pub output: Option<Scalar>,
    pub forward: Option<RawForward>,
    /// A path or a list of paths; checked in `hardening`.
    pub env_file: Option<Value>,
    /// Must be a string (a YAML number would lose its leading zeros and
    /// could be read in another base); checked in `hardening`.
    pub umask: Option<Value>,
    /// Resource name to a limit; checked in `hardening`.
    pub rlimits: Option<Mapping>,
    pub no_new_privs: Option<bool>,
    pub start_timeout: Option<Scalar>,
    pub liveness: Option<RawLiveness>,
    pub watchdog: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReady {
    pub tcp: Option<Scalar>,
    pub http: Option<Scalar>,
    pub exec: Option<Vec<Scalar>>,
    pub sd_notify: Option<bool>,
    pub fd: Option<i64>,
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
}

/// `liveness:`: a check as in `ready`, plus `failures`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLiveness {
    pub tcp: Option<Scalar>,
    pub http: Option<Scalar>,
    pub exec: Option<Vec<Scalar>>,
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub failures: Option<i64>,
}

impl RawLiveness {
    /// The check part, for the parser `ready` shares.
    pub fn check(&self) -> RawReady {
        RawReady {
            tcp: self.tcp.clone(),
            http: self.http.clone(),
            exec: self.exec.clone(),
            sd_notify: None,
            fd: None,
            interval: self.interval.clone(),
            timeout: self.timeout.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    pub initial: Option<Scalar>,
    pub max: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaxRestarts {
    pub count: Option<i64>,
    pub within: Option<Scalar>,
}

/// A string, or a number or boolean taken as its text (`user: 1000`,
/// `command: [sleep, 10]`, `env: {DEBUG: true}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scalar(pub String);

/// `command: "a shell line"` or `command: [argv, ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawCommand {
    Shell(String),
    Argv(Vec<String>),
}

/// `forward: all`, `forward: none` or `forward: [SIGHUP, USR1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawForward {
    Word(String),
    List(Vec<String>),
}

struct ForwardVisitor;

impl<'de> Visitor<'de> for ForwardVisitor {
    type Value = RawForward;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("`all`, `none` or a list of signal names")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawForward, E> {
        Ok(RawForward::Word(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawForward, A::Error> {
        let mut names = Vec::new();
        while let Some(Scalar(name)) = seq.next_element()? {
            names.push(name);
        }
        Ok(RawForward::List(names))
    }
}

impl<'de> Deserialize<'de> for RawForward {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ForwardVisitor)
    }
}

/// `env`, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawEnv(pub Vec<(String, String)>);

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Err(E::custom(
            "a value is missing; write \"\" for an empty string",
        ))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = RawCommand;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string (run by /bin/sh -c) or a list of strings (exec'd as is)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCommand, E> {
        Ok(RawCommand::Shell(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCommand, A::Error> {
        let mut argv = Vec::new();
        while let Some(Scalar(arg)) = seq.next_element()? {
            argv.push(arg);
        }
        Ok(RawCommand::Argv(argv))
    }
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CommandVisitor)
    }
}

struct EnvVisitor;

impl<'de> Visitor<'de> for EnvVisitor {
    type Value = RawEnv;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a mapping of variable names to values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEnv, A::Error> {
        let mut vars = Vec::new();
        while let Some((Scalar(k), Scalar(v))) = map.next_entry()? {
            vars.push((k, v));
        }
        Ok(RawEnv(vars))
    }
}

impl<'de> Deserialize<'de> for RawEnv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EnvVisitor)
    }
}

/// The shape check of the whole document.
pub fn file(value: &Value, report: &mut Report) -> RawFile {
    let map = match value {
        Value::Null => return RawFile::default(),
        Value::Mapping(map) => map,
        other => {
            let found = kind(other);
            report.at_key(&[], format!("the config must be a mapping with `services` (and optionally `health`, `shutdown`), found {found}"));
            return RawFile::default();
        }
    };
    let mut map = known_keys(map, TOP_KEYS, &[], report);
    nested::<RawHealth>(&mut map, "health", HEALTH_KEYS, &[], report);
    nested::<RawShutdown>(&mut map, "shutdown", SHUTDOWN_KEYS, &[], report);
    nested::<RawLogs>(&mut map, "logs", LOGS_KEYS, &[], report);
    typed(map, &[], report)
}

/// The shape check of one service (`name` is its key under `services`).
pub fn service(name: &str, value: &Value, report: &mut Report) -> Option<RawService> {
    let path = ["services", name];
    let map = match value {
        Value::Mapping(map) => map,
        Value::Null => {
            report.at_key(&path, "the service has no settings; `command` is required");
            return None;
        }
        other => {
            let found = kind(other);
            report.at_value(
                &path,
                format!("a service must be a mapping of settings (`command`, ...), found {found}"),
            );
            return None;
        }
    };
    require_command(map, name, report);
    for key in ["ready", "liveness"] {
        if let Some(Value::Mapping(check)) = map.get(key) {
            require_one_probe(check, key, name, report);
        }
    }
    let mut map = known_keys(map, SERVICE_KEYS, &path, report);
    nested::<RawReady>(&mut map, "ready", READY_KEYS, &path, report);
    nested::<RawLiveness>(&mut map, "liveness", LIVENESS_KEYS, &path, report);
    nested::<RawBackoff>(&mut map, "backoff", BACKOFF_KEYS, &path, report);
    nested::<RawMaxRestarts>(&mut map, "max_restarts", MAX_RESTARTS_KEYS, &path, report);
    Some(typed(map, &path, report))
}

/// Reports a missing (or empty) `command`, unless a misspelt key, already
/// reported with its hint, was meant to be it.
fn require_command(map: &Mapping, name: &str, report: &mut Report) {
    if map.get("command").is_some_and(|v| !v.is_null()) {
        // The usual case: no edit distances computed (they were most of
        // the time `rinit check` spent on a large config).
        return;
    }
    let misspelt = map
        .keys()
        .filter_map(Value::as_str)
        .any(|k| k != "command" && did_you_mean(k, SERVICE_KEYS) == Some("command"));
    if !misspelt {
        let message = "`command` is required (a string for /bin/sh -c, or a list to exec)";
        report.at_key(&["services", name, "command"], message);
    }
}

/// Reports a `ready` block without exactly one of `tcp`, `http`, `exec`
/// (before their types are checked, so a badly typed one still counts).
fn require_one_probe(check: &Mapping, key: &str, name: &str, report: &mut Report) {
    let kinds: &[&str] = if key == "ready" {
        &["tcp", "http", "exec", "sd_notify", "fd"]
    } else {
        &["tcp", "http", "exec"]
    };
    let given: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| check.contains_key(k))
        .collect();
    match given.as_slice() {
        [_] => {}
        [] => {
            let message = if key == "ready" {
                "`ready` needs one of `tcp`, `http`, `exec`, `sd_notify` or `fd`".to_string()
            } else {
                format!("`{key}` needs one of `tcp`, `http` or `exec`")
            };
            report.at_key(&["services", name, key], message);
        }
        [first, second, ..] => {
            let message = format!(
                "`{key}` takes exactly one of {}, found `{first}` and `{second}`",
                kinds
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            report.at_key(&["services", name, key, second], message);
        }
    }
}

/// Checks the mapping under `key` (if it is one) in place: unknown keys and
/// badly typed values are reported and dropped.
fn nested<T: DeserializeOwned>(
    map: &mut Mapping,
    key: &str,
    keys: &[&str],
    parent: &[&str],
    report: &mut Report,
) {
    let path: Vec<&str> = parent.iter().copied().chain([key]).collect();
    match map.get_mut(key) {
        Some(Value::Mapping(sub)) => {
            let checked = known_keys(sub, keys, &path, report);
            *sub = well_typed::<T>(checked, &path, report);
        }
        None | Some(Value::Null) => {}
        Some(other) => {
            let (found, valid) = (kind(other), keys.join(", "));
            let message = format!("`{key}` must be a mapping (keys: {valid}), found {found}");
            report.at_value(&path, message);
            map.remove(key);
        }
    }
}

/// Reports the keys of `map` not in `keys`; returns the others.
fn known_keys(map: &Mapping, keys: &[&str], path: &[&str], report: &mut Report) -> Mapping {
    let mut kept = Mapping::new();
    for (k, v) in map {
        let Some(name) = k.as_str() else {
            report.at_key(
                path,
                format!("keys here must be strings, found {}", kind(k)),
            );
            continue;
        };
        if keys.contains(&name) {
            kept.insert(k.clone(), v.clone());
            continue;
        }
        let at: Vec<&str> = path.iter().copied().chain([name]).collect();
        let hint =
            did_you_mean(name, keys).map_or(String::new(), |k| format!(" (did you mean `{k}`?)"));
        report.at_key(
            &at,
            format!(
                "unknown key `{name}`{hint}; valid keys here: {}",
                keys.join(", ")
            ),
        );
    }
    kept
}

/// Keeps the entries of `map` whose value has the type `T` wants for it.
fn well_typed<T: DeserializeOwned>(map: Mapping, path: &[&str], report: &mut Report) -> Mapping {
    let mut kept = Mapping::new();
    for (k, v) in map {
        let mut single = Mapping::new();
        single.insert(k.clone(), v.clone());
        match serde_norway::from_value::<T>(Value::Mapping(single)) {
            Ok(_) => {
                kept.insert(k, v);
            }
            Err(e) => {
                let name = k.as_str().unwrap_or("?");
                let at: Vec<&str> = path.iter().copied().chain([name]).collect();
                report.at_value(&at, format!("`{name}`: {e}"));
            }
        }
    }
    kept
}

/// `T` from the entries of `map` that are well typed.
fn typed<T: DeserializeOwned + Default>(map: Mapping, path: &[&str], report: &mut Report) -> T {
    let map = well_typed::<T>(map, path, report);
    match serde_norway::from_value(Value::Mapping(map)) {
        Ok(t) => t,
        Err(e) => {
            // Each entry deserialized alone, so this is not expected; report
            // it rather than lose it.
            report.at_key(path, e.to_string());
            T::default()
        }
    }
}

/// What kind of YAML value this is, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The candidate closest to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance in characters, a swap of two neighbours counting as one
/// edit (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let width = b.len() + 1;
    let mut d: Vec<usize> = (0..(a.len() + 1) * width)
        .map(|k| if k < width { k } else { 0 })
        .collect();
    for i in 1..=a.len() {
        d[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: DeserializeOwned>(yaml: &str) -> Result<T, String> {
        let value: Value = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        serde_norway::from_value(value).map_err(|e| e.to_string())
    }

    /// Each key list names exactly the fields its struct accepts.
    fn keys_match<T: DeserializeOwned>(keys: &[&str]) {
        for key in keys {
            assert!(check::<T>(&format!("{key}: null")).is_ok(), "{key}");
        }
        assert!(check::<T>("no_such_key: null").is_err());
    }

    #[test]
    fn key_lists_match_the_serde_types() {
        keys_match::<RawFile>(TOP_KEYS);
        keys_match::<RawHealth>(HEALTH_KEYS);
        keys_match::<RawShutdown>(SHUTDOWN_KEYS);
        keys_match::<RawService>(SERVICE_KEYS);
        keys_match::<RawReady>(READY_KEYS);
        keys_match::<RawLiveness>(LIVENESS_KEYS);
        keys_match::<RawBackoff>(BACKOFF_KEYS);
        keys_match::<RawMaxRestarts>(MAX_RESTARTS_KEYS);
    }

    #[test]
    fn commands_are_strings_or_lists_of_scalars() {
        let shell = check::<RawService>("command: exec app");
        assert_eq!(
            shell.unwrap().command,
            Some(RawCommand::Shell("exec app".into()))
        );
        let argv = check::<RawService>("command: [sleep, 10, true]").unwrap();
        let want = RawCommand::Argv(vec!["sleep".into(), "10".into(), "true".into()]);
        assert_eq!(argv.command, Some(want));
        let err = check::<RawService>("command: {a: b}").unwrap_err();
        assert!(
            err.contains("a string (run by /bin/sh -c) or a list"),
            "{err}"
        );
    }

    #[test]
    fn env_keeps_file_order_and_stringifies() {
        let s = check::<RawService>("env: {Z: 1, A: true, M: x, F: 1.5}").unwrap();
        let got: Vec<(&str, &str)> = s
            .env
            .as_ref()
            .unwrap()
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, [("Z", "1"), ("A", "true"), ("M", "x"), ("F", "1.5")]);
        let err = check::<RawService>("env: {A: }").unwrap_err();
        assert!(err.contains("a value is missing"), "{err}");
    }

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(did_you_mean("comand", SERVICE_KEYS), Some("command"));
        assert_eq!(did_you_mean("depend_on", SERVICE_KEYS), Some("depends_on"));
        assert_eq!(did_you_mean("Restart", SERVICE_KEYS), Some("restart"));
        assert_eq!(
            did_you_mean("stop_sginal", SERVICE_KEYS),
            Some("stop_signal")
        );
        assert_eq!(did_you_mean("healthcheck", SERVICE_KEYS), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("drian", "drain"), 1);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
