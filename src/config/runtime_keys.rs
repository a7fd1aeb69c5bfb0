//! The top-level keys about rinit's own run-time files and buffers (SPEC
//! section 4): `runtime_dir`, `control`, `logs.*` and
//! `user_when_not_root`.

use std::path::{Path, PathBuf};

use serde_norway::Value;

use super::locate::Report;
use super::raw::{RawFile, Scalar};
use crate::control::socket;

/// Largest `logs.buffer` accepted: a service's buffer lives in PID 1.
pub const MAX_LOG_BUFFER: usize = 16 * 1024 * 1024;

/// What `control:` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ControlSetting {
    /// `<runtime_dir>/control.sock`.
    #[default]
    Default,
    /// `control: false`.
    Off,
    /// `control: { socket: PATH }`.
    Socket(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeKeys {
    pub runtime_dir: Option<PathBuf>,
    pub control: ControlSetting,
    pub log_buffer: usize,
    /// `logs.format: json` (RINIT_LOG_FORMAT wins over it).
    pub log_json: bool,
    /// `user_when_not_root: rinit`: a non-root rinit runs services that
    /// name a `user` as itself (one warning) instead of refusing to start.
    pub user_fallback: bool,
}

impl RuntimeKeys {
    /// Where the control socket goes, `env_dir` being RINIT_RUNTIME_DIR
    /// (which wins over `runtime_dir`); None with `control: false`.
    pub fn control_path(&self, env_dir: Option<&Path>) -> Option<PathBuf> {
        match &self.control {
            ControlSetting::Off => None,
            ControlSetting::Socket(p) => Some(p.clone()),
            ControlSetting::Default => Some(self.runtime_dir(env_dir).join(socket::SOCKET_NAME)),
        }
    }

    /// The runtime directory: `env_dir` (RINIT_RUNTIME_DIR) wins over
    /// `runtime_dir`, which defaults to /run/rinit.
    pub fn runtime_dir(&self, env_dir: Option<&Path>) -> PathBuf {
        env_dir
            .or(self.runtime_dir.as_deref())
            .unwrap_or(Path::new(socket::DEFAULT_RUNTIME_DIR))
            .to_path_buf()
    }
}

pub fn check(file: &RawFile, report: &mut Report) -> RuntimeKeys {
    RuntimeKeys {
        runtime_dir: file
            .runtime_dir
            .as_ref()
            .and_then(|Scalar(p)| absolute(p, &["runtime_dir"], report)),
        control: control(file.control.as_ref(), report),
        log_buffer: file
            .logs
            .as_ref()
            .and_then(|l| l.buffer.as_ref())
            .and_then(|Scalar(s)| buffer_size(s, report))
            .unwrap_or(crate::io::logbuf::DEFAULT_CAP),
        log_json: file
            .logs
            .as_ref()
            .and_then(|l| l.format.as_ref())
            .and_then(|Scalar(s)| log_format(s, report))
            .unwrap_or(false),
        user_fallback: file
            .user_when_not_root
            .as_ref()
            .and_then(|Scalar(s)| user_fallback(s, report))
            .unwrap_or(false),
    }
}

fn user_fallback(text: &str, report: &mut Report) -> Option<bool> {
    match text {
        "refuse" => Some(false),
        "rinit" => Some(true),
        _ => {
            let message = format!("must be `refuse` (a non-root rinit refuses services with another `user`) or `rinit` (it runs them as its own user), found `{text}`");
            report.at_value(&["user_when_not_root"], message);
            None
        }
    }
}

fn log_format(text: &str, report: &mut Report) -> Option<bool> {
    let json = crate::io::json_log::parse_format(text);
    if json.is_none() {
        report.at_value(
            &["logs", "format"],
            format!("must be `text` or `json`, found `{text}`"),
        );
    }
    json
}

fn absolute(text: &str, at: &[&str], report: &mut Report) -> Option<PathBuf> {
    if text.starts_with('/') {
        return Some(PathBuf::from(text));
    }
    report.at_value(
        at,
        format!("must be an absolute path, like /run/rinit, found `{text}`"),
    );
    None
}

fn control(value: Option<&Value>, report: &mut Report) -> ControlSetting {
    let at = ["control"];
    match value {
        None | Some(Value::Null) | Some(Value::Bool(true)) => ControlSetting::Default,
        Some(Value::Bool(false)) => ControlSetting::Off,
        Some(Value::Mapping(m)) => {
            for k in m.keys() {
                if k.as_str() != Some("socket") {
                    let name = k.as_str().unwrap_or("?");
                    report.at_key(
                        &["control", name],
                        format!("unknown key `{name}` in `control` (the only key is `socket`)"),
                    );
                }
            }
            match m.get("socket") {
                Some(Value::String(p)) => absolute(p, &["control", "socket"], report)
                    .map_or(ControlSetting::Default, ControlSetting::Socket),
                Some(_) => {
                    report.at_value(
                        &["control", "socket"],
                        "`socket` must be an absolute path, like /run/rinit/control.sock",
                    );
                    ControlSetting::Default
                }
                None => ControlSetting::Default,
            }
        }
        Some(_) => {
            report.at_value(
                &at,
                "`control` must be `false` or `{ socket: /path/to/control.sock }`",
            );
            ControlSetting::Default
        }
    }
}

/// `65536`, `64KiB`, `1MiB`, `64k`, `0`.
fn buffer_size(text: &str, report: &mut Report) -> Option<usize> {
    let at = ["logs", "buffer"];
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => 0,
    };
    let bytes = num
        .parse::<usize>()
        .ok()
        .filter(|_| mult > 0)
        .and_then(|n| n.checked_mul(mult));
    match bytes {
        Some(b) if b <= MAX_LOG_BUFFER => Some(b),
        Some(_) => {
            report.at_value(
                &at,
                format!("`{text}` is more than the 16MiB a buffer may hold"),
            );
            None
        }
        None => {
            report.at_value(
                &at,
                format!(
                    "`{text}` is not a size; write it like 65536, 64KiB or 1MiB (0: no buffer)"
                ),
            );
            None
        }
    }
}
