//! Tests of the rendered bodies: JSON shapes through a strict JSON parser,
//! metrics through a strict checker of the text exposition format 0.0.4.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::*;
use crate::health::json_check::{self, Json};

fn view(name: &str, phase: Phase) -> ServiceView {
    ServiceView {
        id: 0,
        removed: false,
        name: name.to_string(),
        phase,
        pid: None,
        restarts: 0,
        last_exit: None,
        since: None,
        critical: true,
        wanted_up: phase != Phase::Down,
        restarts_operator: 0,
        ready: matches!(phase, Phase::Running | Phase::Done),
        ever_ready: matches!(phase, Phase::Running | Phase::Done),
        liveness: crate::core::snapshot::LivenessView::None,
        liveness_failures_total: 0,
        notify_status: None,
    }
}

/// A snapshot with one service in every phase, and awkward names.
fn every_phase(now: Instant) -> Snapshot {
    let mut snap = Snapshot::empty();
    for (i, phase) in Phase::ALL.into_iter().enumerate() {
        let mut s = view(&format!("svc-{}", phase.as_str()), phase);
        s.restarts = i as u32;
        if matches!(phase, Phase::Starting | Phase::Running | Phase::Stopping) {
            s.pid = Some(100 + i as i32);
            s.since = Some(now - Duration::from_millis(1500));
        }
        s.last_exit = match phase {
            Phase::Backoff => Some(ExitStatus::Code(1)),
            Phase::Failed => Some(ExitStatus::Signal(9)),
            _ => None,
        };
        snap.services.push(s);
    }
    let mut odd = view("we\"b\\1\nnext\u{1}é", Phase::Running);
    odd.pid = Some(7);
    odd.since = Some(now);
    snap.services.push(odd);
    snap.reaped_total = 42;
    snap.orphans_reaped = 5;
    snap
}

fn json(text: &str) -> Json {
    json_check::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn healthz_ok_and_failing_shapes() {
    let mut snap = Snapshot::empty();
    snap.services.push(view("db", Phase::Running));
    let (ok, body) = check_json(Check::Health, &snap);
    assert!(ok);
    assert_eq!(
        body,
        r#"{"status":"ok","shutting_down":false,"failing":[]}"#
    );

    let mut web = view("web", Phase::Backoff);
    web.last_exit = Some(ExitStatus::Code(1));
    snap.services.push(web);
    let (ok, body) = check_json(Check::Health, &snap);
    assert!(!ok);
    assert_eq!(
        body,
        r#"{"status":"unhealthy","shutting_down":false,"failing":[{"name":"web","state":"backoff","last_exit":{"code":1}}]}"#
    );
    snap.services[1].phase = Phase::Failed;
    snap.services[1].last_exit = Some(ExitStatus::Signal(9));
    let (_, body) = check_json(Check::Health, &snap);
    let failing = json(&body).get("failing").arr()[0].clone();
    let exit = failing.get("last_exit");
    assert_eq!(exit.get("signal").str(), "SIGKILL");
    assert_eq!(exit.get("number"), &Json::Num(9.0));
}

#[test]
fn readyz_names_what_is_not_ready() {
    let mut snap = Snapshot::empty();
    snap.services.push(view("db", Phase::Running));
    snap.services.push(view("init", Phase::Done));
    snap.services.push(view("web", Phase::Starting));
    let (ok, body) = check_json(Check::Ready, &snap);
    assert!(!ok);
    let doc = json(&body);
    assert_eq!(doc.get("status").str(), "not_ready");
    let names: Vec<&str> = doc
        .get("failing")
        .arr()
        .iter()
        .map(|f| f.get("name").str())
        .collect();
    assert_eq!(names, ["web"]);
    assert_eq!(doc.get("failing").arr()[0].get("last_exit"), &Json::Null);
}

#[test]
fn verdicts_agree_with_the_named_services() {
    // The failing list is empty exactly when only a shutdown can fail the check.
    for phase in Phase::ALL {
        for shutting_down in [false, true] {
            let mut snap = Snapshot::empty();
            snap.services.push(view("a", Phase::Running));
            snap.services.push(view("b", phase));
            snap.shutting_down = shutting_down;
            for check in [Check::Health, Check::Ready] {
                let (ok, body) = check_json(check, &snap);
                let doc = json(&body);
                let failing = doc.get("failing").arr();
                assert_eq!(ok, failing.is_empty() && !shutting_down, "{check:?} {body}");
                assert_eq!(doc.get("shutting_down"), &Json::Bool(shutting_down));
            }
        }
    }
}

#[test]
fn status_lists_every_service() {
    let now = Instant::now();
    let snap = every_phase(now);
    let body = status_json(&snap, now);
    let doc = json(&body);
    assert_eq!(
        doc.keys(),
        [
            "healthy",
            "main_pid",
            "orphans_reaped",
            "ready",
            "reaped_total",
            "services",
            "shutting_down"
        ]
    );
    assert_eq!(doc.get("reaped_total"), &Json::Num(42.0));
    let services = doc.get("services").arr();
    assert_eq!(services.len(), snap.services.len());
    for (s, v) in services.iter().zip(&snap.services) {
        assert_eq!(
            s.keys(),
            [
                "critical",
                "last_exit",
                "liveness",
                "name",
                "notify_status",
                "pid",
                "ready",
                "restarts",
                "restarts_operator",
                "started_at",
                "state",
                "uptime_seconds",
                "wanted"
            ]
        );
        assert_eq!(s.get("name").str(), v.name);
        assert_eq!(s.get("ready"), &Json::Bool(v.ready));
        assert_eq!(s.get("liveness").get("state").str(), "none");
        if v.pid.is_some() && v.since.is_some() {
            let at = s.get("started_at").str();
            assert!(at.len() == 24 && at.ends_with('Z'), "{at}");
        }
        let wanted = if v.wanted_up { "up" } else { "down" };
        assert_eq!(s.get("wanted").str(), wanted);
        assert_eq!(
            s.get("restarts_operator"),
            &Json::Num(f64::from(v.restarts_operator))
        );
        assert_eq!(s.get("state").str(), v.phase.as_str());
        assert_eq!(s.get("restarts"), &Json::Num(f64::from(v.restarts)));
        match (v.pid, s.get("uptime_seconds")) {
            (None, up) => assert_eq!(up, &Json::Null),
            (Some(_), Json::Num(up)) => assert!(*up >= 0.0 && *up < 10.0, "{up}"),
            (Some(_), other) => panic!("uptime {other:?}"),
        }
    }
    let running = &services[2];
    assert_eq!(running.get("pid"), &Json::Num(102.0));
    assert_eq!(running.get("uptime_seconds"), &Json::Num(1.5));
    assert_eq!(services[3].get("last_exit").get("code"), &Json::Num(1.0));
}

#[test]
fn json_strings_escape_everything_needed() {
    let mut out = String::new();
    push_json_str(&mut out, "a\"b\\c\nd\re\tf\u{0}g\u{1f}h/é\u{7f}");
    assert_eq!(
        json(&out),
        Json::Str("a\"b\\c\nd\re\tf\u{0}g\u{1f}h/é\u{7f}".into())
    );
}

/// The strict exposition-format checker: returns every sample as
/// (name, labels, value), or the first violation.
fn check_exposition(text: &str) -> Result<Vec<Sample>, String> {
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut help = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut finished = HashSet::new();
    let mut current: Option<String> = None;
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, arg) = (parts.next(), parts.next(), parts.next());
            let name = name.ok_or(format!("bare comment: {line}"))?.to_string();
            check_metric_name(&name)?;
            if seen.iter().any(|(n, _): &(String, String)| *n == name) {
                return Err(format!("{kw:?} after samples of {name}"));
            }
            match (kw, arg) {
                (Some("HELP"), Some(_)) if help.insert(name.clone()) => {}
                (Some("TYPE"), Some(t)) if !types.contains_key(&name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(format!("bad type {t}"));
                    }
                    if t == "counter" && !name.ends_with("_total") {
                        return Err(format!("counter {name} lacks _total"));
                    }
                    types.insert(name, t.to_string());
                }
                _ => return Err(format!("bad or repeated comment: {line}")),
            }
            continue;
        }
        let (name, labels, value) = parse_sample(line)?;
        if !help.contains(&name) || !types.contains_key(&name) {
            return Err(format!("sample before HELP and TYPE: {line}"));
        }
        if current.as_deref() != Some(name.as_str()) {
            if finished.contains(&name) {
                return Err(format!("samples of {name} are not contiguous"));
            }
            if let Some(prev) = current.replace(name.clone()) {
                finished.insert(prev);
            }
        }
        let mut key_labels = labels.clone();
        key_labels.sort();
        if !seen.insert((name.clone(), format!("{key_labels:?}"))) {
            return Err(format!("duplicate sample: {line}"));
        }
        samples.push((name, labels, value));
    }
    Ok(samples)
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let ok = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if ok && !name.is_empty() {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

/// A label set, in the order written.
type Labels = Vec<(String, String)>;
/// One sample line: name, labels, value.
type Sample = (String, Labels, f64);

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or(format!("no value: {line}"))?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or(format!("no space before value: {line}"))?;
    let mut fields = value.split(' ');
    let number = fields.next().unwrap_or("");
    let v: f64 = match number {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        n => n.parse().map_err(|_| format!("bad value {n:?}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err(format!("trailing fields: {line}"));
    }
    Ok((name.to_string(), labels, v))
}

/// `a="x",b="y"}` after the `{`; returns the labels and what follows `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = &s[..eq];
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("repeated label {name}"));
        }
        let mut chars = s[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break eq + 1 + i + 1,
                (_, '\\') => match chars.next().ok_or("dangling backslash")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("raw newline in label value".into()),
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        s = &s[end..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

#[test]
fn the_exposition_checker_rejects_what_it_should() {
    let head = "# HELP m x\n# TYPE m gauge\n";
    assert!(check_exposition(&format!("{head}m{{a=\"1\"}} 1\n")).is_ok());
    for bad in [
        "m 1\n".to_string(),
        format!("{head}m 1"),
        format!("{head}m 1\nm 2\n"),
        format!("{head}m{{a=\"x\\q\"}} 1\n"),
        format!("{head}m{{a=\"x}} 1\n"),
        format!("{head}m{{1a=\"x\"}} 1\n"),
        format!("{head}m one\n"),
        format!("{head}m{{a=\"1\",a=\"2\"}} 1\n"),
        "# HELP c x\n# TYPE c counter\nc 1\n".to_string(),
        format!("{head}# HELP n x\n# TYPE n gauge\nm{{a=\"1\"}} 1\nn 1\nm{{a=\"2\"}} 1\n"),
    ] {
        assert!(check_exposition(&bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn metrics_are_valid_exposition_text() {
    let now = Instant::now();
    let mut snap = every_phase(now);
    snap.shutting_down = true;
    let text = metrics_text(&snap, &crate::health::http::Extras::default());
    let samples = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let found = samples.iter().find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&(k.to_string(), v.to_string())))
        });
        found.unwrap_or_else(|| panic!("no {name} {labels:?}")).2
    };
    let odd = "we\"b\\1\nnext\u{1}é";
    assert_eq!(value("rinit_service_up", &[("service", odd)]), 1.0);
    assert_eq!(
        value("rinit_service_up", &[("service", "svc-backoff")]),
        0.0
    );
    assert_eq!(
        value(
            "rinit_service_state",
            &[("service", "svc-backoff"), ("state", "backoff")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "rinit_service_state",
            &[("service", "svc-backoff"), ("state", "running")]
        ),
        0.0
    );
    assert_eq!(
        value("rinit_service_restarts_total", &[("service", "svc-failed")]),
        4.0
    );
    assert_eq!(
        value(
            "rinit_service_state",
            &[("service", "svc-down"), ("state", "down")]
        ),
        1.0
    );
    assert_eq!(
        value("rinit_service_ready", &[("service", "svc-running")]),
        1.0
    );
    assert_eq!(
        value("rinit_service_ready", &[("service", "svc-done")]),
        1.0
    );
    assert_eq!(
        value("rinit_service_ready", &[("service", "svc-down")]),
        0.0
    );
    assert_eq!(
        value("rinit_service_ready", &[("service", "svc-starting")]),
        0.0
    );
    assert_eq!(value("rinit_zombies_reaped_total", &[]), 42.0);
    assert_eq!(value("rinit_orphans_reaped_total", &[]), 5.0);
    assert_eq!(value("rinit_shutting_down", &[]), 1.0);
    let states = samples
        .iter()
        .filter(|(n, _, _)| n == "rinit_service_state")
        .count();
    assert_eq!(states, snap.services.len() * Phase::ALL.len());
    for s in &snap.services {
        let ones = samples
            .iter()
            .filter(|(n, l, v)| n == "rinit_service_state" && l[0].1 == s.name && *v == 1.0)
            .count();
        assert_eq!(ones, 1, "{}", s.name);
    }
}

#[test]
fn metrics_of_an_empty_snapshot_are_valid() {
    let text = metrics_text(&Snapshot::empty(), &crate::health::http::Extras::default());
    let samples = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // Reaped, orphans, shutting down, notify ignored, and dropped output
    // per stream.
    assert_eq!(samples.len(), 6);
}

#[test]
fn a_down_service_fails_neither_check_and_shows_as_wanted_down() {
    let now = Instant::now();
    let mut snap = Snapshot::empty();
    snap.services.push(view("db", Phase::Running));
    let mut web = view("web", Phase::Down);
    web.last_exit = Some(ExitStatus::Signal(15));
    web.restarts_operator = 2;
    snap.services.push(web);
    for check in [Check::Health, Check::Ready] {
        let (ok, body) = check_json(check, &snap);
        assert!(ok, "{check:?} {body}");
        assert!(json(&body).get("failing").arr().is_empty());
    }
    let doc = json(&status_json(&snap, now));
    let web = &doc.get("services").arr()[1];
    assert_eq!(web.get("state").str(), "down");
    assert_eq!(web.get("wanted").str(), "down");
    assert_eq!(web.get("ready"), &Json::Bool(false));
    assert_eq!(web.get("restarts_operator"), &Json::Num(2.0));
    assert_eq!(doc.get("services").arr()[0].get("wanted").str(), "up");
    // Down is not ready, but readiness does not wait for it.
    assert_eq!(doc.get("ready"), &Json::Bool(true));
}
