//! The HTTP endpoints end to end (SPEC section 7, issue 4): the real rinit
//! runs as PID 1 of a fresh PID namespace (sharing the host's network), with
//! `health.listen` on a free loopback port, and the tests talk to it over
//! TCP with a small hand-written HTTP/1.0 client, one fresh connection per
//! request. Pids in `/status` are the namespace's; the tests map them to the
//! host's through `/proc/PID/status` (`NSpid:`).
//!
//! Every wait is bounded (`wait_for` with a deadline, socket timeouts);
//! every process is killed by pid when its `Instance` is dropped. Tests
//! that measure time or put load on the machine take the `serial()` lock so
//! that they do not disturb each other.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");
/// The bound on any wait for something that should happen "soon".
const LONG: Duration = Duration::from_secs(20);
/// The bound on one HTTP exchange of the test's client.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serialises the tests that measure latencies or load the machine.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Starting rinit
// ---------------------------------------------------------------------------

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A running rinit and the loopback address of its HTTP server.
struct Rinit {
    inst: Instance,
    addr: SocketAddr,
    port: u16,
    /// The config file rinit runs with.
    conf: std::path::PathBuf,
}

impl Rinit {
    /// The host's view of the process whose pid in rinit's namespace is
    /// `ns_pid` (rinit itself excluded).
    fn proc_of(&self, ns_pid: i64) -> Option<ProcInfo> {
        self.inst
            .processes()
            .into_iter()
            .find(|p| p.nspid.len() >= 2 && p.nspid.last().map(|&n| i64::from(n)) == Some(ns_pid))
    }
}

/// Writes `yaml` to the test dir (`{d}` is the test dir, `{port}` a free
/// port), starts rinit on it as PID 1 and waits until the HTTP server
/// answers. `launch` may add wrappers. Retries with another port if the
/// chosen one was taken in between. None when no PID namespace is possible.
fn start_with(dir: &TestDir, yaml: &str, launch: impl Fn(Launch) -> Launch) -> Option<Rinit> {
    for attempt in 0..3 {
        let port = free_port();
        let text = yaml
            .replace("{d}", &dir.path().display().to_string())
            .replace("{port}", &port.to_string());
        let conf = format!("rinit-{attempt}.yaml");
        dir.write(&conf, text.as_bytes());
        let mut inst = launch(Launch::new(RINIT).arg("-c").arg(dir.join(&conf))).start_pid1(dir)?;
        let addr = loopback(port);
        // Our own rinit bound the port (not another test's on the same
        // number), then its server answers.
        let bound = format!(":{port}");
        let up = wait_for(LONG, || {
            let err = inst.stderr();
            err.lines()
                .any(|l| l.contains("serving health on") && l.ends_with(&bound))
                || inst.poll_exit().is_some()
        }) && wait_for(LONG, || {
            get(addr, "/status").is_ok() || inst.poll_exit().is_some()
        });
        if up && inst.poll_exit().is_none() {
            return Some(Rinit {
                inst,
                addr,
                port,
                conf: dir.join(&conf),
            });
        }
        let err = inst.stderr();
        if !err.contains("in use") {
            panic!("rinit did not start serving HTTP on {addr}; stderr:\n{err}");
        }
    }
    panic!("no free port after 3 attempts");
}

fn start(dir: &TestDir, yaml: &str) -> Option<Rinit> {
    start_with(dir, yaml, |l| l)
}

// ---------------------------------------------------------------------------
// A small HTTP/1.0 client
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Json {
        Json::parse(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Reads until the peer closes (rinit always answers `Connection: close`)
/// or `deadline` passes.
fn read_until_eof(s: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no end of response in time ({} bytes)", out.len()));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read after {} bytes: {e}", out.len())),
        }
    }
}

/// Sends `request` on a fresh connection and returns every byte answered.
fn exchange(addr: SocketAddr, request: &[u8], within: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + within;
    let mut s = TcpStream::connect_timeout(&addr, within).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    s.set_write_timeout(Some(within))
        .map_err(|e| e.to_string())?;
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    read_until_eof(&mut s, deadline)
}

/// A complete response: status line, headers, and exactly Content-Length
/// bytes of body (none for a HEAD request).
fn parse_response(raw: &[u8], head_request: bool) -> Result<Response, String> {
    let text = String::from_utf8_lossy(raw);
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!("incomplete response head: {text:?}"));
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| format!("non-UTF-8 head: {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let body = &raw[end + 4..];
    let response = Response {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).map_err(|_| format!("non-UTF-8 body: {text:?}"))?,
    };
    let length: usize = response
        .header("Content-Length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no Content-Length: {text:?}"))?;
    let want = if head_request { 0 } else { length };
    if body.len() != want {
        return Err(format!(
            "body of {} bytes, wanted {want} (Content-Length {length}): {text:?}",
            body.len()
        ));
    }
    Ok(response)
}

fn request(addr: SocketAddr, method: &str, path: &str) -> Result<Response, String> {
    let req = format!("{method} {path} HTTP/1.0\r\nHost: rinit-test\r\n\r\n");
    let raw = exchange(addr, req.as_bytes(), IO_TIMEOUT)?;
    parse_response(&raw, method == "HEAD")
}

fn get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    request(addr, "GET", path)
}

/// GET that must succeed.
fn must_get(addr: SocketAddr, path: &str) -> Response {
    get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Waits until GET `path` answers `status`; that response.
fn wait_status(addr: SocketAddr, path: &str, status: u16, within: Duration) -> Response {
    let mut last = None;
    let found = wait_for_some(within, || {
        let r = get(addr, path);
        let hit = matches!(&r, Ok(resp) if resp.status == status);
        last = Some(r);
        if hit {
            last.take().and_then(Result::ok)
        } else {
            None
        }
    });
    found.unwrap_or_else(|| {
        panic!("GET {path} never answered {status} within {within:?}; last: {last:?}")
    })
}

// ---------------------------------------------------------------------------
// JSON, just enough to read rinit's answers strictly
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

static NULL: Json = Json::Null;

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    /// The member `key` of an object (Null if absent or not an object).
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(members) => members
                .iter()
                .find(|(k, _)| k == key)
                .map_or(&NULL, |(_, v)| v),
            _ => &NULL,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Json::Num(n) if n.fract() == 0.0 => Some(*n as i64),
            _ => None,
        }
    }

    fn bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn items(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            _ => &[],
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", b as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            other => Err(format!(
                "unexpected {:?} at byte {}",
                other.map(char::from),
                self.i
            )),
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(format!("bad literal at byte {}", self.i))
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.expect(b'{')?;
        let mut members = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Json::Obj(members));
        }
        loop {
            self.ws();
            let key = self.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                return Err(format!("duplicate key {key:?}"));
            }
            self.expect(b':')?;
            members.push((key, self.value()?));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Obj(members));
                }
                _ => return Err(format!("expected , or }} at byte {}", self.i)),
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Json::Arr(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                _ => return Err(format!("expected , or ] at byte {}", self.i)),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or("unterminated escape")?;
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                            let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                            let n = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            self.i += 4;
                            char::from_u32(n).unwrap_or('\u{fffd}')
                        }
                        other => return Err(format!("bad escape \\{}", other as char)),
                    };
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                c if c < 0x20 => return Err(format!("raw control byte {c:#x} in a string")),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".to_string())
    }

    /// RFC 8259 numbers only: `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - from
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else if digits(self) == 0 {
            return Err(format!("bad number at byte {start}"));
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(format!("bad fraction at byte {start}"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(format!("bad exponent at byte {start}"));
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        text.parse()
            .map(Json::Num)
            .map_err(|e| format!("{text}: {e}"))
    }
}

// ---------------------------------------------------------------------------
// /status helpers
// ---------------------------------------------------------------------------

fn status(addr: SocketAddr) -> Json {
    let r = must_get(addr, "/status");
    assert_eq!(r.status, 200, "/status: {r:?}");
    r.json()
}

fn service<'a>(status: &'a Json, name: &str) -> Option<&'a Json> {
    status
        .get("services")
        .items()
        .iter()
        .find(|s| s.get("name").str() == Some(name))
}

fn state_of(addr: SocketAddr, name: &str) -> Option<String> {
    service(&status(addr), name).and_then(|s| s.get("state").str().map(String::from))
}

/// `(name, state)` of each service a /healthz or /readyz body blames.
fn failing(body: &Json) -> BTreeMap<String, String> {
    body.get("failing")
        .items()
        .iter()
        .map(|f| {
            (
                f.get("name").str().unwrap_or("?").to_string(),
                f.get("state").str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn cmdline(host_pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{host_pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Waits until `/status` shows `name` running with a pid other than `not`
/// whose process is alive (not a zombie) and runs `argv0`; (namespace pid,
/// host pid).
fn live_service(r: &Rinit, name: &str, argv0: &str, not: Option<i64>) -> (i64, i32) {
    wait_for_some(LONG, || {
        let st = status(r.addr);
        let svc = service(&st, name)?;
        if svc.get("state").str()? != "running" {
            return None;
        }
        let ns = svc.get("pid").int()?;
        if Some(ns) == not {
            return None;
        }
        let p = r.proc_of(ns)?;
        let argv = cmdline(p.pid);
        (!p.is_zombie() && argv.first().map(String::as_str) == Some(argv0)).then_some((ns, p.pid))
    })
    .unwrap_or_else(|| {
        panic!(
            "{name} never showed up running (other than pid {not:?}); /status: {:?}; stderr:\n{}",
            must_get(r.addr, "/status").body,
            r.inst.stderr()
        )
    })
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(samples: &[Duration]) -> (Duration, Duration, Duration, Duration) {
    let mut v = samples.to_vec();
    v.sort();
    (
        v[0],
        percentile(&v, 50.0),
        percentile(&v, 99.0),
        v[v.len() - 1],
    )
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------
// 1. kill -9 -> 503
// ---------------------------------------------------------------------------

#[test]
fn kill_9_turns_healthz_503_within_milliseconds() {
    let _serial = serial();
    let dir = TestDir::new("http-kill9");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  victim:
    command: ["sleep", "1000"]
    restart: always
    backoff: { initial: 300ms, max: 300ms }
    max_restarts: { count: 1000, within: 60s }
  bystander:
    command: ["sleep", "1001"]
"#;
    let Some(r) = start(&dir, yaml) else { return };
    wait_status(r.addr, "/healthz", 200, LONG);

    // What one request costs by itself: the floor of every measurement.
    let mut rtt = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(must_get(r.addr, "/healthz").status, 200);
        rtt.push(t.elapsed());
    }

    let mut delays = Vec::new();
    let mut polls_total = 0;
    let mut last = None;
    for round in 0..20 {
        let (ns, host) = live_service(&r, "victim", "sleep", last);
        last = Some(ns);
        wait_status(r.addr, "/healthz", 200, LONG);
        let t0 = Instant::now();
        assert!(kill(host, libc::SIGKILL), "kill -9 {host}");
        let mut polls = 0;
        let resp = loop {
            let resp = get(r.addr, "/healthz")
                .unwrap_or_else(|e| panic!("round {round}: /healthz after kill: {e}"));
            polls += 1;
            if resp.status == 503 {
                break resp;
            }
            assert_eq!(resp.status, 200, "round {round}: {resp:?}");
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "round {round}: /healthz still 200 three seconds after kill -9 of victim"
            );
        };
        let delay = t0.elapsed();
        delays.push(delay);
        polls_total += polls;
        let body = resp.json();
        assert_eq!(body.get("status").str(), Some("unhealthy"), "{body:?}");
        let blamed = &body.get("failing").items();
        assert_eq!(blamed.len(), 1, "only victim is to blame: {body:?}");
        assert_eq!(blamed[0].get("name").str(), Some("victim"), "{body:?}");
        assert_eq!(blamed[0].get("state").str(), Some("backoff"), "{body:?}");
        assert_eq!(
            blamed[0].get("last_exit").get("signal").str(),
            Some("SIGKILL"),
            "{body:?}"
        );
    }

    let (rmin, rmed, rp99, rmax) = summary(&rtt);
    let (min, med, p99, max) = summary(&delays);
    eprintln!(
        "one /healthz request (fresh connection), 50 samples: min {} median {} p99 {} max {}",
        ms(rmin),
        ms(rmed),
        ms(rp99),
        ms(rmax)
    );
    eprintln!(
        "kill -9 -> first 503 on /healthz, {} rounds ({} polls): min {} median {} p99 {} max {}",
        delays.len(),
        polls_total,
        ms(min),
        ms(med),
        ms(p99),
        ms(max)
    );
    let mut sorted = delays.clone();
    sorted.sort();
    eprintln!(
        "all delays: {}",
        sorted.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
    );
    assert!(max < Duration::from_millis(500), "a 503 took {}", ms(max));
    assert!(med < Duration::from_millis(50), "median {}", ms(med));
}

// ---------------------------------------------------------------------------
// 2. 503 for backoff, failed, shutdown; /readyz and probes; /status pids
// ---------------------------------------------------------------------------

#[test]
fn healthz_names_services_in_backoff_and_failed() {
    let dir = TestDir::new("http-backoff-failed");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  steady:
    command: ["sleep", "1000"]
  crashy:
    command: "exit 3"
    restart: always
    backoff: { initial: 30s, max: 30s }
    critical: false
  broken:
    command: "exit 1"
    restart: never
    critical: false
"#;
    let Some(mut r) = start(&dir, yaml) else {
        return;
    };
    let want: BTreeMap<String, String> = [("crashy", "backoff"), ("broken", "failed")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let resp = wait_for_some(LONG, || {
        let resp = must_get(r.addr, "/healthz");
        (resp.status == 503 && failing(&resp.json()) == want).then_some(resp)
    })
    .unwrap_or_else(|| {
        panic!(
            "never 503 for crashy+broken: {:?}",
            must_get(r.addr, "/healthz")
        )
    });
    let body = resp.json();
    assert_eq!(body.get("status").str(), Some("unhealthy"));
    assert_eq!(body.get("shutting_down").bool(), Some(false));
    for f in body.get("failing").items() {
        let code = f.get("last_exit").get("code").int();
        match f.get("name").str() {
            Some("crashy") => assert_eq!(code, Some(3), "{body:?}"),
            Some("broken") => assert_eq!(code, Some(1), "{body:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    assert_eq!(resp.header("Cache-Control"), Some("no-store"));

    // /readyz blames the same two, not the running one.
    let ready = must_get(r.addr, "/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(failing(&ready.json()), want, "{}", ready.body);
    assert_eq!(ready.json().get("status").str(), Some("not_ready"));

    // A non-critical failure leaves rinit (and the healthy service) running.
    assert_eq!(state_of(r.addr, "steady").as_deref(), Some("running"));
    assert!(r.inst.poll_exit().is_none(), "rinit exited");
}

#[test]
fn readyz_is_503_until_the_readiness_probe_passes() {
    let dir = TestDir::new("http-readyz-probe");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  plain:
    command: ["sleep", "1000"]
  gated:
    command: ["sleep", "1001"]
    ready: { exec: ["test", "-f", "{d}/go"], interval: 50ms, timeout: 1s }
"#;
    let Some(r) = start(&dir, yaml) else { return };
    assert!(
        wait_for(LONG, || {
            let st = status(r.addr);
            let gated = service(&st, "gated");
            gated.and_then(|g| g.get("state").str()) == Some("starting")
                && gated.and_then(|g| g.get("pid").int()).is_some()
                && service(&st, "plain").and_then(|p| p.get("state").str()) == Some("running")
        }),
        "gated never starting with a pid: {}",
        must_get(r.addr, "/status").body
    );
    // Several probe intervals go by: /readyz stays 503 naming only gated,
    // while /healthz is 200 (starting is healthy).
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        let ready = must_get(r.addr, "/readyz");
        assert_eq!(ready.status, 503, "{}", ready.body);
        let blamed = failing(&ready.json());
        assert_eq!(
            blamed.into_iter().collect::<Vec<_>>(),
            vec![("gated".to_string(), "starting".to_string())]
        );
        assert_eq!(must_get(r.addr, "/healthz").status, 200);
        std::thread::sleep(Duration::from_millis(20)); // pacing, not synchronisation
    }
    dir.write("go", b"");
    let t = Instant::now();
    let ok = wait_status(r.addr, "/readyz", 200, Duration::from_secs(5));
    eprintln!(
        "/readyz 200 {} after the probe's file appeared (interval 50ms)",
        ms(t.elapsed())
    );
    assert_eq!(ok.json().get("status").str(), Some("ok"));
    assert!(ok.json().get("failing").items().is_empty());
    assert_eq!(state_of(r.addr, "gated").as_deref(), Some("running"));
}

#[test]
fn status_pids_are_the_live_service_processes() {
    let dir = TestDir::new("http-status-pids");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  list:
    command: ["sleep", "1001"]
  shell:
    command: "exec sleep 1002"
  looper:
    command: ["sh", "-c", "while :; do sleep 1; done"]
  quitter:
    command: "exit 0"
    restart: never
    critical: false
"#;
    let Some(r) = start(&dir, yaml) else { return };
    let rinit_pid = r.inst.pid();
    let expect: [(&str, Vec<&str>); 3] = [
        ("list", vec!["sleep", "1001"]),
        ("shell", vec!["sleep", "1002"]),
        ("looper", vec!["sh", "-c", "while :; do sleep 1; done"]),
    ];
    // Every reported pid is a live (non-zombie) child of rinit running the
    // service's command line.
    let settled = wait_for(LONG, || {
        let st = status(r.addr);
        if service(&st, "quitter").and_then(|s| s.get("state").str()) != Some("stopped") {
            return false;
        }
        expect.iter().all(|(name, argv)| {
            let Some(svc) = service(&st, name) else {
                return false;
            };
            let Some(p) = svc.get("pid").int().and_then(|ns| r.proc_of(ns)) else {
                return false;
            };
            svc.get("state").str() == Some("running")
                && !p.is_zombie()
                && p.ppid == rinit_pid
                && cmdline(p.pid) == *argv
        })
    });
    assert!(
        settled,
        "status never matched /proc: {}",
        must_get(r.addr, "/status").body
    );
    let st = status(r.addr);
    assert_eq!(
        service(&st, "quitter").map(|q| q.get("pid")),
        Some(&Json::Null),
        "a stopped service has no pid"
    );
    // ... and they are exactly rinit's children.
    let reported: BTreeSet<i64> = st
        .get("services")
        .items()
        .iter()
        .filter_map(|s| s.get("pid").int())
        .collect();
    let children: BTreeSet<i64> = r
        .inst
        .children()
        .iter()
        .filter(|p| !p.is_zombie())
        .filter_map(|p| p.nspid.last().map(|&n| i64::from(n)))
        .collect();
    assert_eq!(reported, children, "/status pids vs rinit's children");
    for s in st.get("services").items() {
        if s.get("pid").int().is_some() {
            let up = match s.get("uptime_seconds") {
                Json::Num(n) => *n,
                other => panic!("uptime of a live service: {other:?}"),
            };
            assert!(up >= 0.0, "{s:?}");
        }
    }

    // After a kill -9 and restart the old pid is gone from /status and from
    // the kernel (reaped), and the new one is live.
    let (old_ns, old_host) = live_service(&r, "list", "sleep", None);
    assert!(kill(old_host, libc::SIGKILL));
    let (new_ns, new_host) = live_service(&r, "list", "sleep", Some(old_ns));
    assert_ne!(new_ns, old_ns);
    assert!(
        wait_for(LONG, || r.proc_of(old_ns).is_none()),
        "old pid {old_host} not reaped"
    );
    let st = status(r.addr);
    assert!(
        st.get("services")
            .items()
            .iter()
            .all(|s| s.get("pid").int() != Some(old_ns)),
        "dead pid still reported: {st:?}"
    );
    assert_eq!(
        service(&st, "list").and_then(|s| s.get("restarts").int()),
        Some(1)
    );
    assert_eq!(cmdline(new_host), vec!["sleep", "1001"]);
}

#[test]
fn healthz_and_readyz_are_503_during_shutdown() {
    let dir = TestDir::new("http-shutdown");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
shutdown:
  drain: 0s
  timeout: 9s
services:
  slow:
    command: "trap 'echo term > {d}/term; sleep 1.5; exit 0' TERM; echo up > {d}/up; sleep 1000 & wait"
    stop_timeout: 2s
"#;
    let Some(mut r) = start(&dir, yaml) else {
        return;
    };
    wait_status(r.addr, "/readyz", 200, LONG);
    wait_status(r.addr, "/healthz", 200, LONG);
    // Ready means spawned; the shell's trap is in place once it said so.
    assert!(dir.wait_line("up", LONG).is_some(), "slow never started");
    r.inst.signal(libc::SIGTERM);
    assert!(
        dir.wait_line("term", LONG).is_some(),
        "slow never got SIGTERM"
    );
    // The service is still up (in its trap) for 1.5 s.
    for path in ["/healthz", "/readyz"] {
        let resp = must_get(r.addr, path);
        assert_eq!(resp.status, 503, "{path} during shutdown: {}", resp.body);
        assert_eq!(
            resp.json().get("shutting_down").bool(),
            Some(true),
            "{path}"
        );
    }
    let st = status(r.addr);
    assert_eq!(st.get("shutting_down").bool(), Some(true));
    assert_eq!(
        service(&st, "slow").and_then(|s| s.get("state").str()),
        Some("stopping")
    );
    let metrics = must_get(r.addr, "/metrics").body;
    assert!(
        metrics.lines().any(|l| l == "rinit_shutting_down 1"),
        "{metrics}"
    );
    assert_eq!(r.inst.expect_exit(LONG), 0, "{}", r.inst.stderr());
}

// ---------------------------------------------------------------------------
// 3. idle and slow clients
// ---------------------------------------------------------------------------

/// True once the peer has closed `s` (EOF or reset); false while it is open
/// at `deadline`.
fn closed_by_peer(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_slow_clients_do_not_stall_a_fresh_request() {
    let _serial = serial();
    let dir = TestDir::new("http-idle-slow");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  steady:
    command: ["sleep", "1000"]
"#;
    let Some(mut r) = start(&dir, yaml) else {
        return;
    };
    wait_status(r.addr, "/healthz", 200, LONG);
    let addr = r.addr;
    let pid = r.inst.pid();
    // Once the service runs, its output relays exist: the count is settled.
    live_service(&r, "steady", "sleep", None);
    let threads_before = thread_count(pid);
    let mut threads_during = 0;

    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();

    let stop = AtomicBool::new(false);
    let connected = AtomicUsize::new(0);
    let mut fresh = Vec::new();
    let slow_closed: Vec<Option<Duration>> = std::thread::scope(|scope| {
        let slow: Vec<_> = (0..20)
            .map(|_| {
                let (stop, connected) = (&stop, &connected);
                scope.spawn(move || -> Option<Duration> {
                    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
                    connected.fetch_add(1, Ordering::SeqCst);
                    let start = Instant::now();
                    let head = b"GET /healthz HTTP/1.1\r\nX-Slow: ";
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10)
                    {
                        let byte = head.get(i).copied().unwrap_or(b'a');
                        if s.write_all(&[byte]).is_err() {
                            return Some(start.elapsed());
                        }
                        i += 1;
                        std::thread::sleep(Duration::from_millis(100)); // the client's pace
                    }
                    None
                })
            })
            .collect();
        assert!(
            wait_for(Duration::from_secs(5), || connected.load(Ordering::SeqCst)
                == 20),
            "slow clients could not connect"
        );
        threads_during = thread_count(pid);
        // Fresh requests, one every 50 ms for 3 s: while all 220 are open
        // and after rinit's head timeout closed them.
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let t = Instant::now();
            let resp = get(addr, "/healthz");
            let took = t.elapsed();
            assert!(
                matches!(&resp, Ok(r) if r.status == 200),
                "fresh /healthz with 220 idle/slow connections open: {resp:?}"
            );
            assert!(
                took < Duration::from_secs(1),
                "fresh /healthz took {}",
                ms(took)
            );
            fresh.push(took);
            std::thread::sleep(Duration::from_millis(50)); // pacing
        }
        let closed = slow.into_iter().map(|h| h.join().ok().flatten()).collect();
        stop.store(true, Ordering::SeqCst);
        closed
    });

    // The server closes connections that never complete a head.
    let deadline = opened + Duration::from_secs(8);
    let mut still_open = 0;
    for s in &mut idle {
        if !closed_by_peer(s, deadline) {
            still_open += 1;
        }
    }
    let (min, med, p99, max) = summary(&fresh);
    eprintln!(
        "fresh /healthz with 200 idle + 20 slow clients, {} samples: min {} median {} p99 {} max {}",
        fresh.len(),
        ms(min),
        ms(med),
        ms(p99),
        ms(max)
    );
    let mut closed_after: Vec<Duration> = slow_closed.iter().flatten().copied().collect();
    closed_after.sort();
    eprintln!(
        "slow clients cut off by rinit after: {}",
        closed_after
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(still_open, 0, "idle connections never closed by rinit");
    assert_eq!(
        closed_after.len(),
        20,
        "slow clients still connected after 10 s: {slow_closed:?}"
    );
    assert_eq!(
        threads_during,
        threads_before,
        "rinit's thread count changed under 220 connections: {:?}",
        thread_names(pid)
    );

    // Nor can a crowd of idle connections hold up a shutdown.
    let crowd: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    assert_eq!(crowd.len(), 200);
    let t = Instant::now();
    r.inst.signal(libc::SIGTERM);
    let code = r.inst.expect_exit(Duration::from_secs(5));
    let took = t.elapsed();
    eprintln!(
        "threads: {threads_before} before, {threads_during} under load; \
         SIGTERM with 200 idle connections open: exit {code} after {}",
        ms(took)
    );
    assert_eq!(code, 0, "{}", r.inst.stderr());
    assert!(took < Duration::from_secs(3), "shutdown took {}", ms(took));
    drop(crowd);
}

fn thread_names(pid: i32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

fn thread_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// 4. burst of requests while orphans are reaped
// ---------------------------------------------------------------------------

/// The value of an unlabelled sample in a /metrics body.
fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.parse().ok()).flatten()
    })
}

#[test]
fn burst_of_requests_is_answered_while_a_thousand_orphans_are_reaped() {
    let _serial = serial();
    let dir = TestDir::new("http-burst-orphans");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  steady:
    command: ["sleep", "1000"]
  orphans:
    command: "while [ ! -f {d}/go ]; do sleep 0.01; done; echo started > {d}/started; i=0; while [ $i -lt 1000 ]; do (sleep 0 &); i=$((i+1)); done; echo done > {d}/done; exec sleep 1000"
"#;
    let Some(r) = start(&dir, yaml) else { return };
    wait_status(r.addr, "/healthz", 200, LONG);
    let before = metric(
        &must_get(r.addr, "/metrics").body,
        "rinit_zombies_reaped_total",
    )
    .expect("rinit_zombies_reaped_total");
    dir.write("go", b"");
    assert!(
        dir.wait_line("started", LONG).is_some(),
        "orphan maker never started"
    );

    let addr = r.addr;
    let t = Instant::now();
    let answered = AtomicUsize::new(0);
    let errors: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let answered = &answered;
                scope.spawn(move || {
                    let mut errors = Vec::new();
                    for i in 0..250 {
                        let path = if i % 5 == 4 { "/status" } else { "/healthz" };
                        match get(addr, path) {
                            Ok(resp) if resp.status == 200 || resp.status == 503 => {
                                answered.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(resp) => errors.push(format!("thread {n} #{i}: {resp:?}")),
                            Err(e) => errors.push(format!("thread {n} #{i} {path}: {e}")),
                        }
                    }
                    errors
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    let burst = t.elapsed();
    let done_during_burst = dir.exists("done");
    assert!(
        errors.is_empty(),
        "{} failed requests: {:?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert_eq!(answered.load(Ordering::SeqCst), 2000);

    assert!(
        dir.wait_line("done", Duration::from_secs(60)).is_some(),
        "orphan maker never finished"
    );
    let made = t.elapsed();
    assert!(
        wait_for(Duration::from_secs(10), || r.inst.zombies().is_empty()),
        "zombies left: {:?}",
        r.inst.zombies()
    );
    let mut after = 0.0;
    assert!(
        wait_for(Duration::from_secs(10), || {
            after = metric(
                &must_get(addr, "/metrics").body,
                "rinit_zombies_reaped_total",
            )
            .unwrap_or(0.0);
            after >= 1000.0
        }),
        "rinit_zombies_reaped_total {after} < 1000"
    );
    let orphans = metric(
        &must_get(addr, "/metrics").body,
        "rinit_orphans_reaped_total",
    );
    eprintln!(
        "2000 requests from 8 threads in {} ({:.0} req/s); orphan maker finished {} after the burst began \
         (finished during the burst: {done_during_burst}); reaped {before} -> {after}, orphans {orphans:?}",
        ms(burst),
        2000.0 / burst.as_secs_f64(),
        ms(made)
    );
    assert_eq!(must_get(addr, "/healthz").status, 200);
}

// ---------------------------------------------------------------------------
// 5. malformed requests
// ---------------------------------------------------------------------------

fn raw_response(addr: SocketAddr, bytes: &[u8]) -> Response {
    let raw = exchange(addr, bytes, IO_TIMEOUT).unwrap_or_else(|e| panic!("{bytes:?}: {e}"));
    parse_response(&raw, false)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(bytes)))
}

#[test]
fn malformed_requests_are_refused_and_the_server_keeps_serving() {
    let dir = TestDir::new("http-malformed");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  steady:
    command: ["sleep", "1000"]
"#;
    let Some(r) = start(&dir, yaml) else { return };
    wait_status(r.addr, "/healthz", 200, LONG);
    let addr = r.addr;

    let mut oversize = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    oversize.extend(std::iter::repeat_n(b'a', 9 * 1024));
    oversize.extend_from_slice(b"\r\n\r\n");
    let mut many_headers = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        many_headers.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    let mut endless_line = b"GET /".to_vec();
    endless_line.extend(std::iter::repeat_n(b'x', 20 * 1024));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "garbage bytes",
            b"\x00\x01\x02\xff\xfe\r\n\r\n".to_vec(),
            400,
        ),
        ("no target", b"GET\r\n\r\n".to_vec(), 400),
        ("words", b"hello world\r\n\r\n".to_vec(), 400),
        (
            "bad version",
            b"GET /healthz HTTP/9.9\r\n\r\n".to_vec(),
            400,
        ),
        (
            "control byte in method",
            b"G\x01T /healthz HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bad header line",
            b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
            400,
        ),
        ("header over 8 KiB", oversize, 431),
        ("100 header lines", many_headers, 431),
        ("20 KiB request line", endless_line, 431),
    ];
    for (what, bytes, want) in &cases {
        let resp = raw_response(addr, bytes);
        assert_eq!(resp.status, *want, "{what}: {resp:?}");
        assert_eq!(resp.header("Connection"), Some("close"), "{what}");
        let ok = must_get(addr, "/healthz");
        assert_eq!(ok.status, 200, "after {what}: {ok:?}");
    }

    // A head cut short by the client's EOF: 400, not a hang.
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let raw = read_until_eof(&mut s, Instant::now() + IO_TIMEOUT).expect("answer to a cut head");
    assert_eq!(parse_response(&raw, false).expect("response").status, 400);
    // A client that connects and closes at once.
    drop(TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect"));

    // Routing: 404, 405 with Allow, HEAD without a body.
    let nf = must_get(addr, "/nope");
    assert_eq!(nf.status, 404, "{nf:?}");
    let nf2 = must_get(addr, "/healthz/extra");
    assert_eq!(nf2.status, 404, "{nf2:?}");
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let resp = request(addr, method, "/healthz").expect(method);
        assert_eq!(resp.status, 405, "{method}: {resp:?}");
        assert_eq!(resp.header("Allow"), Some("GET, HEAD"), "{method}");
    }
    let post = raw_response(
        addr,
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(post.status, 405);
    for path in ["/healthz", "/readyz", "/status", "/metrics"] {
        let full = must_get(addr, path);
        let head = request(addr, "HEAD", path).unwrap_or_else(|e| panic!("HEAD {path}: {e}"));
        assert_eq!(head.status, full.status, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            head.header("Content-Type"),
            full.header("Content-Type"),
            "HEAD {path}"
        );
        if path != "/status" && path != "/metrics" {
            assert_eq!(
                head.header("Content-Length"),
                full.header("Content-Length"),
                "HEAD {path}"
            );
        }
    }
    let q = must_get(addr, "/healthz?verbose=1");
    assert_eq!(q.status, 200, "query strings are ignored: {q:?}");
    assert_eq!(must_get(addr, "/healthz").status, 200);
    assert!(r.inst.zombies().is_empty());
}

// ---------------------------------------------------------------------------
// 6. descriptor exhaustion
// ---------------------------------------------------------------------------

fn nofile_limit(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[test]
fn a_low_descriptor_limit_still_serves_many_clients_at_once() {
    let _serial = serial();
    let prlimit = find_program("prlimit");
    if !prlimit.is_file() {
        eprintln!("skipped: no prlimit (util-linux)");
        return;
    }
    let dir = TestDir::new("http-nofile-40");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  worker:
    command: ["sleep", "1000"]
"#;
    let Some(r) = start_with(&dir, yaml, |l| {
        l.wrap_outside([prlimit.as_os_str(), "--nofile=40:40".as_ref()])
    }) else {
        return;
    };
    // Ten clients send half a request each, then the rest: with the
    // reserve at 40 - (16 + 4) each is served; a reserve that ate the
    // whole limit left room for one, each newcomer evicting the last.
    let mut clients: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect_timeout(&r.addr, LONG).expect("connect"))
        .collect();
    for c in &mut clients {
        c.write_all(b"GET /status HTTP/1.0\r\n")
            .expect("first half");
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut answered = 0;
    for c in &mut clients {
        c.write_all(b"\r\n").expect("second half");
        let mut raw = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = c.read_to_end(&mut raw);
        if raw.starts_with(b"HTTP/1.1 200") {
            answered += 1;
        }
    }
    eprintln!("RLIMIT_NOFILE 40, one service: {answered} of 10 concurrent clients answered");
    assert_eq!(answered, 10);
}

#[test]
fn descriptor_exhaustion_does_not_kill_the_server() {
    let _serial = serial();
    let prlimit = find_program("prlimit");
    if !prlimit.is_file() {
        eprintln!("skipped: no prlimit (util-linux)");
        return;
    }
    let dir = TestDir::new("http-emfile");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  worker:
    command: ["sleep", "1000"]
    backoff: { initial: 100ms }
"#;
    let Some(mut r) = start_with(&dir, yaml, |l| {
        l.wrap_outside([prlimit.as_os_str(), "--nofile=64:64".as_ref()])
    }) else {
        return;
    };
    let pid = r.inst.pid();
    let limit = nofile_limit(pid).unwrap_or_default();
    assert_eq!(
        limit, "Max open files 64 64 files",
        "the limit must apply to rinit"
    );
    wait_status(r.addr, "/healthz", 200, LONG);
    let (old_ns, _) = live_service(&r, "worker", "sleep", None);
    let fds_idle = open_fds(pid).len();

    let flood: Vec<TcpStream> = (0..100)
        .map(|i| {
            TcpStream::connect_timeout(&r.addr, Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    let mut max_fds = 0;
    wait_for(Duration::from_secs(2), || {
        max_fds = max_fds.max(open_fds(pid).len());
        max_fds >= 60
    });
    // While the flood holds rinit at its limit: report how a fresh request fares.
    let t = Instant::now();
    let during = get(r.addr, "/healthz");
    let during_took = t.elapsed();
    drop(flood);

    let t = Instant::now();
    let back = wait_for(
        Duration::from_secs(2),
        || matches!(get(r.addr, "/healthz"), Ok(resp) if resp.status == 200),
    );
    let recovered = t.elapsed();
    eprintln!(
        "RLIMIT_NOFILE 64: rinit had {fds_idle} fds idle, {max_fds} under a flood of 100 connections; \
         a fresh /healthz during the flood: {} in {}; after closing them: 200 again after {}",
        match &during {
            Ok(resp) => resp.status.to_string(),
            Err(e) => e.clone(),
        },
        ms(during_took),
        ms(recovered)
    );
    assert!(
        back,
        "/healthz not answering 2 s after the flood ended; stderr:\n{}",
        r.inst.stderr()
    );

    // Supervision still works: a kill -9 is seen and the worker restarted.
    let (_, host) = live_service(&r, "worker", "sleep", None);
    assert!(kill(host, libc::SIGKILL));
    let (new_ns, _) = live_service(&r, "worker", "sleep", Some(old_ns));
    assert_ne!(new_ns, old_ns);
    wait_status(r.addr, "/healthz", 200, LONG);
    assert_eq!(
        service(&status(r.addr), "worker").and_then(|s| s.get("restarts").int()),
        Some(1)
    );
    assert!(
        r.inst.poll_exit().is_none(),
        "rinit exited: {}",
        r.inst.stderr()
    );
}

/// The HTTP server may use every descriptor rinit has: then a service
/// restart fails ("cannot create pipes" / "fork failed", counted as exit 126
/// and as restarts) for as long as the flood lasts. With `max_restarts`
/// reached, a critical service turns `failed` and the whole container shuts
/// down: anyone who can reach the health port can take it down, given a low
/// RLIMIT_NOFILE. See the report of issue 4's end-to-end tests.
#[test]
fn a_connection_flood_at_the_descriptor_limit_does_not_break_restarts() {
    let _serial = serial();
    let prlimit = find_program("prlimit");
    if !prlimit.is_file() {
        eprintln!("skipped: no prlimit (util-linux)");
        return;
    }
    let dir = TestDir::new("http-emfile-restart");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  worker:
    command: ["sleep", "1000"]
    backoff: { initial: 100ms, max: 100ms }
"#;
    let Some(mut r) = start_with(&dir, yaml, |l| {
        l.wrap_outside([prlimit.as_os_str(), "--nofile=64:64".as_ref()])
    }) else {
        return;
    };
    let pid = r.inst.pid();
    wait_status(r.addr, "/healthz", 200, LONG);
    let (old_ns, old_host) = live_service(&r, "worker", "sleep", None);

    // Hold a flood (re-opening what rinit closes) while the worker dies once.
    let stop = AtomicBool::new(false);
    let addr = r.addr;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut held: Vec<TcpStream> = Vec::new();
            let end = Instant::now() + Duration::from_secs(10);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                held.retain_mut(|s| !closed_by_peer(s, Instant::now() + Duration::from_millis(1)));
                while held.len() < 100 {
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                        Ok(s) => held.push(s),
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(20)); // pacing
            }
        });
        assert!(
            // rinit bounds its connections to what the limit leaves after a
            // reserve for the supervisor (64 - 40 here): the flood fills that.
            wait_for(Duration::from_secs(3), || open_fds(pid).len() >= 28),
            "the flood did not fill the connection bound"
        );
        assert!(kill(old_host, libc::SIGKILL));
        // One kill -9, one restart: running again after the 100 ms backoff.
        let restarted = wait_for(Duration::from_secs(3), || {
            get(addr, "/status").is_ok_and(|resp| {
                service(&resp.json(), "worker").is_some_and(|w| {
                    w.get("state").str() == Some("running") && w.get("pid").int() != Some(old_ns)
                })
            })
        });
        stop.store(true, Ordering::SeqCst);
        let worker = get(addr, "/status").map(|resp| {
            service(&resp.json(), "worker")
                .cloned()
                .unwrap_or(Json::Null)
        });
        let exited = r.inst.poll_exit().map(code_of);
        assert!(
            restarted && matches!(&worker, Ok(w) if w.get("restarts").int() == Some(1)),
            "worker not simply restarted during the flood: {worker:?}; rinit exit status \
             {exited:?}; stderr:\n{}",
            r.inst.stderr()
        );
    });
    assert!(
        !r.inst
            .stderr()
            .contains("Too many open files (os error 24) (exit"),
        "a spawn failed for lack of descriptors:\n{}",
        r.inst.stderr()
    );
    assert!(r.inst.poll_exit().is_none());
}

// ---------------------------------------------------------------------------
// 7. /metrics and a strict text-exposition parser
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// A Go `ParseFloat` value as the format allows it: a decimal number, or
/// `NaN`, `+Inf`, `-Inf`.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => return Ok(f64::NAN),
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if s.is_empty() || !ok_chars || !s.chars().any(|c| c.is_ascii_digit()) {
        return Err(format!("bad value {s:?}"));
    }
    s.parse().map_err(|_| format!("bad value {s:?}"))
}

/// Unescapes a HELP text (`\\`, `\n`).
fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            other => return Err(format!("bad escape \\{other:?} in HELP {s:?}")),
        }
    }
    Ok(out)
}

/// `{name="value",...}` at the start of `s`: the labels and the rest.
/// Label pairs in the order written.
type Labels = Vec<(String, String)>;

fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
    let mut labels: Labels = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("no = in labels {s:?}"))?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} twice"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name} value not quoted"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in {s:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {s:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after a label in {s:?}"));
        }
    }
}

/// Parses text exposition format 0.0.4 strictly: every family has one HELP
/// and one TYPE line before its samples, its samples are contiguous, names
/// and labels are valid and unique, values are numbers, counters are
/// non-negative, the text ends with a newline.
fn parse_exposition(text: &str) -> Result<Vec<Family>, String> {
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut seen_series: HashSet<(String, Labels)> = HashSet::new();
    let current = |families: &mut Vec<Family>, name: &str| -> Result<usize, String> {
        match families.iter().position(|f| f.name == name) {
            Some(i) if i + 1 == families.len() => Ok(i),
            Some(_) => Err(format!("family {name} is not contiguous")),
            None => {
                families.push(Family {
                    name: name.to_string(),
                    kind: String::new(),
                    help: String::new(),
                    samples: Vec::new(),
                });
                Ok(families.len() - 1)
            }
        }
    };
    for (n, line) in text[..text.len() - 1].split('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.contains('\r') {
            return Err(at("carriage return".into()));
        }
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start_matches(' ').splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // a plain comment
            }
            let name = parts.next().unwrap_or_default();
            if !is_metric_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            let arg = parts.next().ok_or_else(|| at("missing text".into()))?;
            let i = current(&mut families, name).map_err(at)?;
            let family = &mut families[i];
            if !family.samples.is_empty() {
                return Err(at(format!("{keyword} after samples")));
            }
            if keyword == "HELP" {
                if !family.help.is_empty() {
                    return Err(at("second HELP".into()));
                }
                family.help = unescape_help(arg).map_err(at)?;
                if family.help.is_empty() {
                    return Err(at("empty HELP".into()));
                }
            } else {
                if !family.kind.is_empty() {
                    return Err(at("second TYPE".into()));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                    return Err(at(format!("bad type {arg:?}")));
                }
                family.kind = arg.to_string();
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (mut labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| at(format!("bad timestamp {ts:?}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family_name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                families
                    .last()
                    .filter(|f| {
                        f.name == base && matches!(f.kind.as_str(), "histogram" | "summary")
                    })
                    .map(|f| f.name.clone())
            })
            .unwrap_or_else(|| name.to_string());
        let i = families
            .iter()
            .position(|f| f.name == family_name)
            .ok_or_else(|| at("sample without HELP and TYPE".into()))?;
        if i + 1 != families.len() {
            return Err(at(format!("family {family_name} is not contiguous")));
        }
        let family = &mut families[i];
        if family.kind.is_empty() || family.help.is_empty() {
            return Err(at("sample before its HELP and TYPE".into()));
        }
        if family.kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("negative or NaN counter".into()));
        }
        labels.sort();
        if !seen_series.insert((name.to_string(), labels.clone())) {
            return Err(at("duplicate series".into()));
        }
        family.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    for f in &families {
        if f.kind.is_empty() || f.help.is_empty() {
            return Err(format!("family {} lacks HELP or TYPE", f.name));
        }
    }
    Ok(families)
}

fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn exposition_parser_rejects_what_it_should() {
    let good = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\\\"\\\\\\n\"} 3\n";
    let parsed = parse_exposition(good).expect("good text");
    assert_eq!(parsed[0].samples[0].labels[0].1, "1\"\\\n");
    let bad = [
        "a 1\n",                                                                   // no HELP/TYPE
        "# TYPE a gauge\na 1\n",                                                   // no HELP
        "# HELP a x\n# TYPE a gauge\na 1", // no final newline
        "# HELP a x\n# TYPE a gauge\na 1\n# HELP a y\n", // HELP after samples
        "# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n", // TYPE twice
        "# HELP a x\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n", // duplicate series
        "# HELP a x\n# TYPE a gauge\na{x=\"\\t\"} 1\n", // bad escape
        "# HELP a x\n# TYPE a gauge\na{x=1} 1\n", // unquoted
        "# HELP a x\n# TYPE a gauge\na{__x=\"1\"} 1\n", // reserved label
        "# HELP a x\n# TYPE a gauge\na one\n", // not a number
        "# HELP a x\n# TYPE a counter\na -1\n", // negative counter
        "# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n# TYPE b gauge\nb 1\na 2\n", // split family
        "# HELP 1a x\n# TYPE 1a gauge\n1a 1\n", // bad name
        "# HELP a x\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", // label twice
        "# HELP a x\n# TYPE a gauge\na  1\n", // two spaces
        "# HELP a x\n# TYPE a gauge\na 1\r\n", // CRLF
        "# HELP a x\n# TYPE a meter\na 1\n", // bad type
    ];
    for text in bad {
        assert!(parse_exposition(text).is_err(), "accepted {text:?}");
    }
}

#[test]
fn metrics_are_strict_text_exposition_and_match_status() {
    let dir = TestDir::new("http-metrics");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
services:
  up:
    command: ["sleep", "1000"]
  'svc.1@host':
    command: ["sleep", "1001"]
  a_b-c:
    command: ["sleep", "1002"]
  gated:
    command: ["sleep", "1003"]
    ready: { exec: ["test", "-f", "{d}/never"], interval: 1s, timeout: 1s }
  broken:
    command: "exit 1"
    restart: never
    critical: false
  quitter:
    command: "exit 0"
    restart: never
    critical: false
  once:
    command: "exit 0"
    oneshot: true
  crashy:
    command: "exit 2"
    restart: always
    backoff: { initial: 20ms, max: 3s }
    max_restarts: { count: 1000, within: 60s }
    critical: false
"#;
    let Some(r) = start(&dir, yaml) else { return };
    // Names are restricted (SPEC 4); label escaping is unit-tested in render.
    let weird = "svc.1@host";
    let want_states = [
        ("up", "running"),
        (weird, "running"),
        ("a_b-c", "running"),
        ("gated", "starting"),
        ("broken", "failed"),
        ("quitter", "stopped"),
        ("once", "done"),
    ];
    let settled = wait_for(LONG, || {
        let st = status(r.addr);
        want_states
            .iter()
            .all(|(n, s)| service(&st, n).and_then(|v| v.get("state").str()) == Some(s))
            && service(&st, "crashy").and_then(|c| c.get("restarts").int()) >= Some(3)
    });
    assert!(
        settled,
        "states never settled: {}",
        must_get(r.addr, "/status").body
    );

    let resp = must_get(r.addr, "/metrics");
    let st = status(r.addr);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = &resp.body;
    assert!(
        text.contains("service=\"svc.1@host\""),
        "label value missing:\n{text}"
    );
    let families = parse_exposition(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let family = |name: &str| {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no family {name} in\n{text}"))
    };
    let names: Vec<&str> = st
        .get("services")
        .items()
        .iter()
        .filter_map(|s| s.get("name").str())
        .collect();
    assert_eq!(names.len(), 8);
    let states = [
        "waiting", "starting", "running", "backoff", "failed", "stopping", "stopped", "done",
        "down",
    ];

    let up = family("rinit_service_up");
    assert_eq!(up.kind, "gauge");
    let state = family("rinit_service_state");
    assert_eq!(state.kind, "gauge");
    let restarts = family("rinit_service_restarts_total");
    assert_eq!(restarts.kind, "counter");
    let ready = family("rinit_service_ready");
    assert_eq!(ready.kind, "gauge");
    for name in &names {
        let status_state = service(&st, name)
            .and_then(|s| s.get("state").str())
            .unwrap();
        let ups: Vec<&Sample> = up
            .samples
            .iter()
            .filter(|s| label(s, "service") == Some(name))
            .collect();
        assert_eq!(ups.len(), 1, "{name}: rinit_service_up");
        assert_eq!(ups[0].labels.len(), 1);
        let mine: Vec<&Sample> = state
            .samples
            .iter()
            .filter(|s| label(s, "service") == Some(name))
            .collect();
        let labelled: BTreeSet<&str> = mine.iter().filter_map(|s| label(s, "state")).collect();
        assert_eq!(
            labelled,
            states.iter().copied().collect(),
            "{name}: every state once"
        );
        assert!(
            mine.iter().all(|s| s.value == 0.0 || s.value == 1.0),
            "{name}"
        );
        let on: Vec<&str> = mine
            .iter()
            .filter(|s| s.value == 1.0)
            .filter_map(|s| label(s, "state"))
            .collect();
        assert_eq!(on.len(), 1, "{name}: exactly one state is 1: {on:?}");
        let r_samples: Vec<&Sample> = restarts
            .samples
            .iter()
            .filter(|s| label(s, "service") == Some(name))
            .collect();
        assert_eq!(r_samples.len(), 1, "{name}: restarts");
        if *name == "crashy" {
            // Moves between backoff and starting: only self-consistency.
            assert!(r_samples[0].value >= 3.0);
            assert_eq!(ups[0].value, f64::from(u8::from(on[0] == "running")));
            continue;
        }
        assert_eq!(on[0], status_state, "{name}: /metrics vs /status");
        let status_ready = service(&st, name).and_then(|s| s.get("ready").bool());
        let ready_sample = ready
            .samples
            .iter()
            .find(|s| label(s, "service") == Some(name))
            .map(|s| s.value == 1.0);
        assert_eq!(ready_sample, status_ready, "{name}: ready");
        assert_eq!(
            ups[0].value,
            f64::from(u8::from(status_state == "running")),
            "{name}: up"
        );
        let status_restarts = service(&st, name)
            .and_then(|s| s.get("restarts").int())
            .unwrap();
        assert_eq!(
            r_samples[0].value, status_restarts as f64,
            "{name}: restarts"
        );
    }
    for f in [up, state, restarts] {
        for s in &f.samples {
            assert!(names.contains(&label(s, "service").unwrap_or("?")), "{s:?}");
        }
    }
    let zombies = family("rinit_zombies_reaped_total");
    assert_eq!(zombies.kind, "counter");
    assert_eq!(zombies.samples.len(), 1);
    assert!(zombies.samples[0].labels.is_empty());
    assert!(
        zombies.samples[0].value >= 6.0,
        "broken, quitter, once, crashy x3"
    );
    assert_eq!(zombies.samples[0].name, "rinit_zombies_reaped_total");
    let shutting = family("rinit_shutting_down");
    assert_eq!(shutting.kind, "gauge");
    assert_eq!(shutting.samples.len(), 1);
    assert_eq!(shutting.samples[0].value, 0.0);
}

// ---------------------------------------------------------------------------
// 8. rinit probe
// ---------------------------------------------------------------------------

struct ProbeRun {
    code: i32,
    took: Duration,
    stderr: String,
}

/// Runs `rinit probe ARGS` on the host (outside the namespace) with no
/// RINIT_* variables but `env`; bounded at 10 s.
fn probe(args: &[&str], env: &[(&str, String)]) -> ProbeRun {
    let err = std::env::temp_dir().join(format!(
        "rinit-probe-{}-{}.stderr",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let mut cmd = Command::new(RINIT);
    cmd.arg("probe")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    for k in [
        "RINIT_CONFIG",
        "RINIT_GRACE",
        "RINIT_LOG",
        "RINIT_HEALTH_ADDR",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let mut child = KillOnDrop::spawn(&mut cmd);
    let mut status = None;
    wait_for(Duration::from_secs(10), || {
        status = child.0.try_wait().ok().flatten();
        status.is_some()
    });
    let took = t.elapsed();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_file(&err);
    let status = status.unwrap_or_else(|| panic!("rinit probe {args:?} still running after 10 s"));
    ProbeRun {
        code: code_of(status),
        took,
        stderr,
    }
}

fn assert_probe(args: &[&str], env: &[(&str, String)], want: i32) -> ProbeRun {
    let run = probe(args, env);
    assert_eq!(
        run.code, want,
        "rinit probe {args:?} (env {env:?}): stderr {:?}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(2),
        "rinit probe {args:?} took {}",
        ms(run.took)
    );
    run
}

/// A one-shot fake server answering every connection with `answer`.
fn fake_server(answer: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let h = std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer);
        }
    });
    (addr, h)
}

#[test]
fn probe_exit_codes() {
    let _serial = serial();
    let dir = TestDir::new("http-probe");
    let yaml = r#"
health:
  listen: "0.0.0.0:{port}"
services:
  gated:
    command: ["sleep", "1000"]
    ready: { exec: ["test", "-f", "{d}/ready"], interval: 50ms, timeout: 1s }
  breaker:
    command: "while [ ! -f {d}/break ]; do sleep 0.05; done; exit 1"
    restart: never
    critical: false
"#;
    let Some(mut r) = start(&dir, yaml) else {
        return;
    };
    let addr = format!("127.0.0.1:{}", r.port);
    let conf = r.conf.display().to_string();
    let closed = format!("127.0.0.1:{}", free_port());
    wait_status(r.addr, "/healthz", 200, LONG);
    assert!(
        wait_for(LONG, || state_of(r.addr, "gated").as_deref()
            == Some("starting")),
        "gated never starting: {}",
        must_get(r.addr, "/status").body
    );

    // Healthy, not ready; the address from ADDR, RINIT_HEALTH_ADDR or -c.
    let env_live = [("RINIT_HEALTH_ADDR", addr.clone())];
    let env_closed = [("RINIT_HEALTH_ADDR", closed.clone())];
    assert_probe(&[&addr], &[], 0);
    assert_probe(&["--ready", &addr], &[], 1);
    assert_probe(&[], &env_live, 0);
    assert_probe(&["--ready"], &env_live, 1);
    assert_probe(&["-c", &conf], &[], 0);
    assert_probe(&["--ready", "-c", &conf], &[], 1);
    // A host name is resolved (whichever of ::1 and 127.0.0.1 comes first).
    assert_probe(&[&format!("localhost:{}", r.port)], &[], 0);
    // ADDR beats the variable, the variable beats the config.
    assert_probe(&[&addr], &env_closed, 0);
    assert_probe(&["-c", &conf], &env_closed, 1);
    assert_probe(&["-c", &conf], &env_live, 0);

    dir.write("ready", b"");
    wait_status(r.addr, "/readyz", 200, LONG);
    assert_probe(&["--ready", &addr], &[], 0);
    assert_probe(&["--ready"], &env_live, 0);
    assert_probe(&["--ready", "-c", &conf], &[], 0);

    // A non-critical failure: unhealthy, and not ready either.
    dir.write("break", b"");
    wait_status(r.addr, "/healthz", 503, LONG);
    let run = assert_probe(&[&addr], &[], 1);
    assert!(run.stderr.contains("503"), "{:?}", run.stderr);
    assert_probe(&[], &env_live, 1);
    assert_probe(&["-c", &conf], &[], 1);
    assert_probe(&["--ready", &addr], &[], 1);
    assert!(r.inst.poll_exit().is_none(), "rinit exited");

    // 0.0.0.0 in the config means loopback: the failure names 127.0.0.1.
    let closed_port = free_port();
    dir.write(
        "closed.yaml",
        format!("health:\n  listen: \"0.0.0.0:{closed_port}\"\nservices:\n  x:\n    command: [\"true\"]\n").as_bytes(),
    );
    let run = assert_probe(&["-c", &dir.file("closed.yaml")], &[], 1);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{closed_port}")),
        "{:?}",
        run.stderr
    );

    // A config without health.listen and no other address: 1, saying why.
    dir.write(
        "nolisten.yaml",
        b"services:\n  x:\n    command: [\"true\"]\n",
    );
    let run = assert_probe(&["-c", &dir.file("nolisten.yaml")], &[], 1);
    assert!(run.stderr.contains("no address"), "{:?}", run.stderr);
    // Nothing listening.
    let run = assert_probe(&[&closed], &[], 1);
    eprintln!(
        "probe of a closed port: exit 1 in {}: {}",
        ms(run.took),
        run.stderr.trim()
    );
    // A listener that never accepts nor answers.
    let mute = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mute_addr = mute.local_addr().expect("addr").to_string();
    let run = assert_probe(&[&mute_addr], &[], 1);
    eprintln!(
        "probe of a mute listener: exit 1 in {}: {}",
        ms(run.took),
        run.stderr.trim()
    );
    let run = assert_probe(&["--ready", &mute_addr], &[], 1);
    assert!(run.took < Duration::from_secs(2));
    drop(mute);
    // Any 2xx is success; anything else is failure.
    for (answer, want) in [
        (&b"HTTP/1.1 204 No Content\r\n\r\n"[..], 0),
        (&b"HTTP/1.0 200 OK\r\n\r\nok"[..], 0),
        (&b"HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n"[..], 1),
        (&b"HTTP/1.1 500 Oops\r\n\r\n"[..], 1),
        (&b"SSH-2.0-OpenSSH_9.2\r\n"[..], 1),
    ] {
        let (fake, h) = fake_server(answer);
        assert_probe(&[&fake.to_string()], &[], want);
        h.join().expect("fake server");
    }
}

// ---------------------------------------------------------------------------
// 9. /readyz at the start of a shutdown
// ---------------------------------------------------------------------------

fn epoch_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[test]
fn readyz_turns_503_at_once_when_a_shutdown_begins() {
    let _serial = serial();
    let dir = TestDir::new("http-drain");
    let yaml = r#"
health:
  listen: "127.0.0.1:{port}"
shutdown:
  drain: 2s
  timeout: 9s
services:
  web:
    command: "trap 'date +%s%N > {d}/term.tmp; mv {d}/term.tmp {d}/term; exit 0' TERM; sleep 1000 & wait"
"#;
    let Some(mut r) = start(&dir, yaml) else {
        return;
    };
    wait_status(r.addr, "/readyz", 200, LONG);
    wait_status(r.addr, "/healthz", 200, LONG);
    let sent_at = epoch_nanos();
    let t0 = Instant::now();
    r.inst.signal(libc::SIGTERM);
    let mut polls = 0;
    let resp = loop {
        let resp = must_get(r.addr, "/readyz");
        polls += 1;
        if resp.status == 503 {
            break resp;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "/readyz still 200 after 2 s"
        );
    };
    let took = t0.elapsed();
    assert!(!dir.exists("term"), "the service was already signalled");
    eprintln!(
        "SIGTERM -> /readyz 503 in {} ({polls} polls), drain 2s",
        ms(took)
    );
    assert!(
        took < Duration::from_millis(100),
        "/readyz 503 only after {}",
        ms(took)
    );
    let body = resp.json();
    assert_eq!(body.get("shutting_down").bool(), Some(true), "{body:?}");
    let health = must_get(r.addr, "/healthz");
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.json().get("shutting_down").bool(), Some(true));
    // During the drain the service is untouched and the server answers.
    assert_eq!(state_of(r.addr, "web").as_deref(), Some("running"));
    assert!(
        !dir.exists("term"),
        "the service was signalled during the drain"
    );

    let term: u128 = dir
        .wait_line("term", LONG)
        .expect("web never got SIGTERM")
        .trim()
        .parse()
        .expect("date +%s%N");
    let drained = Duration::from_nanos(term.saturating_sub(sent_at) as u64);
    eprintln!("SIGTERM to rinit -> service's SIGTERM: {}", ms(drained));
    assert!(
        drained >= Duration::from_millis(1900),
        "drain cut short: {}",
        ms(drained)
    );
    assert_eq!(r.inst.expect_exit(LONG), 0, "{}", r.inst.stderr());
}

// ---------------------------------------------------------------------------
// 12. Liveness checks, start_timeout, /startupz (SPEC section 12)
// ---------------------------------------------------------------------------

/// argv: PORT DIR. Serves GET /health: 500 while DIR/sick exists, a 2 s
/// answer while DIR/slow exists, else 200.
const HEALTH_SERVER: &str = r#"
import os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, d = int(sys.argv[1]), sys.argv[2]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if os.path.exists(d + "/slow"):
            time.sleep(2)
        code = 500 if os.path.exists(d + "/sick") else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// A config whose service `web` runs HEALTH_SERVER on its own port, ready
/// on tcp, with the liveness block `liveness` (`{wport}` is its port).
fn liveness_config(dir: &TestDir, extra: &str) -> String {
    dir.write("srv.py", HEALTH_SERVER.as_bytes());
    let wport = free_port();
    format!(
        r#"
health: {{ listen: "127.0.0.1:{{port}}" }}
services:
  web:
    command: ["{py}", "{{d}}/srv.py", "{wport}", "{{d}}"]
    ready: {{ tcp: "127.0.0.1:{wport}", interval: 50ms }}
{extra}
"#,
        py = python3().display(),
    )
    .replace("{wport}", &wport.to_string())
}

fn restarts_of(addr: SocketAddr, name: &str) -> i64 {
    service(&status(addr), name)
        .and_then(|s| s.get("restarts").int())
        .unwrap_or(-1)
}

#[test]
fn a_sigstopped_service_fails_its_liveness_check_and_is_restarted() {
    let _serial = serial();
    let dir = TestDir::new("liveness-stop");
    let extra = "    liveness: { http: \"http://127.0.0.1:{wport}/health\", interval: 200ms, timeout: 100ms, failures: 3 }";
    let yaml = liveness_config(&dir, extra);
    let Some(r) = start(&dir, &yaml) else { return };
    let py = python3().display().to_string();
    let (ns, host) = live_service(&r, "web", &py, None);
    wait_status(r.addr, "/healthz", 200, LONG);
    let t0 = Instant::now();
    assert!(kill(host, libc::SIGSTOP));
    // Unhealthy: /healthz says 503 from the stop on, until ready again.
    let body = wait_status(r.addr, "/healthz", 503, LONG).json();
    let detected = t0.elapsed();
    assert!(failing(&body).contains_key("web"), "{body:?}");
    let (_, new_host) = live_service(&r, "web", &py, Some(ns));
    assert_ne!(new_host, host);
    // The stopped process got SIGCONT with its SIGTERM, so it could act on it.
    assert!(
        wait_for(LONG, || proc_info(host).is_none_or(|p| p.is_zombie())),
        "the stopped process is still there"
    );
    wait_status(r.addr, "/healthz", 200, LONG);
    assert_eq!(restarts_of(r.addr, "web"), 1);
    let err = r.inst.stderr();
    assert!(
        err.contains("web: unhealthy (liveness check failed 3 times in a row): stopping it"),
        "{err}"
    );
    // Three checks 200 ms apart, each failing at its 100 ms timeout: about
    // 500-700 ms after the stop; the bound is loose for a loaded machine.
    eprintln!("SIGSTOP -> unhealthy in {}", ms(detected));
    assert!(detected >= Duration::from_millis(400), "{detected:?}");
    assert!(detected < Duration::from_secs(5), "{detected:?}");
    let st = status(r.addr);
    let web = service(&st, "web").expect("web");
    assert_eq!(web.get("liveness").get("state").str(), Some("passing"));
}

#[test]
fn a_liveness_endpoint_answering_500_crash_loops_to_failed() {
    let dir = TestDir::new("liveness-500");
    let extra = "    liveness: { http: \"http://127.0.0.1:{wport}/health\", interval: 100ms, timeout: 50ms, failures: 2 }
    max_restarts: { count: 1, within: 60s }
    backoff: { initial: 50ms }
    critical: false
  # Keeps rinit up once web has failed (else nothing could run any more).
  other:
    command: [sleep, \"1000\"]";
    let yaml = liveness_config(&dir, extra);
    let Some(r) = start(&dir, &yaml) else { return };
    let py = python3().display().to_string();
    live_service(&r, "web", &py, None);
    dir.write("sick", b"");
    assert!(
        wait_for(LONG, || state_of(r.addr, "web").as_deref()
            == Some("failed")),
        "{}",
        r.inst.stderr()
    );
    assert_eq!(restarts_of(r.addr, "web"), 1, "one restart, then failed");
    let body = wait_status(r.addr, "/healthz", 503, LONG).json();
    assert_eq!(
        failing(&body).get("web").map(String::as_str),
        Some("failed")
    );
    let metrics = must_get(r.addr, "/metrics").body;
    let failures = metric(
        &metrics,
        "rinit_service_liveness_failures_total{service=\"web\"}",
    );
    assert_eq!(failures, Some(4.0), "{metrics}");
    let err = r.inst.stderr();
    assert!(err.contains("web: liveness check failed (1 of 2)"), "{err}");
    assert!(err.contains("stopped as unhealthy"), "{err}");
}

#[test]
fn a_liveness_answer_slower_than_its_timeout_is_a_failure() {
    let dir = TestDir::new("liveness-slow");
    let extra = "    liveness: { http: \"http://127.0.0.1:{wport}/health\", interval: 300ms, timeout: 100ms, failures: 2 }";
    let yaml = liveness_config(&dir, extra);
    let Some(r) = start(&dir, &yaml) else { return };
    let py = python3().display().to_string();
    let (ns, _) = live_service(&r, "web", &py, None);
    dir.write("slow", b"");
    assert!(
        wait_for(LONG, || restarts_of(r.addr, "web") >= 1),
        "{}",
        r.inst.stderr()
    );
    std::fs::remove_file(dir.join("slow")).expect("rm slow");
    live_service(&r, "web", &py, Some(ns));
    wait_status(r.addr, "/healthz", 200, LONG);
}

#[test]
fn start_timeout_restarts_a_service_never_ready_and_a_critical_one_ends_the_container() {
    let dir = TestDir::new("start-timeout");
    let closed = free_port();
    let yaml = format!(
        r#"
health: {{ listen: "127.0.0.1:{{port}}" }}
services:
  db:
    command: [sleep, "1000"]
    ready: {{ tcp: "127.0.0.1:{closed}", interval: 50ms }}
    start_timeout: 300ms
    max_restarts: {{ count: 1, within: 60s }}
    backoff: {{ initial: 50ms }}
"#
    );
    let Some(mut r) = start(&dir, &yaml) else {
        return;
    };
    assert!(
        wait_for(LONG, || must_get(r.addr, "/startupz").status == 503),
        "never ready: /startupz 503"
    );
    // sleep ends on the stop's SIGTERM: the critical service's status.
    assert_eq!(r.inst.expect_exit(LONG), 128 + libc::SIGTERM);
    let err = r.inst.stderr();
    assert_eq!(
        err.matches("db: unhealthy (not ready 300ms after its start: start_timeout)")
            .count(),
        2,
        "{err}"
    );
    assert!(err.contains("failed (critical, shutting down)"), "{err}");
}

#[test]
fn startupz_is_503_until_every_service_was_ready_once() {
    let dir = TestDir::new("startupz");
    let yaml = r#"
health: { listen: "127.0.0.1:{port}" }
services:
  init:
    oneshot: true
    command: [sh, -c, "until test -f {d}/go; do sleep 0.02; done"]
  web:
    command: [sleep, "1000"]
    depends_on: [init]
"#;
    let Some(r) = start(&dir, yaml) else { return };
    let body = must_get(r.addr, "/startupz");
    assert_eq!(body.status, 503, "{body:?}");
    let blamed = failing(&body.json());
    assert_eq!(blamed.len(), 2, "{blamed:?}");
    dir.write("go", b"");
    wait_status(r.addr, "/startupz", 200, LONG);
    // A crash of a service that was ready once does not undo start-up.
    let (_, host) = live_service(&r, "web", "sleep", None);
    assert!(kill(host, libc::SIGKILL));
    wait_status(r.addr, "/healthz", 503, LONG);
    assert_eq!(must_get(r.addr, "/startupz").status, 200);
}

// ---------------------------------------------------------------------------
// 13. sd_notify: services speaking systemd's readiness protocol, and rinit
//     as a notify client (SPEC section 12)
// ---------------------------------------------------------------------------

/// argv: DIR. Speaks sd_notify on $NOTIFY_SOCKET, driven by files in DIR:
/// `go` -> READY=1 with a STATUS; `reload` -> RELOADING=1, then READY=1
/// once `reloaded` exists; with $WATCHDOG_USEC, WATCHDOG=1 every quarter
/// of it until `hang` exists; `extend` (at start) -> EXTEND_TIMEOUT_USEC=3 s.
/// Writes its environment's NOTIFY_SOCKET to DIR/seen.
const NOTIFY_SERVICE: &str = r#"
import os, socket, sys, time
d = sys.argv[1]
addr = os.environ["NOTIFY_SOCKET"]
open(d + "/seen.tmp", "w").write(addr + "\n")
os.rename(d + "/seen.tmp", d + "/seen")
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def send(m):
    s.sendto(m.encode(), addr)
def there(f):
    return os.path.exists(d + "/" + f)
if there("extend"):
    send("EXTEND_TIMEOUT_USEC=3000000")
send("STATUS=warming up")
wd = int(os.environ.get("WATCHDOG_USEC", "0")) / 1e6
ready = reloading = False
while True:
    if not ready and there("go"):
        send("READY=1\nSTATUS=serving")
        ready = True
    if ready and not reloading and there("reload") and not there("reloaded"):
        send("RELOADING=1\nSTATUS=reloading")
        reloading = True
    if reloading and there("reloaded"):
        send("READY=1\nSTATUS=serving again")
        reloading = False
    if wd and not there("hang"):
        send("WATCHDOG=1")
    time.sleep(wd / 4 if wd else 0.02)
"#;

fn notify_config(dir: &TestDir, db_extra: &str) -> String {
    dir.write("notify.py", NOTIFY_SERVICE.as_bytes());
    format!(
        r#"
health: {{ listen: "127.0.0.1:{{port}}" }}
runtime_dir: "{{d}}/run"
services:
  db:
    command: ["{py}", "{{d}}/notify.py", "{{d}}"]
    ready: {{ sd_notify: true }}
{db_extra}
  web:
    command: [sleep, "1000"]
    depends_on: [db]
"#,
        py = python3().display()
    )
}

#[test]
fn an_sd_notify_service_is_ready_on_ready_1_and_reloading_flips_readyz() {
    let dir = TestDir::new("notify-ready");
    let yaml = notify_config(&dir, "");
    let Some(r) = start(&dir, &yaml) else { return };
    let seen = dir.wait_line("seen", LONG).expect("the service ran");
    let seen = seen.trim();
    assert_eq!(seen, dir.join("run/notify/db.sock").display().to_string());
    wait_for(LONG, || {
        service(&status(r.addr), "db").and_then(|s| s.get("notify_status").str().map(String::from))
            == Some("warming up".into())
    });
    // Up for a while and not ready: web waits, whatever db's sockets do.
    assert_eq!(state_of(r.addr, "db").as_deref(), Some("starting"));
    assert_eq!(state_of(r.addr, "web").as_deref(), Some("waiting"));
    dir.write("go", b"");
    wait_status(r.addr, "/readyz", 200, LONG);
    assert_eq!(state_of(r.addr, "web").as_deref(), Some("running"));
    let st = status(r.addr);
    assert_eq!(
        service(&st, "db").unwrap().get("notify_status").str(),
        Some("serving")
    );
    dir.write("reload", b"");
    let body = wait_status(r.addr, "/readyz", 503, LONG).json();
    assert_eq!(
        failing(&body).get("db").map(String::as_str),
        Some("running")
    );
    assert_eq!(
        must_get(r.addr, "/healthz").status,
        200,
        "reloading is healthy"
    );
    dir.write("reloaded", b"");
    wait_status(r.addr, "/readyz", 200, LONG);
    assert!(r
        .inst
        .stderr()
        .contains("db: reloading (not ready until READY=1)"));
}

#[test]
fn notify_datagrams_from_another_service_are_ignored() {
    let dir = TestDir::new("notify-intruder");
    let intruder = r#"  intruder:
    command: ["{py}", "-c", "import socket,time\nwhile True:\n  socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', '{d}/run/notify/db.sock')\n  time.sleep(0.05)"]"#
        .replace("{py}", &python3().display().to_string());
    let yaml = notify_config(&dir, "").replace("  web:\n", &format!("{intruder}\n  web:\n"));
    let Some(r) = start(&dir, &yaml) else { return };
    wait_for(LONG, || {
        metric(
            &must_get(r.addr, "/metrics").body,
            "rinit_notify_ignored_total",
        )
        .is_some_and(|n| n >= 5.0)
    });
    assert_eq!(
        state_of(r.addr, "db").as_deref(),
        Some("starting"),
        "not ready on a stranger's word"
    );
    dir.write("go", b"");
    wait_status(r.addr, "/readyz", 200, LONG);
}

#[test]
fn a_missed_watchdog_restarts_the_service_and_extend_timeout_is_honoured() {
    let dir = TestDir::new("notify-watchdog");
    dir.write("extend", b"");
    let extra = "    watchdog: 400ms\n    start_timeout: 500ms\n    backoff: { initial: 50ms }";
    let yaml = notify_config(&dir, extra);
    let Some(r) = start(&dir, &yaml) else { return };
    let py = python3().display().to_string();
    // EXTEND_TIMEOUT_USEC=3 s: still starting past the 500 ms start_timeout.
    dir.wait_line("seen", LONG).expect("the service ran");
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        state_of(r.addr, "db").as_deref(),
        Some("starting"),
        "{}",
        r.inst.stderr()
    );
    assert_eq!(restarts_of(r.addr, "db"), 0);
    dir.write("go", b"");
    let (ns, _) = live_service(&r, "db", &py, None);
    // Fed every 100 ms: stays up.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(restarts_of(r.addr, "db"), 0, "{}", r.inst.stderr());
    dir.write("hang", b"");
    live_service(&r, "db", &py, Some(ns));
    assert_eq!(restarts_of(r.addr, "db"), 1);
    assert!(r
        .inst
        .stderr()
        .contains("db: unhealthy (no WATCHDOG=1 for 400ms: watchdog)"));
}

#[test]
fn rinit_tells_its_own_notify_socket_ready_and_stopping_and_keeps_it_from_services() {
    let dir = TestDir::new("notify-client");
    let listener = std::os::unix::net::UnixDatagram::bind(dir.join("outer.sock")).expect("bind");
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let yaml = notify_config(&dir, "");
    let outer = dir.join("outer.sock");
    let Some(mut r) = start_with(&dir, &yaml, |l| l.env("NOTIFY_SOCKET", &outer)) else {
        return;
    };
    let mut got: Vec<String> = Vec::new();
    let read = |got: &mut Vec<String>| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    };
    read(&mut got);
    assert!(!got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    // The service got its own socket, not rinit's.
    let seen = dir.wait_line("seen", LONG).expect("seen");
    let seen = seen.trim();
    assert!(seen.ends_with("run/notify/db.sock"), "{seen}");
    dir.write("go", b"");
    wait_status(r.addr, "/readyz", 200, LONG);
    assert!(
        wait_for(LONG, || {
            read(&mut got);
            got.iter()
                .any(|m| m.starts_with("READY=1\nSTATUS=2/2 services ready"))
        }),
        "{got:?}"
    );
    r.inst.signal(libc::SIGTERM);
    assert_eq!(r.inst.expect_exit(LONG), 0);
    read(&mut got);
    assert!(got.iter().any(|m| m.starts_with("STOPPING=1")), "{got:?}");
    assert_eq!(
        got.iter().filter(|m| m.contains("READY=1")).count(),
        1,
        "{got:?}"
    );
}

#[test]
fn fd_readiness_is_the_first_newline_on_the_descriptor() {
    let dir = TestDir::new("ready-fd");
    let yaml = r#"
health: { listen: "127.0.0.1:{port}" }
services:
  db:
    command: "echo \"${NOTIFY_SOCKET:-none}\" > {d}/notify.tmp; mv {d}/notify.tmp {d}/notify; until test -f {d}/go; do sleep 0.02; done; echo ready >&3; exec sleep 1000"
    ready: { fd: 3 }
  quiet:
    # Closes its descriptor without a newline: that says nothing.
    command: "exec 3>&-; exec sleep 1000"
    ready: { fd: 3 }
    critical: false
  web:
    command: [sleep, "1000"]
    depends_on: [db]
"#;
    let Some(r) = start(&dir, yaml) else { return };
    wait_for(LONG, || {
        state_of(r.addr, "db").as_deref() == Some("starting")
    });
    assert_eq!(state_of(r.addr, "web").as_deref(), Some("waiting"));
    dir.write("go", b"");
    assert!(wait_for(LONG, || state_of(r.addr, "web").as_deref()
        == Some("running")));
    assert_eq!(state_of(r.addr, "db").as_deref(), Some("running"));
    assert_eq!(state_of(r.addr, "quiet").as_deref(), Some("starting"));
    // A pipe, not an sd_notify socket: no NOTIFY_SOCKET for it.
    assert_eq!(dir.read("notify").as_deref(), Some("none\n"));
}

#[test]
fn two_hundred_services_with_liveness_every_100ms_keep_threads_and_fds_flat() {
    let _serial = serial();
    let dir = TestDir::new("liveness-200");
    // The check target: a listener that accepts and drops, with a backlog
    // for all 200 at once (std's listen backlog is 128, and checks of
    // services that became ready together connect in the same instant).
    let listener = "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(1024)\nprint(s.getsockname()[1], flush=True)\nwhile True:\n    s.accept()[0].close()";
    let mut target = KillOnDrop::spawn(
        Command::new(python3())
            .args(["-c", listener])
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    let stdout = target.0.stdout.take().expect("listener stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("listener port");
    let port: u16 = line.trim().parse().expect("a port number");
    let mut yaml = String::from("health: { listen: \"127.0.0.1:{port}\" }\nservices:\n");
    for i in 0..200 {
        yaml.push_str(&format!(
            "  s{i}:\n    command: [sleep, \"1000\"]\n    liveness: {{ tcp: \"127.0.0.1:{port}\", interval: 100ms, timeout: 50ms }}\n"
        ));
    }
    let Some(r) = start(&dir, &yaml) else { return };
    wait_status(r.addr, "/readyz", 200, LONG);
    let pid = r.inst.pid();
    // Check sockets in flight come and go: compare the fewest open fds
    // seen in the first and in the last seconds (a leak raises both).
    let fewest_fds = |secs: u64| {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut fewest = usize::MAX;
        while Instant::now() < end {
            fewest = fewest.min(open_fds(pid).len());
            assert_eq!(thread_count(pid), 4, "threads do not grow with checks");
            std::thread::sleep(Duration::from_millis(20));
        }
        fewest
    };
    let fds_before = fewest_fds(2);
    std::thread::sleep(Duration::from_secs(6));
    let fds_after = fewest_fds(2);
    eprintln!("fewest open fds: {fds_before} at first, {fds_after} after 10 s");
    assert!(
        fds_after <= fds_before + 4,
        "fds grew from {fds_before} to {fds_after}"
    );
    let metrics = must_get(r.addr, "/metrics").body;
    let failed: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("rinit_service_liveness_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failed, 0.0, "no check failed or timed out");
    assert_eq!(restarts_of(r.addr, "s0"), 0);
}
