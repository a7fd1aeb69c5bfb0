//! Network readiness probes (`tcp`, `http`), each run on a short-lived
//! thread that reports pass or fail. They never touch processes; exec
//! probes are spawned and reaped like any other child by the supervisor.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::config::ReadyCheck;

/// Runs the check on its own thread and calls `report` with the result.
pub fn start(check: ReadyCheck, timeout: Duration, report: impl FnOnce(bool) + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("probe".into())
        .stack_size(128 * 1024)
        .spawn(move || report(run(&check, timeout)));
    if let Err(e) = spawned {
        log::warn!("cannot start a readiness probe: {e}");
    }
}

pub fn run(check: &ReadyCheck, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    match check {
        ReadyCheck::Tcp { host, port } => connect(host, *port, deadline).is_some(),
        ReadyCheck::Http { host, port, path } => {
            http_ok(host, *port, path, deadline).unwrap_or(false)
        }
        ReadyCheck::Exec(_) => false,
    }
}

fn connect(host: &str, port: u16, deadline: Instant) -> Option<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().ok()?.collect();
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        if let Ok(s) = TcpStream::connect_timeout(&addr, left) {
            return Some(s);
        }
    }
    None
}

fn http_ok(host: &str, port: u16, path: &str, deadline: Instant) -> Option<bool> {
    let mut s = connect(host, port, deadline)?;
    let left = deadline.saturating_duration_since(Instant::now());
    s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    s.set_write_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: rinit-probe\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        if Instant::now() >= deadline {
            return None;
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(status_ok(&head))
}

/// `HTTP/1.x NNN ...` with NNN in 200..=399.
fn status_ok(head: &[u8]) -> bool {
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
    }

    #[test]
    fn tcp_probe_passes_on_listener_and_fails_on_closed_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let check = ReadyCheck::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert!(run(&check, Duration::from_secs(1)));
        drop(l);
        assert!(!run(&check, Duration::from_secs(1)));
    }

    #[test]
    fn http_probe_reads_the_status() {
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
        });
        let check = ReadyCheck::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/ping".into(),
        };
        assert!(run(&check, Duration::from_secs(2)));
        assert!(!run(&check, Duration::from_secs(2)));
        server.join().unwrap();
    }
}
