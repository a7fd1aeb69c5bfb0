//! `rinit probe`: ask a running rinit's `/healthz` (or `/readyz`) and turn
//! the answer into an exit code, for `HEALTHCHECK` in images without curl.
//!
//! Invariants: the whole exchange (connect, send, read the status line)
//! ends within `TOTAL` (under the 2 s of the contract), connecting takes at
//! most `CONNECT`; the result is 0 only for a 2xx status line, and every
//! failure writes exactly one line on stderr saying why.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The whole exchange, at most.
const TOTAL: Duration = Duration::from_millis(1500);
/// One connect attempt, at most.
const CONNECT: Duration = Duration::from_secs(1);
/// The status line must fit in this many bytes.
const MAX_STATUS_LINE: usize = 1024;

/// Why a probe failed.
#[derive(Debug)]
enum ProbeError {
    BadAddress(String),
    Resolve(io::Error),
    Connect(SocketAddr, io::Error),
    Timeout,
    Io(io::Error),
    BadAnswer,
    Status(u16),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::BadAddress(why) => write!(f, "bad address: {why}"),
            ProbeError::Resolve(e) => write!(f, "cannot resolve: {e}"),
            ProbeError::Connect(to, e) => write!(f, "cannot connect to {to}: {e}"),
            ProbeError::Timeout => write!(f, "no answer within {} ms", TOTAL.as_millis()),
            ProbeError::Io(e) => write!(f, "{e}"),
            ProbeError::BadAnswer => write!(f, "not an HTTP/1.x status line"),
            ProbeError::Status(code) => write!(f, "status {code}"),
        }
    }
}

impl From<io::Error> for ProbeError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => ProbeError::Timeout,
            _ => ProbeError::Io(e),
        }
    }
}

/// Ask `http://ADDR/healthz` (`/readyz` when `ready`): 0 on a 2xx answer,
/// else 1 with the reason on stderr. ADDR is `host:port`; a wildcard host
/// (`0.0.0.0`, `::`, empty) means loopback.
pub fn probe(addr: &str, ready: bool) -> i32 {
    let path = if ready { "/readyz" } else { "/healthz" };
    let deadline = Instant::now() + TOTAL;
    match ask(addr, path, deadline) {
        Ok(()) => 0,
        Err(e) => {
            // Nothing useful can be done if stderr itself fails.
            let _ = writeln!(io::stderr(), "rinit: probe http://{addr}{path}: {e}");
            1
        }
    }
}

fn ask(addr: &str, path: &str, deadline: Instant) -> Result<(), ProbeError> {
    let targets = resolve(addr)?;
    let (mut stream, peer) = connect(&targets, deadline)?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {peer}\r\nUser-Agent: rinit-probe\r\nConnection: close\r\n\r\n"
    );
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(request.as_bytes())?;
    match read_status(&mut stream, deadline)? {
        code if (200..300).contains(&code) => Ok(()),
        code => Err(ProbeError::Status(code)),
    }
}

/// Time left before `deadline`, or `Timeout` when none (a zero socket
/// timeout would mean "no timeout").
fn remaining(deadline: Instant) -> Result<Duration, ProbeError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ProbeError::Timeout)
    } else {
        Ok(left)
    }
}

/// `host:port` to socket addresses, wildcards turned into loopback.
fn resolve(addr: &str) -> Result<Vec<SocketAddr>, ProbeError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| ProbeError::BadAddress(format!("{addr:?} has no port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| ProbeError::BadAddress(format!("bad port {port:?}")))?;
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    let found: Vec<SocketAddr> = match host {
        "" | "*" => vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)],
        h => (h, port)
            .to_socket_addrs()
            .map_err(ProbeError::Resolve)?
            .collect(),
    };
    if found.is_empty() {
        return Err(ProbeError::BadAddress(format!("{host:?} has no address")));
    }
    Ok(found.into_iter().map(loopback_if_wildcard).collect())
}

fn loopback_if_wildcard(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The first address that accepts a connection in time.
fn connect(
    targets: &[SocketAddr],
    deadline: Instant,
) -> Result<(TcpStream, SocketAddr), ProbeError> {
    let mut last = ProbeError::Timeout;
    for &target in targets {
        let limit = remaining(deadline)?.min(CONNECT);
        match TcpStream::connect_timeout(&target, limit) {
            Ok(stream) => return Ok((stream, target)),
            Err(e) if e.kind() == ErrorKind::TimedOut => last = ProbeError::Timeout,
            Err(e) => last = ProbeError::Connect(target, e),
        }
    }
    Err(last)
}

/// Read up to the end of the status line and return its code.
fn read_status(stream: &mut TcpStream, deadline: Instant) -> Result<u16, ProbeError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            return parse_status_line(&buf[..end]).ok_or(ProbeError::BadAnswer);
        }
        if buf.len() >= MAX_STATUS_LINE {
            return Err(ProbeError::BadAnswer);
        }
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => {
                let closed = io::Error::new(ErrorKind::UnexpectedEof, "closed without an answer");
                return Err(ProbeError::Io(closed));
            }
            Ok(0) => return parse_status_line(&buf).ok_or(ProbeError::BadAnswer),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `HTTP/1.x NNN reason` to NNN.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !matches!(rest.get(3), None | Some(b' ' | b'\r')) {
        return None;
    }
    Some(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 204\r"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/2 200 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn wildcards_become_loopback() {
        let one = |a: &str| resolve(a).unwrap()[0];
        assert_eq!(one("0.0.0.0:9090"), "127.0.0.1:9090".parse().unwrap());
        assert_eq!(one("[::]:9090"), "[::1]:9090".parse().unwrap());
        assert_eq!(one(":::9090"), "[::1]:9090".parse().unwrap());
        assert_eq!(one(":9090"), "127.0.0.1:9090".parse().unwrap());
        assert_eq!(one("10.1.2.3:80"), "10.1.2.3:80".parse().unwrap());
        assert_eq!(one("[fe80::1]:80"), "[fe80::1]:80".parse().unwrap());
        assert!(matches!(resolve("9090"), Err(ProbeError::BadAddress(_))));
        assert!(matches!(resolve("h:port"), Err(ProbeError::BadAddress(_))));
    }
}
