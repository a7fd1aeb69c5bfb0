//! The control protocol as pure data (SPEC section 10): a request head in,
//! a route out; a snapshot or a core reply in, response bytes out. HTTP/1.1
//! with JSON bodies (text with `format=text`, what `rinit ctl` asks for), so
//! `curl --unix-socket /run/rinit/control.sock http://rinit/v1/services`
//! works.
//!
//! Routes (a closed table; anything else is 404, a known path with another
//! method 405):
//!
//! | method | path | query |
//! |---|---|---|
//! | GET | `/v1/services` or `/v1/services/a,b` | `format=text` |
//! | POST | `/v1/services/a,b/start` (`stop`, `restart`) | `wait=0`, `timeout=10s`, `format=text` |
//! | POST | `/v1/services/a,b/signal` | `signal=HUP` |
//! | GET | `/v1/logs` | `service=a,b`, `n=100`, `follow=1` |
//! | POST | `/v1/shutdown` | |
//! | POST | `/v1/reload` | `dry_run=1`, `timeout=60s` |

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::core::signal;
use crate::core::snapshot::{ServiceView, Snapshot};
use crate::core::types::{ExitStatus, Reply, Verb};

/// How long `start`/`restart` wait by default (SPEC: `--timeout`, 60s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines `logs` shows by default.
pub const DEFAULT_LINES: usize = 100;
/// Longest `timeout` a request may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Status {
        names: Vec<String>,
        text: bool,
    },
    Act {
        verb: Verb,
        names: Vec<String>,
        wait: bool,
        timeout: Duration,
        text: bool,
    },
    Logs {
        names: Vec<String>,
        lines: usize,
        follow: bool,
    },
    Shutdown {
        text: bool,
    },
    Reload {
        dry_run: bool,
        /// How long the reply waits for what the reload starts.
        timeout: Duration,
        text: bool,
    },
}

impl Route {
    /// What it is called in the audit log and in metrics.
    pub fn verb_name(&self) -> &'static str {
        match self {
            Route::Status { .. } => "status",
            Route::Act { verb, .. } => match verb {
                Verb::Start => "start",
                Verb::Stop => "stop",
                Verb::Restart => "restart",
                Verb::Signal(_) => "signal",
            },
            Route::Logs { .. } => "logs",
            Route::Shutdown { .. } => "shutdown",
            Route::Reload { .. } => "reload",
        }
    }

    /// Changes something: allowed to root and rinit's own uid only, and
    /// written to the audit log.
    pub fn changes(&self) -> bool {
        !matches!(self, Route::Status { .. } | Route::Logs { .. })
    }

    /// Who may ask it: root and rinit's own uid anything; anyone else only
    /// `status` (logs can carry secrets).
    pub fn allowed(&self, uid: u32, own_uid: u32) -> bool {
        uid == 0 || uid == own_uid || matches!(self, Route::Status { .. })
    }

    pub fn wants_text(&self) -> bool {
        match self {
            Route::Status { text, .. }
            | Route::Act { text, .. }
            | Route::Shutdown { text }
            | Route::Reload { text, .. } => *text,
            Route::Logs { .. } => true,
        }
    }
}

type RouteError = (u16, String);

/// Maps a request line onto a route.
pub fn route(method: &str, target: &str) -> Result<Route, RouteError> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let q = Query::parse(query);
    let text = q.get("format") == Some("text");
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let need = |m: &str| {
        if method == m || (m == "GET" && method == "HEAD") {
            Ok(())
        } else {
            Err((405, format!("{path} takes {m}")))
        }
    };
    match parts.as_slice() {
        ["", "v1", "services"] => need("GET").map(|()| Route::Status {
            names: Vec::new(),
            text,
        }),
        ["", "v1", "services", names] => need("GET").map(|()| Route::Status {
            names: split_names(names),
            text,
        }),
        ["", "v1", "services", names, action] => {
            need("POST")?;
            act(action, split_names(names), &q, text)
        }
        ["", "v1", "logs"] => need("GET").and_then(|()| logs(&q)),
        ["", "v1", "shutdown"] => need("POST").map(|()| Route::Shutdown { text }),
        ["", "v1", "reload"] => {
            need("POST")?;
            Ok(Route::Reload {
                dry_run: flag(&q, "dry_run"),
                timeout: timeout(&q)?,
                text,
            })
        }
        _ => Err((404, format!("no such route: {path}"))),
    }
}

fn act(action: &str, names: Vec<String>, q: &Query, text: bool) -> Result<Route, RouteError> {
    let verb = match action {
        "start" => Verb::Start,
        "stop" => Verb::Stop,
        "restart" => Verb::Restart,
        "signal" => {
            let name = q
                .get("signal")
                .ok_or((400, "signal: give ?signal=NAME".to_string()))?;
            let sig = signal::parse(name)
                .ok_or_else(|| (400, format!("signal: unknown signal '{name}'")))?;
            Verb::Signal(sig)
        }
        _ => return Err((404, format!("no such action: {action}"))),
    };
    if names.is_empty() {
        return Err((400, "name at least one service".into()));
    }
    Ok(Route::Act {
        verb,
        names,
        wait: q.get("wait") != Some("0"),
        timeout: timeout(q)?,
        text,
    })
}

/// `timeout=`: how long a request waits for what it asked.
fn timeout(q: &Query) -> Result<Duration, RouteError> {
    match q.get("timeout") {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) => humantime::parse_duration(t)
            .ok()
            .filter(|d| *d <= MAX_TIMEOUT)
            .ok_or_else(|| (400, format!("timeout: '{t}' is not a duration up to 24h"))),
    }
}

fn logs(q: &Query) -> Result<Route, RouteError> {
    let lines = match q.get("n") {
        None => DEFAULT_LINES,
        Some(n) => n
            .parse()
            .map_err(|_| (400, format!("n: '{n}' is not a number of lines")))?,
    };
    Ok(Route::Logs {
        names: q.get("service").map(split_names).unwrap_or_default(),
        lines,
        follow: flag(q, "follow"),
    })
}

fn flag(q: &Query, key: &str) -> bool {
    matches!(q.get(key), Some("1" | "true" | "yes"))
}

fn split_names(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `a=1&b=x` with %XX decoding; the first of repeated keys wins.
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(q: &str) -> Query {
        let pairs = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Query { pairs }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves names to service indices, in the order given; the first
/// unknown one is an error (the whole request is rejected).
pub fn resolve(names: &[String], snap: &Snapshot) -> Result<Vec<usize>, String> {
    names
        .iter()
        .map(|n| {
            snap.services
                .iter()
                .find(|s| s.name == *n && !s.removed)
                .map(|s| s.id)
                .ok_or_else(|| format!("no such service: {n}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// A complete HTTP/1.1 response that closes the connection.
pub fn response(status: u16, text: bool, body: &str) -> Vec<u8> {
    response_bytes(status, text, body.as_bytes())
}

pub fn response_bytes(status: u16, text: bool, body: &[u8]) -> Vec<u8> {
    let ctype = if text {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The head of a streamed response (`logs -f`): no length, ends at close.
pub fn stream_head() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n".to_vec()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// An error as JSON `{"error": "..."}` or as a text line.
pub fn error(status: u16, text: bool, message: &str) -> Vec<u8> {
    if text {
        return response(status, true, &format!("{message}\n"));
    }
    let mut body = String::from("{\"error\":");
    crate::health::render::push_json_str(&mut body, message);
    body.push_str("}\n");
    response(status, false, &body)
}

/// The answer to a verb: 200 when every service did what was asked, 409
/// when one did not, 503 when the request was refused.
pub fn reply(reply: &Reply, snap: &Snapshot, text: bool) -> Vec<u8> {
    let name = |i: usize| {
        snap.services
            .iter()
            .find(|s| s.id == i)
            .map_or_else(|| format!("service {i}"), |s| s.name.clone())
    };
    let status = match (&reply.refused, reply.ok) {
        (Some(_), _) => 503,
        (None, true) => 200,
        (None, false) => 409,
    };
    if text {
        let mut body = String::new();
        if let Some(why) = &reply.refused {
            let _ = writeln!(body, "refused: {why}");
        }
        for o in &reply.services {
            let _ = writeln!(body, "{}: {}", name(o.service), o.detail);
        }
        for line in &reply.lines {
            let _ = writeln!(body, "{line}");
        }
        return response(status, true, &body);
    }
    let mut body = format!("{{\"ok\":{},\"refused\":", reply.ok);
    match &reply.refused {
        Some(why) => crate::health::render::push_json_str(&mut body, why),
        None => body.push_str("null"),
    }
    body.push_str(",\"services\":[");
    for (k, o) in reply.services.iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        body.push_str("{\"name\":");
        crate::health::render::push_json_str(&mut body, &name(o.service));
        let _ = write!(body, ",\"ok\":{},\"detail\":", o.ok);
        crate::health::render::push_json_str(&mut body, &o.detail);
        body.push('}');
    }
    body.push_str("],\"lines\":[");
    for (k, line) in reply.lines.iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        crate::health::render::push_json_str(&mut body, line);
    }
    body.push_str("]}\n");
    response(status, false, &body)
}

/// `status`: JSON (as `/status` of the health server) or an aligned table.
pub fn status(snap: &Snapshot, names: &[String], text: bool, now: Instant) -> Vec<u8> {
    let wanted: Vec<&ServiceView> = snap
        .services
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect();
    if !text {
        return response(200, false, &crate::health::render::status_json(snap, now));
    }
    response(200, true, &table(&wanted, now))
}

/// The status table a person reads at a glance.
pub fn table(services: &[&ServiceView], now: Instant) -> String {
    let header = [
        "NAME",
        "STATE",
        "WANTED",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "READY",
        "LIVENESS",
        "NOTIFY",
    ];
    let rows: Vec<[String; 10]> = services.iter().map(|s| row(s, now)).collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (k, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if k + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

fn row(s: &ServiceView, now: Instant) -> [String; 10] {
    let dash = || "-".to_string();
    [
        s.name.clone(),
        s.phase.as_str().to_string(),
        wanted_word(s).to_string(),
        s.pid.map_or_else(dash, |p| p.to_string()),
        s.since
            .filter(|_| s.pid.is_some())
            .map_or_else(dash, |t| human_duration(now.saturating_duration_since(t))),
        s.restarts.to_string(),
        s.last_exit.map_or_else(dash, exit_words),
        if is_ready(s) { "yes" } else { "no" }.to_string(),
        liveness_words(s.liveness),
        s.notify_status.clone().unwrap_or_else(dash),
    ]
}

/// `-` without a check; `failing 2` with the count in a row.
fn liveness_words(l: crate::core::snapshot::LivenessView) -> String {
    use crate::core::snapshot::LivenessView;
    match l {
        LivenessView::None => "-".to_string(),
        LivenessView::Failing(n) => format!("failing {n}"),
        other => other.as_str().to_string(),
    }
}

fn wanted_word(s: &ServiceView) -> &'static str {
    if s.wanted_up {
        "up"
    } else {
        "down"
    }
}

fn is_ready(s: &ServiceView) -> bool {
    s.ready
}

/// `exit 3`, `signal KILL`.
pub fn exit_words(e: ExitStatus) -> String {
    match e {
        ExitStatus::Code(c) => format!("exit {c}"),
        ExitStatus::Signal(s) => {
            let name = signal::name(s);
            format!("signal {}", name.strip_prefix("SIG").unwrap_or(&name))
        }
    }
}

/// `42s`, `3m05s`, `2h07m`, `5d03h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("GET", "/v1/services"),
            Ok(Route::Status {
                names: vec![],
                text: false
            })
        );
        assert_eq!(
            route(
                "POST",
                "/v1/services/web,db/restart?wait=0&timeout=10s&format=text"
            ),
            Ok(Route::Act {
                verb: Verb::Restart,
                names: vec!["web".into(), "db".into()],
                wait: false,
                timeout: Duration::from_secs(10),
                text: true
            })
        );
        assert_eq!(
            route("POST", "/v1/services/web/signal?signal=HUP").map(|r| r.verb_name()),
            Ok("signal")
        );
        assert_eq!(
            route("GET", "/v1/logs?service=a%2Cb&n=5&follow=1"),
            Ok(Route::Logs {
                names: vec!["a".into(), "b".into()],
                lines: 5,
                follow: true
            })
        );
        assert_eq!(
            route("GET", "/v1/services/web/stop").map(|_| ()),
            Err((405, "/v1/services/web/stop takes POST".into()))
        );
        assert_eq!(route("POST", "/v1/nope").map(|_| ()).unwrap_err().0, 404);
        assert_eq!(
            route("POST", "/v1/services/web/explode").unwrap_err().0,
            404
        );
        assert_eq!(
            route("POST", "/v1/services/web/signal?signal=NOPE")
                .unwrap_err()
                .0,
            400
        );
        assert_eq!(
            route("POST", "/v1/services/web/start?timeout=5years")
                .unwrap_err()
                .0,
            400
        );
        assert_eq!(route("POST", "/v1/services//start").unwrap_err().0, 400);
        assert_eq!(route("GET", "/v1/logs?n=lots").unwrap_err().0, 400);
    }

    #[test]
    fn who_may_do_what() {
        let status = route("GET", "/v1/services").unwrap();
        let logs = route("GET", "/v1/logs").unwrap();
        let stop = route("POST", "/v1/services/a/stop").unwrap();
        assert!(status.allowed(65534, 1000));
        assert!(!logs.allowed(65534, 1000));
        assert!(!stop.allowed(65534, 1000));
        assert!(stop.allowed(1000, 1000));
        assert!(stop.allowed(0, 1000));
        assert!(stop.changes() && !status.changes() && !logs.changes());
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(Duration::from_secs(42)), "42s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(human_duration(Duration::from_secs(7620)), "2h07m");
        assert_eq!(human_duration(Duration::from_secs(97200)), "1d03h");
        assert_eq!(exit_words(ExitStatus::Signal(9)), "signal KILL");
        assert_eq!(exit_words(ExitStatus::Code(3)), "exit 3");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Cb+c%zz"), "a,b c%zz");
    }
}
