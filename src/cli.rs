//! Command-line parsing (SPEC section 1), free of I/O: arguments and an
//! environment lookup in, a `Cli` value or a usage error out.
//! Options come first; the first other argument starts the main command,
//! and everything after it belongs to that command untouched.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: rinit [OPTIONS] [--] [CMD [ARG...]]     run CMD and/or the services of a config
       rinit check [CONFIG]                    validate a config, print the start plan
       rinit probe [--ready] [-c CONFIG] [ADDR] ask a running rinit's /healthz (/readyz)
       rinit ctl [--control PATH] VERB [OPTIONS] [NAME...]   operate a running rinit:
           status [--json] [NAME...]                 the services at a glance
           start|stop|restart [--no-wait] [--timeout D] NAME...
           signal SIG NAME...                        send SIG to each one's process group
           logs [-f] [-n N] [NAME...]                recent output, merged; -f follows
           shutdown                                  the same as SIGTERM to rinit
       rinit --help | --version

options:
  -c, --config PATH      services file, or `none` (env RINIT_CONFIG; default /etc/rinit.yaml if it exists)
      --health-addr ADDR serve /healthz, /readyz, /status, /metrics on ADDR (env RINIT_HEALTH_ADDR)
      --grace DURATION   cap on the whole shutdown, e.g. 9s, 1m30s (env RINIT_GRACE; default 9s)
      --control PATH     the control socket, or `off` (env RINIT_CONTROL; default with a
                         config: $RINIT_RUNTIME_DIR/control.sock, /run/rinit/control.sock)
  -v / -q                more / less logging (repeatable; env RINIT_LOG takes env_logger filters)
  -e CODE                exit 0 where rinit would exit CODE (tini's -e; repeatable)
  -p SIGNAL              have the kernel send rinit SIGNAL when its parent dies (tini's -p)
  -s, -g, -w, -l         tini's: subreaper and group signalling are always on; -w is -v; -l licence
  -h, --help             this text
  -V, --version          the version
";

#[derive(Debug, PartialEq)]
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub health_addr: Option<String>,
    pub grace: Option<Duration>,
    /// `--control PATH` / RINIT_CONTROL: a socket path, or `off`.
    pub control: Option<String>,
    /// +1 per -v, -1 per -q.
    pub verbosity: i32,
    /// `-p SIGNAL` (tini): the signal rinit asks the kernel to send it
    /// when its parent dies.
    pub parent_death_signal: Option<i32>,
    /// `-e CODE` (tini), repeatable: when rinit would exit with CODE, it
    /// exits 0 instead.
    pub success_codes: Vec<u8>,
    pub command: Vec<OsString>,
}

/// `-c none` / `RINIT_CONFIG=none`: no config, even if /etc/rinit.yaml
/// exists (SPEC section 1).
pub const NO_CONFIG: &str = "none";

/// tini's `-l`: rinit has no license text of tini's to show.
pub const LICENSE: &str = "rinit is licensed MIT OR Apache-2.0, at the user's choice.\n";

#[derive(Debug, PartialEq)]
pub enum Cli {
    Run(RunArgs),
    Check {
        config: Option<PathBuf>,
    },
    Probe {
        ready: bool,
        config: Option<PathBuf>,
        addr: Option<String>,
    },
    Ctl(crate::control::client::CtlArgs),
    Help,
    License,
    Version,
}

/// `args` excludes the program name. `env` looks up RINIT_* variables.
pub fn parse(args: Vec<OsString>, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Cli, String> {
    match args.first().and_then(|a| a.to_str()) {
        Some("check") => return parse_check(args[1..].to_vec(), env),
        Some("probe") => return parse_probe(args[1..].to_vec(), env),
        Some("ctl") => return parse_ctl(args[1..].to_vec()),
        _ => {}
    }
    parse_run(args, env)
}

fn parse_run(args: Vec<OsString>, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Cli, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut run = RunArgs {
        config: env("RINIT_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        health_addr: env_string(env, "RINIT_HEALTH_ADDR")?,
        grace: env_string(env, "RINIT_GRACE")?
            .map(|g| duration(&g, "RINIT_GRACE"))
            .transpose()?,
        control: env_string(env, "RINIT_CONTROL")?,
        verbosity: 0,
        parent_death_signal: None,
        success_codes: Vec::new(),
        command: Vec::new(),
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => {
                run.config = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Long("health-addr") => run.health_addr = Some(string(p.value(), "--health-addr")?),
            Long("grace") => run.grace = Some(duration(&string(p.value(), "--grace")?, "--grace")?),
            Long("control") => run.control = Some(string(p.value(), "--control")?),
            Short('v') | Long("verbose") => run.verbosity += 1,
            Short('q') | Long("quiet") => run.verbosity -= 1,
            Short('h') | Long("help") => return Ok(Cli::Help),
            Short('V') | Long("version") => return Ok(Cli::Version),
            // tini's flags, so that swapping the binary is enough.
            // -s (be a subreaper) and -g (signal the whole group) are what
            // rinit always does; -w (warn on reaping) is -v's debug log.
            Short('s') | Short('g') => {}
            Short('w') => run.verbosity += 1,
            Short('l') => return Ok(Cli::License),
            Short('p') => {
                let name = string(p.value(), "-p")?;
                let sig = crate::core::signal::parse(&name).ok_or_else(|| {
                    format!("-p: '{name}' is not a signal name or number (e.g. SIGTERM or 15)")
                })?;
                run.parent_death_signal = Some(sig);
            }
            Short('e') => run
                .success_codes
                .push(exit_code(&string(p.value(), "-e")?)?),
            Long(refused @ ("single-child" | "rewrite" | "setsid" | "no-setsid")) => {
                return Err(compat_refusal(refused))
            }
            Value(first) => {
                run.command.push(first);
                run.command.extend(p.raw_args().map_err(|e| e.to_string())?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Cli::Run(run))
}

fn parse_check(args: Vec<OsString>, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Cli, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut config = env("RINIT_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut positional = None;
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => {
                config = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Short('h') | Long("help") => return Ok(Cli::Help),
            Value(v) if positional.is_none() => positional = Some(PathBuf::from(v)),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Cli::Check {
        config: positional.or(config),
    })
}

fn parse_probe(args: Vec<OsString>, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Cli, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut ready = false;
    let mut config = env("RINIT_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut addr = None;
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("ready") => ready = true,
            Short('c') | Long("config") => {
                config = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Short('h') | Long("help") => return Ok(Cli::Help),
            Value(v) if addr.is_none() => addr = Some(string(Ok(v), "ADDR")?),
            other => return Err(other.unexpected().to_string()),
        }
    }
    let addr = match addr {
        Some(a) => Some(a),
        None => env_string(env, "RINIT_HEALTH_ADDR")?,
    };
    Ok(Cli::Probe {
        ready,
        config,
        addr,
    })
}

/// `ctl [--control PATH] VERB [OPTIONS] [ARGS...]`: a verb's options come
/// right after it, or among its names.
fn parse_ctl(args: Vec<OsString>) -> Result<Cli, String> {
    use crate::control::client::{CtlArgs, CtlVerb};
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut socket = None;
    let verb = loop {
        match p.next().map_err(|e| e.to_string())? {
            Some(Long("control")) => {
                socket = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Some(Short('h') | Long("help")) => return Ok(Cli::Help),
            Some(Value(v)) => break string(Ok(v), "VERB")?,
            Some(other) => return Err(format!("ctl: {}", other.unexpected())),
            None => return Err(
                "ctl: give a verb: status, start, stop, restart, signal, logs, reload, shutdown"
                    .into(),
            ),
        }
    };
    let verb = match verb.as_str() {
        "status" => CtlVerb::Status,
        "start" => CtlVerb::Start,
        "stop" => CtlVerb::Stop,
        "restart" => CtlVerb::Restart,
        "logs" => CtlVerb::Logs,
        "reload" => CtlVerb::Reload,
        "shutdown" => CtlVerb::Shutdown,
        "signal" => match p.next().map_err(|e| e.to_string())? {
            Some(Value(sig)) => CtlVerb::Signal(string(Ok(sig), "SIG")?),
            _ => return Err("ctl signal: give the signal first, e.g. `rinit ctl signal HUP web`".into()),
        },
        other => return Err(format!("ctl: unknown verb '{other}': status, start, stop, restart, signal, logs, reload, shutdown")),
    };
    let mut a = CtlArgs::new(verb);
    a.socket = socket;
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("json") if a.verb == CtlVerb::Status => a.json = true,
            Long("no-wait")
                if matches!(a.verb, CtlVerb::Start | CtlVerb::Stop | CtlVerb::Restart) =>
            {
                a.wait = false
            }
            Long("timeout")
                if matches!(
                    a.verb,
                    CtlVerb::Start | CtlVerb::Stop | CtlVerb::Restart | CtlVerb::Reload
                ) =>
            {
                a.timeout = Some(duration(&string(p.value(), "--timeout")?, "--timeout")?)
            }
            Short('f') | Long("follow") if a.verb == CtlVerb::Logs => a.follow = true,
            Short('n') | Long("lines") if a.verb == CtlVerb::Logs => {
                let n = string(p.value(), "-n")?;
                a.lines = Some(
                    n.parse()
                        .map_err(|_| format!("ctl logs -n: '{n}' is not a number of lines"))?,
                );
            }
            Long("dry-run") if a.verb == CtlVerb::Reload => a.dry_run = true,
            Value(name) => a.names.push(string(Ok(name), "NAME")?),
            other => {
                return Err(format!(
                    "ctl {verb}: {}",
                    other.unexpected(),
                    verb = ctl_verb_name(&a.verb)
                ))
            }
        }
    }
    let needs_names = matches!(
        a.verb,
        CtlVerb::Start | CtlVerb::Stop | CtlVerb::Restart | CtlVerb::Signal(_)
    );
    if needs_names && a.names.is_empty() {
        return Err(format!(
            "ctl {}: name at least one service",
            ctl_verb_name(&a.verb)
        ));
    }
    Ok(Cli::Ctl(a))
}

fn ctl_verb_name(v: &crate::control::client::CtlVerb) -> &'static str {
    use crate::control::client::CtlVerb;
    match v {
        CtlVerb::Status => "status",
        CtlVerb::Start => "start",
        CtlVerb::Stop => "stop",
        CtlVerb::Restart => "restart",
        CtlVerb::Signal(_) => "signal",
        CtlVerb::Logs => "logs",
        CtlVerb::Reload => "reload",
        CtlVerb::Shutdown => "shutdown",
    }
}

/// dumb-init's flags that rinit does not take, with what to use instead.
fn compat_refusal(flag: &str) -> String {
    let instead = match flag {
        "rewrite" => "rinit forwards signals unchanged; give a service the signal it wants as `stop_signal`, and choose which signals reach it with `forward`",
        _ => "rinit always starts the command in a process group of its own and signals the whole group; put `exec` in front of the last command of a shell wrapper so the program gets the signal itself",
    };
    format!("--{flag} (dumb-init) is not supported: {instead}")
}

fn exit_code(text: &str) -> Result<u8, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("-e: '{text}' is not an exit code from 0 to 255"))
}

fn string(v: Result<OsString, lexopt::Error>, what: &str) -> Result<String, String> {
    v.map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| format!("{what} must be valid UTF-8"))
}

fn env_string(
    env: &dyn Fn(&str) -> Option<OsString>,
    name: &str,
) -> Result<Option<String>, String> {
    match env(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| format!("{name} must be valid UTF-8")),
    }
}

/// A duration, at most the config's maximum (a year): a larger grace is a
/// typo, and its deadline could overflow.
fn duration(text: &str, what: &str) -> Result<Duration, String> {
    let max = crate::config::MAX_DURATION;
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d <= max => Ok(d),
        Ok(_) => Err(format!(
            "{what}: '{text}' is longer than the maximum of 1year"
        )),
        Err(e) => Err(format!(
            "{what}: invalid duration '{text}' ({e}); write it like 250ms, 5s or 1m30s"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn run_args(cli: Cli) -> RunArgs {
        match cli {
            Cli::Run(r) => r,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn tini_flags_as_dockerfiles_write_them() {
        let r = run_args(
            parse(
                args(&[
                    "-s", "-g", "-vvv", "-e", "143", "-e", "2", "-p", "SIGKILL", "--", "app",
                ]),
                &no_env,
            )
            .unwrap(),
        );
        assert_eq!(r.verbosity, 3);
        assert_eq!(r.success_codes, vec![143, 2]);
        assert_eq!(r.parent_death_signal, Some(9));
        assert_eq!(r.command, args(&["app"]));
        assert_eq!(parse(args(&["-l"]), &no_env).unwrap(), Cli::License);
        // tini's `-p` also takes numbers; `-e` only 0..=255.
        assert_eq!(
            run_args(parse(args(&["-p", "15", "app"]), &no_env).unwrap()).parent_death_signal,
            Some(15)
        );
        for bad in [
            &["-e", "256"][..],
            &["-e", "-1"],
            &["-p", "SIGFOO"],
            &["--rewrite", "15:2"],
        ] {
            assert!(parse(args(bad), &no_env).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn options_then_command_untouched() {
        let r = run_args(
            parse(
                args(&["-v", "--grace", "2s", "app", "-c", "--x", ""]),
                &no_env,
            )
            .unwrap(),
        );
        assert_eq!(r.grace, Some(Duration::from_secs(2)));
        assert_eq!(r.verbosity, 1);
        assert_eq!(r.command, args(&["app", "-c", "--x", ""]));
    }

    #[test]
    fn double_dash_starts_the_command() {
        let r = run_args(parse(args(&["--", "-weird", "a b"]), &no_env).unwrap());
        assert_eq!(r.command, args(&["-weird", "a b"]));
        let r = run_args(parse(args(&["--", "check"]), &no_env).unwrap());
        assert_eq!(r.command, args(&["check"]));
    }

    #[test]
    fn env_fills_defaults_and_flags_win() {
        let env = |k: &str| match k {
            "RINIT_CONFIG" => Some(OsString::from("/x.yaml")),
            "RINIT_GRACE" => Some(OsString::from("3s")),
            "RINIT_HEALTH_ADDR" => Some(OsString::from("127.0.0.1:1")),
            _ => None,
        };
        let r = run_args(parse(args(&["--grace", "1s"]), &env).unwrap());
        assert_eq!(r.config, Some(PathBuf::from("/x.yaml")));
        assert_eq!(r.grace, Some(Duration::from_secs(1)));
        assert_eq!(r.health_addr.as_deref(), Some("127.0.0.1:1"));
    }

    #[test]
    fn subcommands() {
        assert_eq!(
            parse(args(&["check", "a.yaml"]), &no_env).unwrap(),
            Cli::Check {
                config: Some("a.yaml".into())
            }
        );
        assert_eq!(
            parse(args(&["probe", "--ready", "127.0.0.1:9"]), &no_env).unwrap(),
            Cli::Probe {
                ready: true,
                config: None,
                addr: Some("127.0.0.1:9".into())
            }
        );
        assert_eq!(parse(args(&["--version"]), &no_env).unwrap(), Cli::Version);
    }

    #[test]
    fn ctl_verbs_and_their_options() {
        use crate::control::client::CtlVerb;
        let ctl = |a: &[&str]| match parse(args(a), &no_env) {
            Ok(Cli::Ctl(c)) => Ok(c),
            Ok(other) => panic!("not ctl: {other:?}"),
            Err(e) => Err(e),
        };
        let c = ctl(&[
            "ctl",
            "--control",
            "/s",
            "restart",
            "--timeout",
            "10s",
            "web",
            "db",
        ])
        .unwrap();
        assert_eq!(c.verb, CtlVerb::Restart);
        assert_eq!(c.socket, Some(PathBuf::from("/s")));
        assert_eq!(c.names, ["web", "db"]);
        assert_eq!(c.timeout, Some(Duration::from_secs(10)));
        let c = ctl(&["ctl", "signal", "HUP", "web"]).unwrap();
        assert_eq!(c.verb, CtlVerb::Signal("HUP".into()));
        let c = ctl(&["ctl", "logs", "-f", "-n", "5"]).unwrap();
        assert!(c.follow && c.lines == Some(5) && c.names.is_empty());
        assert!(ctl(&["ctl", "status", "--json"]).unwrap().json);
        assert!(ctl(&["ctl", "stop"])
            .unwrap_err()
            .contains("name at least one"));
        assert!(ctl(&["ctl", "explode"])
            .unwrap_err()
            .contains("unknown verb"));
        assert!(ctl(&["ctl", "status", "--no-wait"]).is_err());
        assert!(ctl(&["ctl"]).is_err());
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(parse(args(&["--grace", "soon"]), &no_env)
            .unwrap_err()
            .contains("1m30s"));
        assert!(parse(args(&["--grace", "9223372036854775807s"]), &no_env)
            .unwrap_err()
            .contains("longer than the maximum"));
        assert!(parse(args(&["--bogus"]), &no_env).is_err());
        assert!(parse(args(&["-c"]), &no_env).is_err());
    }
}
