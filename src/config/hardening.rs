//! A service's process settings beyond identity: `env_file` (read here, at
//! config load, so a missing or malformed file is a config error), `umask`
//! and `rlimits`. Values come out as plain numbers the child applies with
//! one syscall each; every problem is reported at its place.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::locate::Report;
use super::raw::{did_you_mean, kind};
use super::{Rlimit, UNLIMITED};

/// The resource names `rlimits` takes, as in `ulimit` and prlimit(1).
const RESOURCES: &[(&str, i32)] = &[
    ("as", libc::RLIMIT_AS as i32),
    ("core", libc::RLIMIT_CORE as i32),
    ("cpu", libc::RLIMIT_CPU as i32),
    ("data", libc::RLIMIT_DATA as i32),
    ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32),
    ("memlock", libc::RLIMIT_MEMLOCK as i32),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as i32),
    ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32),
    ("nproc", libc::RLIMIT_NPROC as i32),
    ("rss", libc::RLIMIT_RSS as i32),
    ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32),
    ("sigpending", libc::RLIMIT_SIGPENDING as i32),
    ("stack", libc::RLIMIT_STACK as i32),
];

/// `umask: "0027"`: up to four octal digits, at most 0777.
pub fn umask(raw: Option<&Value>, name: &str, report: &mut Report) -> Option<u32> {
    let at = ["services", name, "umask"];
    let text = match raw? {
        Value::String(s) => s.trim(),
        Value::Number(n) => {
            let message = format!("`umask` must be a quoted octal string like \"0027\" (found the number {n}: YAML may have dropped its leading zeros or read it in another base)");
            report.at_value(&at, message);
            return None;
        }
        other => {
            let message = format!(
                "`umask` must be an octal string like \"0027\", found {}",
                kind(other)
            );
            report.at_value(&at, message);
            return None;
        }
    };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let octal = !digits.is_empty()
        && digits.len() <= 4
        && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if octal && mask <= 0o777 => Some(mask),
        _ => {
            let message =
                format!("`umask` `{text}` is not an octal mask from 0000 to 0777, like \"0027\"");
            report.at_value(&at, message);
            None
        }
    }
}

/// `rlimits: {nofile: 1024, core: unlimited, nproc: {soft: 100, hard: 200}}`.
pub fn rlimits(raw: Option<&Mapping>, name: &str, report: &mut Report) -> Vec<Rlimit> {
    let mut limits: Vec<Rlimit> = Vec::new();
    for (key, value) in raw.into_iter().flatten() {
        let Some(res) = key.as_str() else {
            let message = format!("resource names must be strings, found {}", kind(key));
            report.at_key(&["services", name, "rlimits"], message);
            continue;
        };
        let at = ["services", name, "rlimits", res];
        let Some(&(_, resource)) = RESOURCES.iter().find(|(r, _)| *r == res) else {
            let names: Vec<&str> = RESOURCES.iter().map(|(r, _)| *r).collect();
            let hint = did_you_mean(res, &names)
                .map_or(String::new(), |n| format!(" (did you mean `{n}`?)"));
            let message = format!(
                "unknown resource `{res}`{hint}; valid: {}",
                names.join(", ")
            );
            report.at_key(&at, message);
            continue;
        };
        if let Some(limit) = rlimit(value, resource, &at, report) {
            limits.push(limit);
        }
    }
    limits
}

/// One limit: `N`, `unlimited`, or `{soft: N, hard: M}` (either may be
/// left out: rinit's own value is kept for it).
fn rlimit(value: &Value, resource: i32, at: &[&str], report: &mut Report) -> Option<Rlimit> {
    let Value::Mapping(map) = value else {
        let both = amount(value, at, report)?;
        return Some(Rlimit {
            resource,
            soft: Some(both),
            hard: Some(both),
        });
    };
    let mut ok = true;
    for key in map.keys() {
        if !matches!(key.as_str(), Some("soft" | "hard")) {
            let shown = key
                .as_str()
                .map_or_else(|| kind(key).to_string(), |k| format!("`{k}`"));
            let path: Vec<&str> = at.iter().copied().chain(key.as_str()).collect();
            report.at_key(
                &path,
                format!("unknown key {shown}; valid keys here: soft, hard"),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let half = |key: &str, report: &mut Report| {
        let path: Vec<&str> = at.iter().copied().chain([key]).collect();
        map.get(key).map(|v| amount(v, &path, report).ok_or(()))
    };
    let soft = half("soft", report).transpose();
    let hard = half("hard", report).transpose();
    let (Ok(soft), Ok(hard)) = (soft, hard) else {
        return None;
    };
    if soft.is_none() && hard.is_none() {
        report.at_value(at, "give `soft`, `hard` or both");
        return None;
    }
    if let (Some(s), Some(h)) = (soft, hard) {
        if s > h {
            let message = format!(
                "the soft limit ({}) is above the hard limit ({})",
                show(s),
                show(h)
            );
            let path: Vec<&str> = at.iter().copied().chain(["soft"]).collect();
            report.at_value(&path, message);
            return None;
        }
    }
    Some(Rlimit {
        resource,
        soft,
        hard,
    })
}

/// A non-negative number or `unlimited`.
fn amount(value: &Value, at: &[&str], report: &mut Report) -> Option<u64> {
    let parsed = match value {
        Value::Number(n) => n.as_u64().filter(|&n| n != UNLIMITED),
        Value::String(s) if s.trim() == "unlimited" => Some(UNLIMITED),
        Value::String(s) => s.trim().parse::<u64>().ok().filter(|&n| n != UNLIMITED),
        _ => None,
    };
    if parsed.is_none() {
        let found = match value {
            Value::String(s) => format!("`{s}`"),
            Value::Number(n) => format!("`{n}`"),
            other => kind(other).to_string(),
        };
        let key = at.last().copied().unwrap_or_default();
        let message = format!(
            "`{key}`: a limit is a number from 0 to {} or `unlimited`, found {found}",
            UNLIMITED - 1
        );
        report.at_value(at, message);
    }
    parsed
}

fn show(n: u64) -> String {
    if n == UNLIMITED {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

/// The variables of a service's `env_file` (a path or a list of paths,
/// relative ones from the config file's directory), in order; a later
/// file or line wins over an earlier one when they are merged.
pub fn env_files(
    raw: Option<&Value>,
    name: &str,
    config: &Path,
    report: &mut Report,
) -> Vec<(String, String)> {
    let at = ["services", name, "env_file"];
    let paths: Vec<(Option<usize>, &str)> = match raw {
        None => return Vec::new(),
        Some(Value::String(p)) => vec![(None, p.as_str())],
        Some(Value::Sequence(items)) => {
            let mut paths = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(p) => paths.push((Some(i), p)),
                    None => {
                        let message =
                            format!("`env_file` items must be paths, found {}", kind(item));
                        report.at_item(&at, i, message);
                    }
                }
            }
            paths
        }
        Some(other) => {
            let message = format!(
                "`env_file` must be a path or a list of paths, found {}",
                kind(other)
            );
            report.at_value(&at, message);
            return Vec::new();
        }
    };
    let base = config.parent().unwrap_or(Path::new("."));
    let mut vars = Vec::new();
    for (item, path) in paths {
        let full = base.join(path);
        match read_env_file(&full) {
            Ok(mut v) => vars.append(&mut v),
            Err(message) => match item {
                Some(i) => report.at_item(&at, i, message),
                None => report.at_value(&at, message),
            },
        }
    }
    vars
}

/// Reads one env file; the error names the file (and the line).
fn read_env_file(path: &PathBuf) -> Result<Vec<(String, String)>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read env_file {shown}: {e}"))?;
    let text = super::utf8(bytes)
        .map_err(|e| format!("env_file {shown}:{}:{}: {}", e.line, e.column, e.message))?;
    parse_env_file(&text).map_err(|(line, why)| format!("env_file {shown}:{line}: {why}"))
}

/// Docker's `--env-file` format: `KEY=VALUE` per line, the value taken
/// verbatim (no quotes removed, no expansion); leading blanks ignored;
/// blank lines and lines starting with `#` skipped; a bare `KEY` passes
/// rinit's own value, which a service inherits anyway, so it adds nothing.
/// Err((line, why)) for the first malformed line.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line.trim_end(), None),
        };
        if key.is_empty() {
            return Err((
                n + 1,
                "a line starts with `=`: the variable name is missing".into(),
            ));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let message = format!(
                "variable name `{}` contains blanks or control characters",
                key.escape_debug()
            );
            return Err((n + 1, message));
        }
        if let Some(value) = value {
            if value.contains('\0') {
                return Err((
                    n + 1,
                    format!("the value of `{key}` contains a NUL character"),
                ));
            }
            vars.push((key.to_string(), value.to_string()));
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_read_like_dockers() {
        let bad = "\u{feff}# comment\n\nA=1\n  B = two words \n";
        let err = parse_env_file(bad).unwrap_err();
        assert_eq!(err.0, 4, "a name with a blank is refused, on its line");
        let good = "A=1\n  B= two words \nC=\nD=x=y\"z\"\nBARE\n";
        let got = parse_env_file(good).unwrap();
        let want = [
            ("A", "1"),
            ("B", " two words "),
            ("C", ""),
            ("D", "x=y\"z\""),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(parse_env_file("ok=1\n=x\n").unwrap_err().0, 2);
    }
}
