//! What must hold for any input to the parsers of hostile input, shared by
//! the fuzz targets (`fuzz_targets/*.rs`) and the stable regression test
//! (`tests/fuzz_regressions.rs`), so a kept crash replays exactly the check
//! that found it. Each function panics when a property fails.

// Each target uses only its own half of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use rinit_pid1::config::{self, ConfigErrors};
use rinit_pid1::core::snapshot::{LivenessView, Phase, ServiceView, Snapshot};
use rinit_pid1::core::types::ExitStatus;
use rinit_pid1::health::http::{self, Extras, Parsed, MAX_HEAD};

/// The config loader and validator on `data`: never a panic; an error
/// always names a line and column; a valid config has a sane plan.
/// UTF-8 goes to `config::parse` (what `load` ends in); other bytes are
/// written to `scratch` and read back through `config::load_with_etc`.
pub fn config(data: &[u8], etc: &Path, scratch: &Path) {
    let result = match std::str::from_utf8(data) {
        Ok(text) => config::parse(Path::new("fuzz.yaml"), text, etc),
        Err(_) => {
            if std::fs::write(scratch, data).is_err() {
                return;
            }
            config::load_with_etc(scratch, etc)
        }
    };
    match result {
        Ok(cfg) => {
            let _ = config::describe_plan(&cfg);
            let n = cfg.services.len();
            let mut planned: Vec<usize> = cfg.waves.iter().flatten().copied().collect();
            planned.sort_unstable();
            assert_eq!(
                planned,
                (0..n).collect::<Vec<_>>(),
                "each service in one wave"
            );
            for (wave, members) in cfg.waves.iter().enumerate() {
                for &i in members {
                    for &d in &cfg.services[i].policy.depends_on {
                        let dw = cfg.waves.iter().position(|w| w.contains(&d));
                        assert!(dw.is_some_and(|dw| dw < wave), "dependency not earlier");
                    }
                }
            }
        }
        Err(errors) => config_errors(&errors),
    }
}

fn config_errors(errors: &ConfigErrors) {
    assert!(!errors.errors.is_empty(), "an Err with no error in it");
    for e in &errors.errors {
        let placed = e.line >= 1 && e.column >= 1;
        assert!(placed, "error without a position: {e:?}");
        assert!(!e.message.is_empty(), "error without a message: {e:?}");
    }
    // Rendering the errors as `rinit check` prints them must not panic.
    let _ = errors.to_string();
}

/// A scratch file name of this process, for `config`.
pub fn scratch_file() -> PathBuf {
    std::env::temp_dir().join(format!("rinit-fuzz-config-{}.yaml", std::process::id()))
}

/// A snapshot with one service per phase (names that need escaping
/// included), so that every endpoint renders something non-trivial.
pub fn snapshot(now: Instant) -> Snapshot {
    let services = Phase::ALL
        .iter()
        .enumerate()
        .map(|(i, &phase)| ServiceView {
            id: i,
            removed: false,
            name: format!("svc-{i}\"\\\n{}", phase.as_str()),
            phase,
            pid: (i % 2 == 0).then_some(100 + i as i32),
            restarts: i as u32,
            last_exit: match i % 3 {
                0 => None,
                1 => Some(ExitStatus::Code(i as i32)),
                _ => Some(ExitStatus::Signal(9)),
            },
            since: (i % 2 == 0).then_some(now),
            critical: i % 2 == 1,
            wanted_up: i % 3 != 0,
            ready: i % 2 == 0,
            restarts_operator: i as u32,
            ever_ready: i % 4 != 1,
            liveness: [
                LivenessView::None,
                LivenessView::Passing,
                LivenessView::Failing(i as u32),
                LivenessView::Unhealthy,
            ][i % 4],
            liveness_failures_total: i as u64,
            notify_status: (i % 2 == 1).then(|| format!("status \"{i}\"\n")),
        })
        .collect();
    Snapshot {
        services,
        main_pid: Some(7),
        shutting_down: false,
        reaped_total: 3,
        orphans_reaped: 1,
        notify_ignored: 2,
    }
}

/// The request-head parser on `data`, and the response to what it accepts:
/// never a panic; a refusal is 400 or 431; `Partial` never outlives the
/// size limit; every response is framed right.
pub fn http_head(data: &[u8], snap: &Snapshot, now: Instant) {
    match http::parse(data, MAX_HEAD) {
        Parsed::Partial => assert!(data.len() <= MAX_HEAD, "Partial past the limit"),
        Parsed::Reject(status) => {
            assert!(matches!(status, 400 | 431), "refused with {status}");
            response(&http::error_response(status, false), false);
        }
        Parsed::Request { method, target } => {
            let extras = Extras {
                log_dropped: [5, 7],
                ..Extras::default()
            };
            let answer = http::respond(method, target, snap, &extras, now);
            response(&answer, method == "HEAD");
            control_route(method, target, snap, now);
        }
    }
}

/// The control socket's router on the same head: never a panic, a refusal
/// is a 4xx, and what it accepts renders (status) or resolves cleanly.
fn control_route(method: &str, target: &str, snap: &Snapshot, now: Instant) {
    use rinit_pid1::control::proto::{self, Route};
    match proto::route(method, target) {
        Err((status, _)) => assert!(
            (400..500).contains(&status),
            "control refused with {status}"
        ),
        Ok(Route::Status { names, text }) => {
            if proto::resolve(&names, snap).is_ok() {
                let answer = proto::status(snap, &names, text, now);
                assert!(answer.starts_with(b"HTTP/1.1 200 "));
            }
        }
        Ok(route) => {
            if let Route::Reload { timeout, .. } = &route {
                assert!(*timeout <= std::time::Duration::from_secs(24 * 3600));
            }
            let _ = route.allowed(1234, 0);
            let _ = route.verb_name();
        }
    }
}

/// Status line, the headers the contract requires, and a Content-Length
/// that is the body's length (no body at all for HEAD).
fn response(bytes: &[u8], head_only: bool) {
    let text = std::str::from_utf8(bytes).expect("responses are UTF-8");
    assert!(text.starts_with("HTTP/1.1 "), "bad status line: {text:?}");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head that ends");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    for header in [
        "Content-Type: ",
        "Cache-Control: no-store",
        "Connection: close",
    ] {
        assert!(head.contains(header), "{header} missing: {head:?}");
    }
    if head_only {
        assert!(body.is_empty(), "HEAD with a body");
    } else {
        assert_eq!(body.len(), length, "Content-Length is not the body length");
    }
}

/// The sd_notify datagram parser on arbitrary bytes: never panics, keeps
/// STATUS text bounded and free of control characters, and a datagram
/// rebuilt from what it understood parses to the same notice.
pub fn notify(data: &[u8]) {
    use rinit_pid1::core::notify::{parse, MAX_STATUS_CHARS};
    let n = parse(data);
    if let Some(status) = &n.status {
        assert!(status.chars().count() <= MAX_STATUS_CHARS, "{status:?}");
        assert!(!status.chars().any(char::is_control), "{status:?}");
    }
    let lines = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(n.ignored as usize <= lines, "{n:?}");
    let mut again = Vec::new();
    for (on, key) in [
        (n.ready, "READY=1"),
        (n.reloading, "RELOADING=1"),
        (n.stopping, "STOPPING=1"),
        (n.watchdog, "WATCHDOG=1"),
        (n.watchdog_trigger, "WATCHDOG=trigger"),
    ] {
        if on {
            again.extend_from_slice(key.as_bytes());
            again.push(b'\n');
        }
    }
    if let Some(s) = &n.status {
        again.extend_from_slice(format!("STATUS={s}\n").as_bytes());
    }
    if let Some(v) = n.extend_timeout_usec {
        again.extend_from_slice(format!("EXTEND_TIMEOUT_USEC={v}\n").as_bytes());
    }
    if let Some(p) = n.main_pid {
        again.extend_from_slice(format!("MAINPID={p}\n").as_bytes());
    }
    let mut rebuilt = parse(&again);
    rebuilt.ignored = n.ignored;
    assert_eq!(rebuilt, n, "{:?}", String::from_utf8_lossy(data));
}
