//! rinit: a PID 1 for containers. It reaps every orphan, runs one command
//! or a set of services, forwards signals to process groups, answers
//! health probes from the kernel's truth, and shuts down in order.
//!
//! This file only wires things up: it dies loudly (exit 2) on bad input
//! before anything starts; once the runtime runs, errors are logged and
//! rinit carries on.

use rinit_pid1::io::json_log;
use rinit_pid1::{cli, config, health, os, runtime};

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use cli::Cli;

const DEFAULT_CONFIG: &str = "/etc/rinit.yaml";

/// The loader runs this before Rust's runtime and `main`: from rinit's
/// first instruction on, every signal is blocked, so a SIGTERM sent right
/// after exec (or during a long config parse) stays pending for the signal
/// thread instead of being dropped, as the kernel drops a PID 1's signals
/// that have no handler. `main` then narrows the mask.
#[used]
#[link_section = ".init_array"]
static BLOCK_SIGNALS_AT_LOAD: extern "C" fn() = block_signals_at_load;

extern "C" fn block_signals_at_load() {
    os::sys::block_everything();
}

fn main() {
    // First of all: no descriptor rinit opens may land on a closed 0-2.
    os::sys::open_missing_stdio();
    let signals = os::signals::block_taken();
    install_panic_hook();
    // Parsing opens no file: the fds seen next are all inherited.
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cli = match cli::parse(args, &|k| std::env::var_os(k)) {
        Ok(c) => c,
        Err(e) => usage_error(&e),
    };
    if !matches!(cli, Cli::Run(_)) {
        // Only a running init takes signals from a thread; the other
        // commands are ordinary processes and Ctrl-C must stop them.
        os::sys::unblock_everything();
    }
    let code = match cli {
        Cli::Ctl(args) => rinit_pid1::control::client::run(&args, &|k| std::env::var(k).ok()),
        Cli::Help => write_out(cli::USAGE),
        Cli::License => write_out(cli::LICENSE),
        Cli::Version => write_out(&format!("rinit {}\n", env!("CARGO_PKG_VERSION"))),
        Cli::Check { config } => {
            init_logging(0);
            check(config)
        }
        Cli::Probe {
            ready,
            config,
            addr,
        } => {
            init_logging(0);
            probe(ready, config, addr)
        }
        Cli::Run(args) => {
            // Before anything opens a file: what fds did we inherit? (Only
            // an init needs to know: `ctl`, `probe`, `check` skip the scan.)
            let inherited_fds = os::procs::inherited_fds();
            set_log_format_from_env();
            init_logging(args.verbosity);
            let success_codes = args.success_codes.clone();
            let code = remap_success(run(args, inherited_fds, signals), &success_codes);
            // Not process::exit: std's exit path takes the stdout lock and
            // flushes, which blocks for ever on a stalled reader. What rinit
            // queued gets a bounded time to go out, then PID 1 exits.
            let deadline = std::time::Instant::now() + runtime::EXIT_FLUSH;
            rinit_pid1::io::sink::global().flush_until(deadline);
            os::sys::exit_now(code);
        }
    };
    std::process::exit(code);
}

/// RINIT_LOG_FORMAT when set and not empty: it wins over `logs.format`.
fn env_log_format() -> Option<OsString> {
    std::env::var_os("RINIT_LOG_FORMAT").filter(|v| !v.is_empty())
}

/// RINIT_LOG_FORMAT: `text` or `json`.
fn set_log_format_from_env() {
    let Some(v) = env_log_format() else {
        return;
    };
    match v.to_str().and_then(json_log::parse_format) {
        Some(json) => json_log::set_json(json),
        None => usage_error(&format!(
            "RINIT_LOG_FORMAT: '{}' is neither `text` nor `json`",
            v.to_string_lossy()
        )),
    }
}

/// tini's `-e CODE`: the listed statuses count as success.
fn remap_success(code: i32, success: &[u8]) -> i32 {
    if code != 0 && success.iter().any(|&c| i32::from(c) == code) {
        log::info!("exit status {code} is listed with -e: exiting with 0");
        0
    } else {
        code
    }
}

/// A panic must never leave PID 1 half-alive: one line, then exit.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("rinit: internal error, exiting: {info}\n");
        os::sys::write_stderr_raw(msg.as_bytes());
        os::sys::exit_now(70);
    }));
}

fn init_logging(verbosity: i32) {
    let mut b = env_logger::Builder::new();
    b.filter_level(log::LevelFilter::Info);
    if let Some(spec) = std::env::var("RINIT_LOG").ok().filter(|s| !s.is_empty()) {
        b.parse_filters(&spec);
    }
    if verbosity != 0 {
        let level = match verbosity {
            i32::MIN..=-2 => log::LevelFilter::Error,
            -1 => log::LevelFilter::Warn,
            1 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        };
        b.filter_level(level);
    }
    // Through the non-blocking sink: a log line never blocks PID 1.
    b.target(env_logger::Target::Pipe(Box::new(
        rinit_pid1::io::sink::LogWriter,
    )));
    b.format(|buf, record| {
        if json_log::is_json() {
            let mut line = Vec::new();
            let msg = record.args().to_string();
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warn",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            json_log::own_line(&mut line, level, msg.as_bytes());
            return buf.write_all(&line);
        }
        let level = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug => "debug: ",
            log::Level::Trace => "trace: ",
        };
        writeln!(buf, "rinit: {level}{}", record.args())
    });
    let _ = b.try_init();
}

fn write_out(text: &str) -> i32 {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    0
}

fn write_err(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn usage_error(msg: &str) -> ! {
    write_err(&format!("rinit: {msg}\n{}", cli::USAGE));
    std::process::exit(2);
}

/// The explicit config, else /etc/rinit.yaml when it exists.
fn config_path(explicit: Option<PathBuf>) -> Option<PathBuf> {
    if explicit.as_deref() == Some(Path::new(cli::NO_CONFIG)) {
        return None;
    }
    explicit.or_else(|| {
        Path::new(DEFAULT_CONFIG)
            .exists()
            .then(|| PathBuf::from(DEFAULT_CONFIG))
    })
}

fn load_config(path: &Path) -> Result<config::Config, i32> {
    config::load(path).map_err(|errors| {
        write_err(&format!("{errors}\n"));
        let n = errors.errors.len();
        write_err(&format!(
            "rinit: {} error{} in {}; nothing started\n",
            n,
            if n == 1 { "" } else { "s" },
            path.display()
        ));
        2
    })
}

fn check(config: Option<PathBuf>) -> i32 {
    let Some(path) = config_path(config) else {
        write_err("rinit: check: no config given and /etc/rinit.yaml does not exist\n");
        return 2;
    };
    match load_config(&path) {
        Ok(cfg) => match config::nothing_to_run(&cfg) {
            Some(why) => {
                write_err(&format!("rinit: {why}\n"));
                2
            }
            None => write_out(&config::describe_plan(&cfg)),
        },
        Err(code) => code,
    }
}

fn probe(ready: bool, config: Option<PathBuf>, addr: Option<String>) -> i32 {
    let addr = match addr {
        Some(a) => a,
        None => {
            let listen = config_path(config)
                .and_then(|p| config::load(&p).ok())
                .and_then(|c| c.health_listen);
            match listen {
                Some(a) => a.to_string(),
                None => {
                    write_err("rinit: probe: no address (give ADDR, set RINIT_HEALTH_ADDR, or health.listen in the config)\n");
                    return 1;
                }
            }
        }
    };
    health::probe_client::probe(&addr, ready)
}

fn run(args: cli::RunArgs, inherited_fds: Vec<i32>, signals: os::sys::SignalSet) -> i32 {
    let cfg = match config_path(args.config) {
        Some(path) => match load_config(&path) {
            Ok(c) => Some(c),
            Err(code) => return code,
        },
        None => None,
    };
    if let Some(c) = cfg.as_ref().filter(|_| env_log_format().is_none()) {
        json_log::set_json(c.runtime.log_json);
    }
    if cfg.is_none() && args.command.is_empty() {
        usage_error("nothing to run: give a command or a config");
    }
    let idle = cfg.as_ref().filter(|_| args.command.is_empty());
    if let Some(why) = idle.and_then(config::nothing_to_run) {
        write_err(&format!("rinit: {why}\n"));
        return 2;
    }
    if let Some(c) = &cfg {
        if let Err(e) = runtime::preflight::check(c) {
            write_err(&format!("rinit: {e}\n"));
            return 2;
        }
    }
    if let Some(sig) = args.parent_death_signal {
        if let Err(e) = os::sys::set_parent_death_signal(sig) {
            write_err(&format!(
                "rinit: -p: cannot set the parent-death signal: {}\n",
                std::io::Error::from_raw_os_error(e)
            ));
            return 2;
        }
    }
    if !os::procs::is_pid1() {
        if let Err(e) = os::sys::set_child_subreaper() {
            log::warn!(
                "not PID 1 and cannot become a subreaper ({}): orphans will not be reaped",
                std::io::Error::from_raw_os_error(e)
            );
        }
    }
    os::sys::reset_own_signals(&signals);
    let health_pinned = args.health_addr.is_some();
    let listen = match args.health_addr {
        Some(a) => match a.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                write_err(&format!(
                    "rinit: --health-addr: '{a}' is not IP:PORT (e.g. 0.0.0.0:9090)\n"
                ));
                return 2;
            }
        },
        None => cfg.as_ref().and_then(|c| c.health_listen),
    };
    let health = match listen.map(bind_health) {
        None => None,
        Some(Ok(listener)) => Some(listener),
        Some(Err(e)) => {
            write_err(&format!(
                "rinit: cannot serve HTTP on {}: {e}\n",
                listen.map(|a| a.to_string()).unwrap_or_default()
            ));
            return 2;
        }
    };
    let control = control_socket(args.control.as_deref(), cfg.as_ref());
    runtime::run(runtime::RunSpec {
        control,
        // A flag or variable wins over the file, at a reload too.
        pinned: runtime::Pinned {
            health: health_pinned,
            control: args.control.is_some(),
        },
        health_addr: health.as_ref().and(listen),
        config: cfg,
        command: args.command,
        grace: args.grace,
        health,
        inherited_fds,
        signals,
    })
}

/// The control socket (SPEC section 10): `--control PATH` / RINIT_CONTROL
/// (`off`: none); else, with a config, `$RINIT_RUNTIME_DIR/control.sock`
/// (default /run/rinit); in single-command mode only when asked. A socket
/// that cannot be made is one warning, and rinit runs without control.
fn control_socket(
    explicit: Option<&str>,
    cfg: Option<&config::Config>,
) -> Option<(std::os::unix::net::UnixListener, PathBuf)> {
    use rinit_pid1::control::socket;
    let env_dir = socket::env_runtime_dir();
    let path = match explicit {
        Some("off") => return None,
        Some(p) => PathBuf::from(p),
        None => cfg?.runtime.control_path(env_dir.as_deref())?,
    };
    match socket::open(&path) {
        Ok(listener) => {
            log::info!("control socket on {}", path.display());
            Some((listener, path))
        }
        Err(warning) => {
            log::warn!("control: {warning}");
            None
        }
    }
}

/// Binds the HTTP server's socket before anything starts: a bad or busy
/// address is fatal now, never later.
fn bind_health(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = health::bind(addr)?;
    log::info!("serving health on http://{addr}");
    Ok(listener)
}
