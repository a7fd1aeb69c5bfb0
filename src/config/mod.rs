//! The services file: YAML in, a validated `Config` out, or every problem
//! found at once, each naming the file, line, column and service.
//! Nothing here starts a process; `load` is pure apart from reading the
//! config file and the image's /etc/passwd and /etc/group.

pub mod diff;
#[cfg(test)]
mod forward_tests;
mod graph;
mod hardening;
mod locate;
mod raw;
mod ready;
pub mod runtime_keys;
#[cfg(test)]
mod tests;
pub mod users;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::types::{RunPolicy, ServicePolicy};

pub use validate::{MAX_DURATION, MAX_PROBE_DURATION, MAX_RESTART_COUNT};

/// How a service's command is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// Exec'd as is (the list form).
    Argv(Vec<String>),
    /// Run as `/bin/sh -c TEXT` (the string form).
    Shell(String),
}

impl CommandLine {
    pub fn to_argv(&self) -> Vec<String> {
        match self {
            CommandLine::Argv(v) => v.clone(),
            CommandLine::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadyCheck {
    /// Passes when a TCP connect to `host:port` succeeds.
    Tcp { host: String, port: u16 },
    /// Passes on a 200-399 answer to `GET path` at `host:port`.
    Http {
        host: String,
        port: u16,
        path: String,
    },
    /// Passes when the command exits 0.
    Exec(Vec<String>),
    /// `sd_notify: true`: the service says `READY=1` on its own socket.
    Notify,
    /// `fd: N`: the service writes a newline to its descriptor N.
    Fd(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Prefix,
    Inherit,
}

/// A resolved identity: numbers only, so that the child needs no lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// One service, validated: what the OS shell needs to start it, plus the
/// policy the core decides with.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub name: String,
    pub command: CommandLine,
    pub ready: Option<ReadyCheck>,
    /// What `liveness:` checks (its schedule is `policy.liveness`).
    pub liveness: Option<ReadyCheck>,
    pub user: Option<Identity>,
    pub workdir: Option<PathBuf>,
    /// Added on top of rinit's environment, in file order.
    /// (Its `env_file`s, then the login variables of its `user`, then its
    /// `env`, merged: each name once, the later source winning.)
    pub env: Vec<(String, String)>,
    pub output: Output,
    /// Applied in the child between fork and exec.
    pub hardening: Hardening,
    pub policy: ServicePolicy,
}

/// What a service's process gets beside its identity: `umask`, `rlimits`
/// and `no_new_privs` (SPEC section 4). The default changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hardening {
    pub umask: Option<u32>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privs: bool,
}

/// One resource limit; `None` keeps rinit's own value for that half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// The `RLIMIT_*` resource number.
    pub resource: i32,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// `unlimited` (RLIM_INFINITY).
pub const UNLIMITED: u64 = u64::MAX;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub health_listen: Option<SocketAddr>,
    pub drain: Duration,
    pub timeout: Duration,
    /// In file order; `policy.depends_on` holds indices into this list.
    pub services: Vec<Service>,
    /// Start waves of service indices: wave n depends only on waves < n.
    pub waves: Vec<Vec<usize>>,
    /// `runtime_dir`, `control`, `logs.buffer`.
    pub runtime: runtime_keys::RuntimeKeys,
}

impl Config {
    pub fn run_policy(&self, has_main: bool) -> RunPolicy {
        RunPolicy {
            drain: self.drain,
            timeout: self.timeout,
            has_main,
            main_stop_timeout: Duration::from_secs(5),
            waves: self.waves.clone(),
        }
    }
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub service: Option<String>,
    pub message: String,
}

/// Every problem found, with the file they were found in.
#[derive(Debug)]
pub struct ConfigErrors {
    pub path: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if e.line == 0 {
                // Not about a place in the file (it could not be read at all).
                write!(f, "{}: ", self.path.display())?;
            } else {
                write!(f, "{}:{}:{}: ", self.path.display(), e.line, e.column)?;
            }
            if let Some(s) = &e.service {
                // Escaped: a rejected name may hold control characters.
                write!(f, "service '{}': ", s.escape_debug())?;
            }
            write!(f, "{}", e.message)?;
        }
        Ok(())
    }
}

/// Reads and validates a config file. Users are resolved against the
/// image's /etc/passwd and /etc/group (`etc` is normally "/etc").
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_etc(path, Path::new("/etc"))
}

pub fn load_with_etc(path: &Path, etc: &Path) -> Result<Config, ConfigErrors> {
    let fail = |error| ConfigErrors {
        path: path.to_path_buf(),
        errors: vec![error],
    };
    let bytes = std::fs::read(path).map_err(|e| {
        fail(ConfigError {
            line: 0,
            column: 0,
            service: None,
            message: format!("cannot read the config file: {e}"),
        })
    })?;
    let text = utf8(bytes).map_err(fail)?;
    parse(path, &text, etc)
}

/// The text of a file read as bytes, or an error at the line and column
/// of its first byte that is not UTF-8 (columns count characters).
pub(crate) fn utf8(bytes: Vec<u8>) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let good = e.utf8_error().valid_up_to();
        let bad = bytes.get(good).copied().unwrap_or(0);
        // Valid by construction: `valid_up_to` bytes decode.
        let prefix = std::str::from_utf8(&bytes[..good]).unwrap_or("");
        let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
        ConfigError {
            line: prefix.matches('\n').count() + 1,
            column: prefix[line_start..].chars().count() + 1,
            service: None,
            message: format!(
                "the file is not valid UTF-8: byte 0x{bad:02X} here cannot start or continue a character"
            ),
        }
    })
}

/// Validates config text; `path` only names the file in errors.
pub fn parse(path: &Path, text: &str, etc: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(path, text, etc).map_err(|errors| ConfigErrors {
        path: path.to_path_buf(),
        errors,
    })
}

/// SPEC section 1: a config with no services runs nothing by itself (an
/// empty file is usually a mount gone wrong); it is only valid beside a
/// main command. The message for `rinit check` (which cannot know of one)
/// and for a run without one; `None` when there are services.
pub fn nothing_to_run(cfg: &Config) -> Option<String> {
    if !cfg.services.is_empty() {
        return None;
    }
    let file = cfg.path.display();
    Some(format!(
        "{file}: no services, so there is nothing to run (is the file empty?); \
         a config without services needs a main command: rinit -c {file} -- CMD"
    ))
}

/// The start plan as `rinit check` prints it.
pub fn describe_plan(cfg: &Config) -> String {
    validate::describe_plan(cfg)
}
