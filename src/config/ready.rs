//! A service's `ready:` block: exactly one of `tcp: host:port`,
//! `http: http://host[:port][/path]` or `exec: [argv]`, with `interval` and
//! `timeout`. Turns it into the `ReadyCheck` the prober runs and the
//! `ProbePolicy` the core schedules with; https is refused (the probe speaks
//! plain HTTP inside the container).

use std::time::Duration;

use super::locate::Report;
use super::raw::{RawLiveness, RawReady, Scalar};
use super::validate::{positive_bounded, MAX_PROBE_DURATION};
use super::ReadyCheck;
use crate::core::types::{LivenessPolicy, ProbeKind, ProbePolicy};

/// A problem with a probe: the list item it is about (exec only), and a message.
type ProbeError = (Option<usize>, String);

/// The readiness check and its probe policy; `None` when there is a problem
/// (reported here, or by the shape check when the probe kind is missing).
pub fn ready(
    raw: &RawReady,
    name: &str,
    report: &mut Report,
) -> Option<(ReadyCheck, Option<ProbePolicy>)> {
    if let Some(on) = raw.sd_notify {
        return notify(raw, on, name, report).then_some((ReadyCheck::Notify, None));
    }
    if let Some(n) = raw.fd {
        return ready_fd(raw, n, name, report).map(|n| (ReadyCheck::Fd(n), None));
    }
    let second = Duration::from_secs(1);
    check(raw, "ready", (second, second), name, report).map(|(c, p)| (c, Some(p)))
}

/// The highest `ready: {fd: N}`: below any descriptor limit in use.
pub const MAX_READY_FD: i64 = 1023;

/// `ready: {fd: N}`: 3 or more (0-2 are the service's stdio; rinit hands
/// a service nothing else), and no polling keys.
fn ready_fd(raw: &RawReady, n: i64, name: &str, report: &mut Report) -> Option<i32> {
    if !(3..=MAX_READY_FD).contains(&n) {
        let message = format!("must be a descriptor from 3 to {MAX_READY_FD} (0, 1 and 2 are the service's stdin, stdout and stderr), found {n}");
        report.at_value(&["services", name, "ready", "fd"], message);
        return None;
    }
    no_polling(raw, name, report).then_some(n as i32)
}

/// `ready: {sd_notify: true}`: nothing to poll, so no `interval` or
/// `timeout` (`start_timeout` bounds the wait).
fn notify(raw: &RawReady, on: bool, name: &str, report: &mut Report) -> bool {
    let at = |key| ["services", name, "ready", key];
    if !on {
        let message = "must be `true`; for no readiness check leave `ready` out";
        report.at_value(&at("sd_notify"), message);
        return false;
    }
    no_polling(raw, name, report)
}

/// The service says when it is ready: `interval` and `timeout` mean nothing.
fn no_polling(raw: &RawReady, name: &str, report: &mut Report) -> bool {
    let at = |key| ["services", name, "ready", key];
    let timing = [("interval", &raw.interval), ("timeout", &raw.timeout)];
    for (key, value) in timing {
        if value.is_some() {
            let message = format!("`{key}` is for polled probes; this service says when it is ready (bound the wait with `start_timeout`)");
            report.at_key(&at(key), message);
            return false;
        }
    }
    true
}

/// `liveness:` (SPEC sections 4 and 12): a check as in `ready`, every
/// `interval` (10 s) with a `timeout` shorter than it (3 s, or half a
/// shorter interval), and
/// `failures` (3) consecutive failures make the service unhealthy.
pub fn liveness(
    raw: &RawLiveness,
    name: &str,
    report: &mut Report,
) -> Option<(ReadyCheck, LivenessPolicy)> {
    let at = |key| ["services", name, "liveness", key];
    // Without a `timeout`, at most half the interval: `interval: 2s` alone
    // is valid.
    let interval = raw
        .interval
        .as_ref()
        .and_then(|Scalar(t)| humantime::parse_duration(t).ok());
    let interval = interval.unwrap_or(Duration::from_secs(10));
    let defaults = (interval, Duration::from_secs(3).min(interval / 2));
    let (check, probe) = check(&raw.check(), "liveness", defaults, name, report)?;
    if probe.timeout >= probe.interval {
        let message = format!(
            "must be shorter than `interval` ({:?}): one check runs at a time, so a check that may take the whole interval delays the next",
            probe.interval
        );
        report.at_value(&at("timeout"), message);
        return None;
    }
    let failures = match raw.failures {
        None => 3,
        Some(n) if (1..=MAX_LIVENESS_FAILURES as i64).contains(&n) => n as u32,
        Some(n) => {
            let message = format!(
                "must be from 1 to {MAX_LIVENESS_FAILURES} consecutive failures, found {n}"
            );
            report.at_value(&at("failures"), message);
            return None;
        }
    };
    Some((check, LivenessPolicy { probe, failures }))
}

/// The largest `liveness.failures`.
pub const MAX_LIVENESS_FAILURES: u32 = 1000;

/// A check under `services.NAME.KEY` with `defaults` for (interval, timeout).
fn check(
    raw: &RawReady,
    key: &str,
    defaults: (Duration, Duration),
    name: &str,
    report: &mut Report,
) -> Option<(ReadyCheck, ProbePolicy)> {
    let at = |sub| ["services", name, key, sub];
    // A day at most: a probe that waits longer is a typo, not a policy.
    let max = MAX_PROBE_DURATION;
    let interval = positive_bounded(raw.interval.as_ref(), max, &at("interval"), report);
    let timeout = positive_bounded(raw.timeout.as_ref(), max, &at("timeout"), report);
    let (interval, timeout) = (
        interval.unwrap_or(defaults.0),
        timeout.unwrap_or(defaults.1),
    );
    // Exactly one of them is set, or the shape check reported it.
    let (kind, check) = match (&raw.tcp, &raw.http, &raw.exec) {
        (Some(Scalar(addr)), _, _) => {
            let check = host_port(addr).map(|(host, port)| ReadyCheck::Tcp { host, port });
            ("tcp", check)
        }
        (_, Some(Scalar(url)), _) => ("http", http_url(url)),
        (_, _, Some(argv)) => ("exec", exec_probe(argv)),
        _ => return None,
    };
    match check {
        Ok(ReadyCheck::Notify) => None,
        Ok(check) => {
            let kind = match check {
                ReadyCheck::Exec(_) => ProbeKind::Exec,
                _ => ProbeKind::Network,
            };
            let probe = ProbePolicy {
                kind,
                interval,
                timeout,
            };
            Some((check, probe))
        }
        Err((Some(item), message)) => {
            report.at_item(&at(kind), item, message);
            None
        }
        Err((None, message)) => {
            report.at_value(&at(kind), message);
            None
        }
    }
}

fn exec_probe(argv: &[Scalar]) -> Result<ReadyCheck, ProbeError> {
    match argv.first() {
        None => Err((
            None,
            "`exec` is an empty list; give the probe command as [program, args...]".into(),
        )),
        Some(Scalar(program)) if program.trim().is_empty() => Err((
            Some(0),
            "the probe program (first item of `exec`) is empty".into(),
        )),
        Some(_) => Ok(ReadyCheck::Exec(
            argv.iter().map(|Scalar(a)| a.clone()).collect(),
        )),
    }
}

/// `host:port` or `[v6]:port`; the host is kept without brackets.
fn host_port(text: &str) -> Result<(String, u16), ProbeError> {
    let bad = |why: &str| Err((None, format!("`{text}` is not a host:port address: {why}")));
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once("]:") {
            Some(pair) => pair,
            None => return bad("write an IPv6 address as [address]:port"),
        },
        None => match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return bad("put an IPv6 address in brackets, like [::1]:8080")
            }
            Some(pair) => pair,
            None => return bad("no port"),
        },
    };
    let odd = |c: char| c.is_whitespace() || matches!(c, '/' | '@' | '[' | ']');
    if host.is_empty() || host.chars().any(odd) {
        return bad("no valid host");
    }
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok((host.to_string(), port)),
        _ => bad("the port must be a number from 1 to 65535"),
    }
}

/// `http://host[:port][/path][?query]`; the port defaults to 80, the path to `/`.
fn http_url(url: &str) -> Result<ReadyCheck, ProbeError> {
    let bad = |why: &str| Err((None, format!("`{url}` {why}")));
    if url.starts_with("https://") {
        return bad("uses https, which the http probe does not speak; probe a plain http port inside the container, or use an `exec` probe");
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return bad("is not an http URL; write it http://host[:port][/path]");
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let path = match path.strip_prefix('?') {
        Some(_) => format!("/{path}"),
        None => path.to_string(),
    };
    if path.chars().any(char::is_whitespace) {
        return bad("has spaces in its path; encode them as %20");
    }
    if authority.contains('@') {
        return bad("has credentials, which the probe does not support");
    }
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    let (host, port) = if has_port {
        host_port(authority)?
    } else {
        match authority.trim_start_matches('[').trim_end_matches(']') {
            "" => return bad("has no host"),
            host => (host.to_string(), 80),
        }
    };
    Ok(ReadyCheck::Http { host, port, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(host: &str, port: u16, path: &str) -> ReadyCheck {
        ReadyCheck::Http {
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn parses_host_port() {
        assert_eq!(host_port("127.0.0.1:5432"), Ok(("127.0.0.1".into(), 5432)));
        assert_eq!(host_port("db:5432"), Ok(("db".into(), 5432)));
        assert_eq!(host_port("[::1]:80"), Ok(("::1".into(), 80)));
        for bad in [
            "5432", ":80", "h:0", "h:70000", "h:x", "::1:80", "[::1]80", "a b:1",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_http_urls() {
        let url = http_url("http://127.0.0.1:8080/ping");
        assert_eq!(url, Ok(http("127.0.0.1", 8080, "/ping")));
        assert_eq!(http_url("http://app"), Ok(http("app", 80, "/")));
        assert_eq!(http_url("http://app?x=1"), Ok(http("app", 80, "/?x=1")));
        assert_eq!(http_url("http://[::1]:81/a#f"), Ok(http("::1", 81, "/a")));
        assert_eq!(http_url("http://[::1]/"), Ok(http("::1", 80, "/")));
    }

    #[test]
    fn refuses_bad_urls() {
        let https = http_url("https://app/").unwrap_err().1;
        assert!(https.contains("uses https"), "{https}");
        for bad in [
            "app:80",
            "http://",
            "http://u@app/",
            "http://app:0/",
            "http://a/b c",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checks_exec_argv() {
        let argv = |v: &[&str]| v.iter().map(|a| Scalar(a.to_string())).collect::<Vec<_>>();
        assert_eq!(
            exec_probe(&argv(&["pg_isready"])),
            Ok(ReadyCheck::Exec(vec!["pg_isready".into()]))
        );
        assert_eq!(exec_probe(&argv(&[])).unwrap_err().0, None);
        assert_eq!(exec_probe(&argv(&["", "x"])).unwrap_err().0, Some(0));
    }
}
