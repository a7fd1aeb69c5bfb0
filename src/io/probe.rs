//! Network readiness probes (`tcp`, `http`) as non-blocking sockets in the
//! io thread's poll set: no thread per attempt, and each attempt's whole
//! budget (connect, send, read of the status line) is its `timeout`.
//!
//! Names are resolved without a blocking call in the io thread: an IP
//! literal as is; otherwise `/etc/hosts` is read at each attempt (a local
//! file, bounded), and a name found in neither uses what the system
//! resolver answered once at start-up, before supervision began (see
//! [`Resolver::prime`]). A name none of these know fails the attempt.
//!
//! Each attempt carries the key the core gave it (service, generation,
//! attempt number), so a late result is never credited to a newer one.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::config::ReadyCheck;
use crate::core::types::after;
use crate::os::sys;

/// Which attempt a result belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeKey {
    pub service: usize,
    pub generation: u64,
    pub attempt: u64,
}

pub struct ProbeRequest {
    pub key: ProbeKey,
    pub check: ReadyCheck,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct ProbeDone {
    pub key: ProbeKey,
    pub ok: bool,
}

/// Most bytes of a response read before the status line must be complete.
const MAX_STATUS_LINE: usize = 1024;

enum Phase {
    /// Connecting to `addrs[next - 1]`.
    Connect {
        sock: TcpStream,
        addrs: Vec<SocketAddr>,
        next: usize,
    },
    Send {
        sock: TcpStream,
        request: Vec<u8>,
        sent: usize,
    },
    Recv {
        sock: TcpStream,
        head: Vec<u8>,
    },
}

struct Attempt {
    key: ProbeKey,
    deadline: Instant,
    /// The request to send once connected (http), or None (tcp).
    request: Option<Vec<u8>>,
    phase: Phase,
}

/// Names resolved once at start-up, for probes whose host is neither an IP
/// literal nor in /etc/hosts.
#[derive(Default, Clone)]
pub struct Resolver {
    primed: HashMap<String, Vec<IpAddr>>,
}

impl Resolver {
    /// Resolves, with the system resolver, every probe host that needs it.
    /// Called before supervision starts: this may block (it is bounded by
    /// the resolver's own timeouts), and it is the only name lookup rinit
    /// makes that is not a file read.
    pub fn prime<'a>(hosts: impl Iterator<Item = &'a str>) -> Resolver {
        let mut primed = HashMap::new();
        for host in hosts {
            if host.parse::<IpAddr>().is_ok() || primed.contains_key(host) {
                continue;
            }
            if !from_hosts_file(host).is_empty() {
                continue;
            }
            let ips: Vec<IpAddr> = (host, 0)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect())
                .unwrap_or_default();
            if ips.is_empty() {
                log::warn!("cannot resolve probe host '{host}'; its probes will fail");
            }
            primed.insert(host.to_string(), ips);
        }
        Resolver { primed }
    }

    fn resolve(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        let ips = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let local = from_hosts_file(host);
                if local.is_empty() {
                    self.primed.get(host).cloned().unwrap_or_default()
                } else {
                    local
                }
            }
        };
        ips.into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect()
    }
}

/// The addresses /etc/hosts gives `host` (case-insensitive), in file order.
fn from_hosts_file(host: &str) -> Vec<IpAddr> {
    let Ok(text) = std::fs::read_to_string("/etc/hosts") else {
        return Vec::new();
    };
    hosts_lookup(&text, host)
}

pub fn hosts_lookup(text: &str, host: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        if words.any(|name| name.eq_ignore_ascii_case(host)) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[derive(Default)]
pub struct Probes {
    attempts: Vec<Attempt>,
    resolver: Resolver,
    /// Finished attempts, for the io loop to report.
    done: Vec<ProbeDone>,
}

impl Probes {
    pub fn new(resolver: Resolver) -> Probes {
        Probes {
            resolver,
            ..Probes::default()
        }
    }

    /// Starts an attempt; a newer attempt for the same service replaces an
    /// older one still running (whose result would be stale anyway).
    pub fn start(&mut self, req: ProbeRequest, now: Instant) {
        self.attempts.retain(|a| a.key.service != req.key.service);
        let (host, port, request) = match &req.check {
            ReadyCheck::Tcp { host, port } => (host.as_str(), *port, None),
            ReadyCheck::Http { host, port, path } => {
                let head = format!(
                    "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: rinit-probe\r\nConnection: close\r\n\r\n",
                    host_header(host, *port)
                );
                (host.as_str(), *port, Some(head.into_bytes()))
            }
            ReadyCheck::Exec(_) | ReadyCheck::Notify | ReadyCheck::Fd(_) => {
                return self.finish(req.key, false)
            }
        };
        let addrs = self.resolver.resolve(host, port);
        let deadline = after(now, req.timeout);
        match connect_next(&addrs, 0) {
            Some((sock, next)) => self.attempts.push(Attempt {
                key: req.key,
                deadline,
                request,
                phase: Phase::Connect { sock, addrs, next },
            }),
            None => self.finish(req.key, false),
        }
    }

    fn finish(&mut self, key: ProbeKey, ok: bool) {
        self.done.push(ProbeDone { key, ok });
    }

    /// Results since the last call.
    pub fn take_done(&mut self) -> Vec<ProbeDone> {
        std::mem::take(&mut self.done)
    }

    pub fn interest(&self, fds: &mut Vec<libc::pollfd>) {
        fds.extend(self.attempts.iter().map(|a| {
            let (sock, events) = match &a.phase {
                Phase::Connect { sock, .. } | Phase::Send { sock, .. } => (sock, libc::POLLOUT),
                Phase::Recv { sock, .. } => (sock, libc::POLLIN),
            };
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events,
                revents: 0,
            }
        }));
    }

    pub fn on_ready(&mut self, revents: &[libc::c_short]) {
        let attempts = std::mem::take(&mut self.attempts);
        for (a, &ev) in attempts
            .into_iter()
            .zip(revents.iter().chain(std::iter::repeat(&0)))
        {
            if ev == 0 {
                self.attempts.push(a);
                continue;
            }
            match advance(a) {
                Step::Continue(a) => self.attempts.push(a),
                Step::Done(key, ok) => self.finish(key, ok),
            }
        }
    }

    /// Fails attempts past their deadline.
    pub fn on_timers(&mut self, now: Instant) {
        let (late, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.attempts)
            .into_iter()
            .partition(|a| a.deadline <= now);
        self.attempts = live;
        for a in late {
            self.finish(a.key, false);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.attempts.iter().map(|a| a.deadline).min()
    }

    pub fn len(&self) -> usize {
        self.attempts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }
}

fn host_header(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Starts connecting to the first address from `from` on that accepts a
/// connect attempt; returns the socket and the index after it.
fn connect_next(addrs: &[SocketAddr], from: usize) -> Option<(TcpStream, usize)> {
    addrs.iter().enumerate().skip(from).find_map(|(i, addr)| {
        sys::tcp_connect_start(addr)
            .ok()
            .map(|fd| (TcpStream::from(fd), i + 1))
    })
}

enum Step {
    Continue(Attempt),
    Done(ProbeKey, bool),
}

fn advance(mut a: Attempt) -> Step {
    let key = a.key;
    a.phase = match a.phase {
        Phase::Connect { sock, addrs, next } => {
            if sys::socket_error(sock.as_raw_fd()) != 0 {
                drop(sock);
                return match connect_next(&addrs, next) {
                    Some((sock, next)) => Step::Continue(Attempt {
                        phase: Phase::Connect { sock, addrs, next },
                        ..a
                    }),
                    None => Step::Done(key, false),
                };
            }
            match a.request.take() {
                None => return Step::Done(key, true),
                Some(request) => Phase::Send {
                    sock,
                    request,
                    sent: 0,
                },
            }
        }
        Phase::Send {
            mut sock,
            request,
            mut sent,
        } => loop {
            match sock.write(&request[sent..]) {
                Ok(n) if n > 0 => sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    break Phase::Send {
                        sock,
                        request,
                        sent,
                    }
                }
                _ => return Step::Done(key, false),
            }
            if sent == request.len() {
                break Phase::Recv {
                    sock,
                    head: Vec::with_capacity(128),
                };
            }
        },
        Phase::Recv { mut sock, mut head } => {
            let mut buf = [0u8; 512];
            loop {
                match sock.read(&mut buf) {
                    Ok(0) => return Step::Done(key, status_ok(&head)),
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return Step::Done(key, false),
                }
                if head.windows(2).any(|w| w == b"\r\n") || head.len() >= MAX_STATUS_LINE {
                    return Step::Done(key, status_ok(&head));
                }
            }
            Phase::Recv { sock, head }
        }
    };
    Step::Continue(a)
}

/// `HTTP/1.x NNN ...` with NNN in 200..=399.
pub fn status_ok(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split_whitespace();
    let proto_ok = parts.next().is_some_and(|p| p.starts_with("HTTP/"));
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    proto_ok && code.is_some_and(|c| (200..400).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn status_lines() {
        assert!(status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_ok(b"HTTP/1.0 302 Found\r\n"));
        assert!(!status_ok(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_ok(b"SSH-2.0\r\n"));
        assert!(!status_ok(b""));
    }

    #[test]
    fn hosts_file_lookup() {
        let text = "127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n10.0.0.5 db DB.local\n#1.2.3.4 db\n";
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(hosts_lookup(text, "localhost"), vec![v4, v6]);
        assert_eq!(hosts_lookup(text, "db.LOCAL").len(), 1);
        assert!(hosts_lookup(text, "nothere").is_empty());
    }

    /// Drives `probes` with real poll calls until it reports, at most 5 s.
    fn run_one(probes: &mut Probes, check: ReadyCheck, timeout: Duration) -> bool {
        let key = ProbeKey {
            service: 0,
            generation: 1,
            attempt: 1,
        };
        probes.start(
            ProbeRequest {
                key,
                check,
                timeout,
            },
            Instant::now(),
        );
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Some(d) = probes.take_done().pop() {
                assert_eq!(d.key, key);
                return d.ok;
            }
            let mut fds = Vec::new();
            probes.interest(&mut fds);
            let _ = sys::poll(&mut fds, 10);
            let revents: Vec<_> = fds.iter().map(|f| f.revents).collect();
            probes.on_ready(&revents);
            probes.on_timers(Instant::now());
        }
        panic!("probe did not finish");
    }

    #[test]
    fn tcp_passes_on_a_listener_and_fails_on_a_closed_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut p = Probes::default();
        let tcp = |host: &str| ReadyCheck::Tcp {
            host: host.into(),
            port,
        };
        assert!(run_one(&mut p, tcp("127.0.0.1"), Duration::from_secs(1)));
        assert!(run_one(&mut p, tcp("localhost"), Duration::from_secs(1)));
        drop(l);
        assert!(!run_one(&mut p, tcp("127.0.0.1"), Duration::from_secs(1)));
        assert!(p.is_empty());
    }

    #[test]
    fn http_reads_the_status_and_times_out_in_total() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.0 204 No Content\r\n\r\n",
                "HTTP/1.0 500 Oops\r\n\r\n",
            ] {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = [0u8; 512];
                let _ = c.read(&mut buf);
                c.write_all(answer.as_bytes()).unwrap();
            }
            // Third: accept, then say nothing until the probe gives up.
            let (c, _) = l.accept().unwrap();
            std::thread::sleep(Duration::from_millis(800));
            drop(c);
        });
        let http = ReadyCheck::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/ping".into(),
        };
        let mut p = Probes::default();
        assert!(run_one(&mut p, http.clone(), Duration::from_secs(2)));
        assert!(!run_one(&mut p, http.clone(), Duration::from_secs(2)));
        let t0 = Instant::now();
        assert!(!run_one(&mut p, http, Duration::from_millis(200)));
        assert!(
            t0.elapsed() < Duration::from_millis(700),
            "{:?}",
            t0.elapsed()
        );
        server.join().unwrap();
    }
}
