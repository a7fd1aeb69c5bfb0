//! The services file: YAML in, a validated `Config` out, or every problem
//! found at once, each naming the file, line, column and service.
//! Nothing here starts a process; `load` is pure apart from reading the
//! config file and the image's /etc/passwd and /etc/group.

#[cfg(test)]
mod forward_tests;
mod graph;
mod locate;
mod raw;
mod ready;
#[cfg(test)]
mod tests;
pub mod users;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::types::{RunPolicy, ServicePolicy};

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
    pub user: Option<Identity>,
    pub workdir: Option<PathBuf>,
    /// Added on top of rinit's environment, in file order.
    pub env: Vec<(String, String)>,
    pub output: Output,
    pub policy: ServicePolicy,
}

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
                write!(f, "service '{s}': ")?;
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
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        path: path.to_path_buf(),
        errors: vec![ConfigError {
            line: 0,
            column: 0,
            service: None,
            message: format!("cannot read the config file: {e}"),
        }],
    })?;
    parse(path, &text, etc)
}

/// Validates config text; `path` only names the file in errors.
pub fn parse(path: &Path, text: &str, etc: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(path, text, etc).map_err(|errors| ConfigErrors {
        path: path.to_path_buf(),
        errors,
    })
}

/// The start plan as `rinit check` prints it.
pub fn describe_plan(cfg: &Config) -> String {
    validate::describe_plan(cfg)
}
