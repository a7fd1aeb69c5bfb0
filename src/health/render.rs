//! Bodies of the HTTP endpoints, rendered from one snapshot: JSON for
//! `/healthz`, `/readyz` and `/status`, Prometheus text exposition format
//! 0.0.4 for `/metrics`.
//!
//! Invariants: pure functions of a snapshot and a clock reading (no I/O, no
//! locks); every string from the outside (service names) is escaped for the
//! format it lands in; the pass/fail verdict of a check is the snapshot's own
//! `healthy()`/`ready()`, never recomputed here.

use std::fmt::Write as _;
use std::time::Instant;

use crate::core::signal;
use crate::core::snapshot::{Phase, ServiceView, Snapshot};
use crate::core::types::ExitStatus;

/// The two probe endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `/healthz`: nothing failed, backing off or stopped; no shutdown.
    Health,
    /// `/readyz`: everything running or done; no shutdown.
    Ready,
    /// `/startupz`: every service wanted up has been ready once.
    Startup,
}

impl Check {
    pub fn passes(self, snap: &Snapshot) -> bool {
        match self {
            Check::Health => snap.healthy(),
            Check::Ready => snap.ready(),
            Check::Startup => snap.started(),
        }
    }

    /// Whether this service is one of the reasons the check fails.
    pub fn blames(self, service: &ServiceView) -> bool {
        match self {
            Check::Health => service.unhealthy(),
            Check::Startup => service.not_started(),
            // A `down` service is not wanted up: nobody waits for it.
            Check::Ready => !(service.ready || service.phase == Phase::Down),
        }
    }

    fn failure_word(self) -> &'static str {
        match self {
            Check::Health => "unhealthy",
            Check::Ready => "not_ready",
            Check::Startup => "not_started",
        }
    }
}

/// `(passes, body)` for `/healthz` or `/readyz`, e.g.
/// `{"status":"unhealthy","shutting_down":false,"failing":[{"name":"web",
/// "state":"backoff","last_exit":{"code":1}}]}`.
pub fn check_json(check: Check, snap: &Snapshot) -> (bool, String) {
    let ok = check.passes(snap);
    let mut out = String::with_capacity(128);
    out.push_str("{\"status\":");
    push_json_str(&mut out, if ok { "ok" } else { check.failure_word() });
    push_field_bool(&mut out, "shutting_down", snap.shutting_down);
    out.push_str(",\"failing\":[");
    let failing = snap.services.iter().filter(|s| check.blames(s));
    for (i, service) in failing.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        push_json_str(&mut out, &service.name);
        out.push_str(",\"state\":");
        push_json_str(&mut out, service.phase.as_str());
        out.push_str(",\"last_exit\":");
        push_exit(&mut out, service.last_exit);
        out.push('}');
    }
    out.push_str("]}");
    (ok, out)
}

/// The body of `/status`: every service, plus the run-wide counters.
pub fn status_json(snap: &Snapshot, now: Instant) -> String {
    let mut out = String::with_capacity(128 + 192 * snap.services.len());
    out.push_str("{\"healthy\":");
    push_bool(&mut out, snap.healthy());
    push_field_bool(&mut out, "ready", snap.ready());
    push_field_bool(&mut out, "shutting_down", snap.shutting_down);
    out.push_str(",\"main_pid\":");
    push_opt_int(&mut out, snap.main_pid.map(i64::from));
    // Writing into a String cannot fail; the fmt::Result is always Ok.
    let _ = write!(
        out,
        ",\"reaped_total\":{},\"orphans_reaped\":{},\"services\":[",
        snap.reaped_total, snap.orphans_reaped
    );
    for (i, service) in snap.services.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_service(&mut out, service, now);
    }
    out.push_str("]}");
    out
}

fn push_service(out: &mut String, s: &ServiceView, now: Instant) {
    out.push_str("{\"name\":");
    push_json_str(out, &s.name);
    out.push_str(",\"state\":");
    push_json_str(out, s.phase.as_str());
    out.push_str(",\"pid\":");
    push_opt_int(out, s.pid.map(i64::from));
    let _ = write!(
        out,
        ",\"restarts\":{},\"restarts_operator\":{}",
        s.restarts, s.restarts_operator
    );
    out.push_str(",\"last_exit\":");
    push_exit(out, s.last_exit);
    out.push_str(",\"uptime_seconds\":");
    match uptime(s, now) {
        // Seconds with three decimals, from integers: rinit links no float
        // formatting for this.
        Some(ms) => {
            let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
        }
        None => out.push_str("null"),
    }
    push_field_bool(out, "critical", s.critical);
    push_field_bool(out, "ready", s.ready);
    out.push_str(",\"wanted\":");
    push_json_str(out, if s.wanted_up { "up" } else { "down" });
    out.push_str(",\"liveness\":{\"state\":");
    push_json_str(out, s.liveness.as_str());
    let failures = match s.liveness {
        crate::core::snapshot::LivenessView::Failing(n) => n,
        _ => 0,
    };
    let _ = write!(out, ",\"failures\":{failures}}}");
    out.push_str(",\"started_at\":");
    match started_at(s, now) {
        Some(text) => push_json_str(out, &text),
        None => out.push_str("null"),
    }
    out.push_str(",\"notify_status\":");
    match &s.notify_status {
        Some(text) => push_json_str(out, text),
        None => out.push_str("null"),
    }
    out.push('}');
}

/// When the live process was spawned, RFC 3339 UTC with milliseconds: the
/// wall clock now, minus its uptime on the monotonic clock.
fn started_at(s: &ServiceView, now: Instant) -> Option<String> {
    let up = uptime(s, now)?;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    let millis = u64::try_from(wall.checked_sub(up)?).ok()?;
    let mut out = Vec::with_capacity(24);
    crate::io::json_log::rfc3339_millis(&mut out, millis);
    String::from_utf8(out).ok()
}

/// Milliseconds since the live process was spawned; `None` without one.
fn uptime(s: &ServiceView, now: Instant) -> Option<u128> {
    let since = s.since?;
    s.pid?;
    Some(now.saturating_duration_since(since).as_millis())
}

/// `{"code":N}`, `{"signal":"SIGKILL","number":9}` or `null`.
fn push_exit(out: &mut String, exit: Option<ExitStatus>) {
    match exit {
        None => out.push_str("null"),
        Some(ExitStatus::Code(c)) => {
            let _ = write!(out, "{{\"code\":{c}}}");
        }
        Some(ExitStatus::Signal(n)) => {
            out.push_str("{\"signal\":");
            push_json_str(out, &signal::name(n));
            let _ = write!(out, ",\"number\":{n}}}");
        }
    }
}

fn push_bool(out: &mut String, value: bool) {
    out.push_str(if value { "true" } else { "false" });
}

fn push_field_bool(out: &mut String, key: &str, value: bool) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    push_bool(out, value);
}

fn push_opt_int(out: &mut String, value: Option<i64>) {
    match value {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("null"),
    }
}

/// A JSON string literal (RFC 8259): quotes, backslashes and every control
/// character escaped; everything else is valid UTF-8 already.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The body of `/metrics`, text exposition format 0.0.4.
pub fn metrics_text(snap: &Snapshot, extras: &super::http::Extras) -> String {
    let mut out = String::with_capacity(1024 + 600 * snap.services.len());
    family(
        &mut out,
        "rinit_service_up",
        "gauge",
        "1 when the service is in the running state, else 0.",
    );
    for s in &snap.services {
        sample(
            &mut out,
            "rinit_service_up",
            &s.name,
            None,
            s.phase == Phase::Running,
        );
    }
    family(
        &mut out,
        "rinit_service_ready",
        "gauge",
        "1 when the service is ready (running, or a oneshot that is done), else 0.",
    );
    for s in &snap.services {
        sample(&mut out, "rinit_service_ready", &s.name, None, s.ready);
    }
    family(
        &mut out,
        "rinit_service_state",
        "gauge",
        "Current state of the service: 1 for the state it is in, 0 for the others.",
    );
    for s in &snap.services {
        for phase in Phase::ALL {
            let state = Some(phase.as_str());
            sample(
                &mut out,
                "rinit_service_state",
                &s.name,
                state,
                s.phase == phase,
            );
        }
    }
    let restarts = "Restarts of the service since rinit started.";
    per_service_counter(
        &mut out,
        snap,
        "rinit_service_restarts_total",
        restarts,
        |s| u64::from(s.restarts),
    );
    let failures = "Failed liveness checks of the service since rinit started.";
    per_service_counter(
        &mut out,
        snap,
        "rinit_service_liveness_failures_total",
        failures,
        |s| s.liveness_failures_total,
    );
    metrics_run_wide(&mut out, snap);
    log_metrics(&mut out, extras);
    out
}

/// A counter family with one sample per service.
fn per_service_counter(
    out: &mut String,
    snap: &Snapshot,
    name: &str,
    help: &str,
    value: impl Fn(&ServiceView) -> u64,
) {
    family(out, name, "counter", help);
    for s in &snap.services {
        out.push_str(name);
        push_labels(out, &s.name, None);
        let _ = writeln!(out, " {}", value(s));
    }
}

fn metrics_run_wide(out: &mut String, snap: &Snapshot) {
    family(
        out,
        "rinit_zombies_reaped_total",
        "counter",
        "Processes reaped by rinit: its own children and adopted orphans.",
    );
    let _ = writeln!(out, "rinit_zombies_reaped_total {}", snap.reaped_total);
    family(
        out,
        "rinit_orphans_reaped_total",
        "counter",
        "Reaped processes that rinit did not spawn itself.",
    );
    let _ = writeln!(out, "rinit_orphans_reaped_total {}", snap.orphans_reaped);
    family(
        out,
        "rinit_shutting_down",
        "gauge",
        "1 while a shutdown is under way, else 0.",
    );
    let _ = writeln!(out, "rinit_shutting_down {}", u8::from(snap.shutting_down));
    family(
        out,
        "rinit_notify_ignored_total",
        "counter",
        "sd_notify datagrams ignored: sent from outside the service's session, or over 4 KiB.",
    );
    let _ = writeln!(out, "rinit_notify_ignored_total {}", snap.notify_ignored);
}

fn log_metrics(out: &mut String, extras: &super::http::Extras) {
    family(
        out,
        "rinit_log_dropped_bytes_total",
        "counter",
        "Bytes of output rinit dropped because its stdout or stderr was not being read.",
    );
    for (stream, n) in ["stdout", "stderr"].iter().zip(extras.log_dropped) {
        let _ = writeln!(
            out,
            "rinit_log_dropped_bytes_total{{stream=\"{stream}\"}} {n}"
        );
    }
}

/// The HELP and TYPE lines of one family (help texts are constants with no
/// backslash or newline, so they need no escaping).
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, service: &str, state: Option<&str>, on: bool) {
    out.push_str(name);
    push_labels(out, service, state);
    out.push_str(if on { " 1\n" } else { " 0\n" });
}

fn push_labels(out: &mut String, service: &str, state: Option<&str>) {
    out.push_str("{service=\"");
    push_label_value(out, service);
    out.push('"');
    if let Some(state) = state {
        out.push_str(",state=\"");
        push_label_value(out, state);
        out.push('"');
    }
    out.push('}');
}

/// Label values: backslash, double quote and line feed are escaped.
pub fn push_label_value(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
