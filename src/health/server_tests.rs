//! In-process tests of the server and the probe client over 127.0.0.1:0.
//! Every client socket has timeouts, so no test can hang; sleeps only pace
//! the slow clients, never stand in for synchronization.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::probe_client::probe;
use super::server::{serve_with, Limits};
use super::Published;
use crate::core::snapshot::{Phase, ServiceView, Snapshot};
use crate::core::types::ExitStatus;
use crate::health::json_check;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn service(name: &str, phase: Phase) -> ServiceView {
    ServiceView {
        id: 0,
        removed: false,
        name: name.to_string(),
        phase,
        pid: matches!(phase, Phase::Running).then_some(4242),
        restarts: 0,
        last_exit: None,
        since: Some(Instant::now()),
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

fn healthy() -> Snapshot {
    let mut snap = Snapshot::empty();
    snap.services.push(service("db", Phase::Running));
    snap
}

fn unhealthy() -> Snapshot {
    let mut snap = healthy();
    let mut web = service("web", Phase::Backoff);
    web.last_exit = Some(ExitStatus::Code(1));
    snap.services.push(web);
    snap
}

fn start_with(snap: Snapshot, limits: Limits) -> (SocketAddr, Arc<Published>) {
    let listener = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let published = Arc::new(Published::new(snap));
    serve_with(listener, Arc::clone(&published), limits).unwrap();
    (addr, published)
}

fn start(snap: Snapshot) -> (SocketAddr, Arc<Published>) {
    start_with(snap, Limits::default())
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut stream = connect(addr);
    stream.write_all(raw).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let text = String::from_utf8(all).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{text:?}"));
    let status = head[9..12].parse().unwrap();
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn get(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    exchange(addr, raw.as_bytes())
}

#[test]
fn endpoints_answer_from_the_snapshot() {
    let (addr, _) = start(healthy());
    for path in [
        "/healthz",
        "/readyz",
        "/status",
        "/metrics",
        "/healthz?verbose=1",
    ] {
        let reply = get(addr, "GET", path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.head);
        assert!(reply.head.contains("Cache-Control: no-store"));
        assert!(reply
            .head
            .contains(&format!("Content-Length: {}", reply.body.len())));
    }
    let metrics = get(addr, "GET", "/metrics");
    assert!(metrics
        .head
        .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert!(metrics
        .body
        .contains("rinit_service_up{service=\"db\"} 1\n"));
    let status = json_check::parse(&get(addr, "GET", "/status").body).unwrap();
    assert_eq!(
        status.get("services").arr()[0].get("state").str(),
        "running"
    );

    let (addr, _) = start(unhealthy());
    let health = get(addr, "GET", "/healthz");
    assert_eq!(health.status, 503);
    assert!(health.head.contains("Content-Type: application/json"));
    assert_eq!(
        health.body,
        r#"{"status":"unhealthy","shutting_down":false,"failing":[{"name":"web","state":"backoff","last_exit":{"code":1}}]}"#
    );
    assert_eq!(get(addr, "GET", "/readyz").status, 503);
    assert_eq!(get(addr, "GET", "/status").status, 200);
    assert_eq!(get(addr, "GET", "/metrics").status, 200);
}

#[test]
fn head_405_404_400() {
    let (addr, _) = start(unhealthy());
    let full = get(addr, "GET", "/readyz");
    let head = get(addr, "HEAD", "/readyz");
    assert_eq!(head.status, 503);
    assert_eq!(head.head, full.head);
    assert!(head.body.is_empty());
    let post = get(addr, "POST", "/healthz");
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET, HEAD"));
    assert_eq!(get(addr, "GET", "/").status, 404);
    assert_eq!(get(addr, "GET", "/healthz/x").status, 404);
    assert_eq!(exchange(addr, b"BLAH\r\n\r\n").status, 400);
    assert_eq!(exchange(addr, b"GET /healthz HTTP/9.9\r\n\r\n").status, 400);
    assert_eq!(
        exchange(addr, b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n").status,
        400
    );
    // A head cut short by the client's end of input.
    let mut stream = connect(addr);
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

#[test]
fn oversize_head_is_refused_and_the_server_goes_on() {
    let (addr, _) = start(healthy());
    let mut raw = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for i in 0..400 {
        raw.extend_from_slice(format!("X-Padding-{i}: {}\r\n", "a".repeat(40)).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert!(raw.len() > 16 * 1024);
    let reply = exchange(addr, &raw);
    assert_eq!(reply.status, 431);
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(20_000));
    assert_eq!(exchange(addr, long_line.as_bytes()).status, 431);
    assert_eq!(get(addr, "GET", "/healthz").status, 200);
}

#[test]
fn a_new_snapshot_shows_on_the_next_request() {
    let (addr, published) = start(healthy());
    assert_eq!(get(addr, "GET", "/healthz").status, 200);
    published.publish(Arc::new(unhealthy()));
    assert_eq!(get(addr, "GET", "/healthz").status, 503);
    let mut stopping = healthy();
    stopping.shutting_down = true;
    published.publish(Arc::new(stopping));
    let reply = get(addr, "GET", "/readyz");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("\"shutting_down\":true"));
}

/// Time a fresh /healthz, from connect to the end of the response.
fn timed_healthz(addr: SocketAddr) -> (u16, Duration) {
    let t0 = Instant::now();
    let reply = get(addr, "GET", "/healthz");
    (reply.status, t0.elapsed())
}

#[test]
fn idle_and_slow_clients_do_not_delay_a_probe() {
    let (addr, _) = start(healthy());
    let idle: Vec<TcpStream> = (0..200).map(|_| connect(addr)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(21));
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let (stop, started) = (Arc::clone(&stop), Arc::clone(&started));
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let head = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
                s.write_all(&head[..1]).unwrap();
                let mut sent = 1;
                started.wait();
                // Pacing, not synchronization: one byte per 100 ms until the
                // server closes the connection or the test ends.
                while !stop.load(Ordering::Relaxed) && sent < head.len() {
                    std::thread::sleep(Duration::from_millis(100));
                    if s.write_all(&head[sent..=sent]).is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    started.wait();
    // Probe throughout the slow clients' drip (pacing, not synchronization).
    let mut worst = Duration::ZERO;
    for _ in 0..12 {
        let (status, took) = timed_healthz(addr);
        assert_eq!(status, 200);
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<usize> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        worst < Duration::from_secs(1),
        "slowest probe took {worst:?}"
    );
    // Every slow client was still dripping while the probes ran.
    assert!(sent.iter().all(|&n| n >= 5), "{sent:?}");
    drop(idle);
}

#[test]
fn slow_and_idle_connections_are_closed_at_their_deadline() {
    let limits = Limits {
        head_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (addr, _) = start_with(healthy(), limits);
    let mut idle = connect(addr);
    let mut partial = connect(addr);
    partial.write_all(b"GET /hea").unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    assert_eq!(idle.read(&mut buf).unwrap(), 0);
    assert_eq!(partial.read(&mut buf).unwrap(), 0);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn a_full_server_evicts_the_oldest_connection() {
    let limits = Limits {
        max_conns: 8,
        ..Limits::default()
    };
    let (addr, _) = start_with(healthy(), limits);
    let mut idle: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    let (status, took) = timed_healthz(addr);
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "{took:?}");
    // The first idle connection was among the evicted: it reads EOF at once.
    let mut buf = [0u8; 8];
    idle[0]
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert_eq!(idle[0].read(&mut buf).unwrap(), 0);
}

#[test]
fn many_requests_from_many_threads_are_all_answered() {
    let (addr, _) = start(healthy());
    let t0 = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let paths = ["/healthz", "/readyz", "/status", "/metrics"];
                (0..250)
                    .filter(|n| get(addr, "GET", paths[(i + n) % 4]).status == 200)
                    .count()
            })
        })
        .collect();
    let answered: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(answered, 2000);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}

/// Voluntary context switches of the thread named `name` in this process.
fn wakeups(name: &str) -> Option<u64> {
    // Other tests' threads come and go: skip a task that vanished.
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = task.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if comm.trim_end() == name {
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let line = status
                .lines()
                .find(|l| l.starts_with("voluntary_ctxt_switches:"))?;
            return line.split_whitespace().nth(1)?.parse().ok();
        }
    }
    None
}

#[test]
fn an_idle_server_does_not_wake_up() {
    let limits = Limits {
        thread_name: "http-idle-test".to_string(),
        ..Limits::default()
    };
    let (addr, _) = start_with(healthy(), limits);
    assert_eq!(get(addr, "GET", "/healthz").status, 200);
    // Wait (bounded) for two samples 500 ms apart with no wake-up between.
    let t0 = Instant::now();
    let mut last = wakeups("http-idle-test").expect("server thread");
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = wakeups("http-idle-test").expect("server thread");
        if now == last {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "still waking up: {last} -> {now}"
        );
        last = now;
    }
}

#[test]
fn probe_reports_the_status() {
    let (addr, published) = start(healthy());
    assert_eq!(probe(&addr.to_string(), false), 0);
    assert_eq!(probe(&addr.to_string(), true), 0);
    assert_eq!(probe(&format!("0.0.0.0:{}", addr.port()), false), 0);
    published.publish(Arc::new(unhealthy()));
    assert_eq!(probe(&addr.to_string(), false), 1);
    assert_eq!(probe(&addr.to_string(), true), 1);
}

#[test]
fn probe_fails_fast_when_nothing_listens() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t0 = Instant::now();
    assert_eq!(probe(&format!("127.0.0.1:{port}"), false), 1);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn probe_gives_up_on_a_silent_listener() {
    // Connections complete in the kernel backlog; nobody ever answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let t0 = Instant::now();
    assert_eq!(probe(&addr.to_string(), false), 1);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(silent);
}

#[test]
fn probe_rejects_a_non_http_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"SSH-2.0-nope\r\n").unwrap();
    });
    assert_eq!(probe(&addr.to_string(), false), 1);
    answer.join().unwrap();
}
