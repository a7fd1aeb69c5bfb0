//! `rinit ctl`: one request over the control socket, its answer printed.
//! An ordinary short-lived process, not PID 1: blocking I/O with timeouts.
//!
//! Exit status (SPEC section 10): 0 done; 1 the operation failed (a service
//! did not become ready, a refusal); 2 usage error or unknown service
//! (nothing changed); 3 cannot talk to rinit (no socket, refused,
//! permission denied), with a message naming the socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::socket;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlVerb {
    Status,
    Start,
    Stop,
    Restart,
    Signal(String),
    Logs,
    Reload,
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlArgs {
    pub socket: Option<PathBuf>,
    pub verb: CtlVerb,
    pub names: Vec<String>,
    pub json: bool,
    pub wait: bool,
    pub timeout: Option<Duration>,
    pub lines: Option<usize>,
    pub follow: bool,
    pub dry_run: bool,
}

impl CtlArgs {
    pub fn new(verb: CtlVerb) -> CtlArgs {
        CtlArgs {
            socket: None,
            verb,
            names: Vec::new(),
            json: false,
            wait: true,
            timeout: None,
            lines: None,
            follow: false,
            dry_run: false,
        }
    }

    /// The request line's method and target.
    pub fn target(&self) -> (&'static str, String) {
        let names = self.names.join(",");
        let format = if self.json { "" } else { "format=text" };
        let mut q: Vec<String> = Vec::new();
        let method = match &self.verb {
            CtlVerb::Status => {
                q.push(format.into());
                let path = if names.is_empty() {
                    "/v1/services".to_string()
                } else {
                    format!("/v1/services/{names}")
                };
                return ("GET", with_query(path, &q));
            }
            CtlVerb::Logs => {
                if !names.is_empty() {
                    q.push(format!("service={names}"));
                }
                if let Some(n) = self.lines {
                    q.push(format!("n={n}"));
                }
                if self.follow {
                    q.push("follow=1".into());
                }
                return ("GET", with_query("/v1/logs".into(), &q));
            }
            CtlVerb::Shutdown => {
                return ("POST", with_query("/v1/shutdown".into(), &[format.into()]))
            }
            CtlVerb::Reload => {
                q.push(format.into());
                if self.dry_run {
                    q.push("dry_run=1".into());
                }
                if let Some(t) = self.timeout {
                    q.push(format!("timeout={}ms", t.as_millis()));
                }
                return ("POST", with_query("/v1/reload".into(), &q));
            }
            CtlVerb::Start => "start",
            CtlVerb::Stop => "stop",
            CtlVerb::Restart => "restart",
            CtlVerb::Signal(sig) => {
                q.push(format!("signal={sig}"));
                "signal"
            }
        };
        q.push(format.into());
        if !self.wait {
            q.push("wait=0".into());
        }
        if let Some(t) = self.timeout {
            q.push(format!("timeout={}ms", t.as_millis()));
        }
        let path = format!("/v1/services/{names}/{method}");
        ("POST", with_query(path, &q))
    }

    /// How long to wait for the answer.
    fn read_timeout(&self) -> Option<Duration> {
        if self.follow {
            return None;
        }
        let waits = matches!(
            self.verb,
            CtlVerb::Start | CtlVerb::Stop | CtlVerb::Restart | CtlVerb::Reload
        );
        let base = if waits && self.wait && !self.dry_run {
            self.timeout.unwrap_or(super::proto::DEFAULT_TIMEOUT)
        } else {
            Duration::ZERO
        };
        Some(base + Duration::from_secs(10))
    }
}

fn with_query(path: String, q: &[String]) -> String {
    let q: Vec<&str> = q
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if q.is_empty() {
        path
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// `--control PATH`, else RINIT_CONTROL, else $RINIT_RUNTIME_DIR/control.sock,
/// else /run/rinit/control.sock.
pub fn socket_path(explicit: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = env("RINIT_CONTROL").filter(|p| !p.is_empty() && p != "off") {
        return PathBuf::from(p);
    }
    let dir = env("RINIT_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    socket::default_path(dir.as_deref())
}

/// Runs one `rinit ctl` call; returns the exit status.
pub fn run(args: &CtlArgs, env: &dyn Fn(&str) -> Option<String>) -> i32 {
    let path = socket_path(args.socket.as_deref(), env);
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            let _ = say(&format!(
                "cannot talk to rinit at {}: {e} (is rinit running with control? see --control)\n",
                path.display()
            ));
            return 3;
        }
    };
    let _ = stream.set_read_timeout(args.read_timeout());
    let (method, target) = args.target();
    let head = format!("{method} {target} HTTP/1.1\r\nHost: rinit\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(head.as_bytes()) {
        let _ = say(&format!("cannot send to {}: {e}\n", path.display()));
        return 3;
    }
    match read_answer(&mut stream, args.follow) {
        Ok((status, body)) => finish(status, &body, &path),
        // The reader of `logs -f` went away: a normal end.
        Err(e) if args.follow && e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = say(&format!("no answer from {}: {e}\n", path.display()));
            3
        }
    }
}

/// Reads the status line and headers, then the body: all of it, or (when
/// following) streamed to stdout as it comes.
fn read_answer(s: &mut UnixStream, follow: bool) -> std::io::Result<(u16, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = buf.split_off(head_end);
    if follow && status == 200 {
        let mut out = std::io::stdout().lock();
        out.write_all(&body)?;
        out.flush()?;
        loop {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Ok((status, Vec::new()));
            }
            out.write_all(&chunk[..n])?;
            out.flush()?;
        }
    }
    s.read_to_end(&mut body)?;
    Ok((status, body))
}

fn finish(status: u16, body: &[u8], path: &Path) -> i32 {
    let code = match status {
        200..=299 => 0,
        400 | 404 | 405 => 2,
        403 => 3,
        _ => 1,
    };
    let mut text = String::from_utf8_lossy(body).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    // Fallible writes: `rinit ctl logs | head` closes stdout early.
    let _ = match code {
        0 => std::io::stdout().lock().write_all(text.as_bytes()),
        3 => say(&format!("{} ({status}): {text}", path.display())),
        _ => say(&text),
    };
    code
}

fn say(msg: &str) -> std::io::Result<()> {
    std::io::stderr()
        .lock()
        .write_all(format!("rinit ctl: {msg}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let mut a = CtlArgs::new(CtlVerb::Restart);
        a.names = vec!["web".into(), "db".into()];
        a.timeout = Some(Duration::from_secs(10));
        assert_eq!(
            a.target(),
            (
                "POST",
                "/v1/services/web,db/restart?format=text&timeout=10000ms".into()
            )
        );
        let mut s = CtlArgs::new(CtlVerb::Status);
        s.json = true;
        assert_eq!(s.target(), ("GET", "/v1/services".into()));
        let mut l = CtlArgs::new(CtlVerb::Logs);
        l.follow = true;
        l.lines = Some(5);
        assert_eq!(l.target(), ("GET", "/v1/logs?n=5&follow=1".into()));
        let mut g = CtlArgs::new(CtlVerb::Signal("HUP".into()));
        g.names = vec!["web".into()];
        assert_eq!(
            g.target(),
            (
                "POST",
                "/v1/services/web/signal?signal=HUP&format=text".into()
            )
        );
        // Every target the client makes is one the server routes.
        for args in [a, s, l, g] {
            let (m, t) = args.target();
            assert!(super::super::proto::route(m, &t).is_ok(), "{m} {t}");
        }
    }

    #[test]
    fn socket_path_order() {
        let none = |_: &str| None;
        assert_eq!(
            socket_path(None, &none),
            PathBuf::from("/run/rinit/control.sock")
        );
        let env = |k: &str| (k == "RINIT_RUNTIME_DIR").then(|| "/tmp/rt".to_string());
        assert_eq!(
            socket_path(None, &env),
            PathBuf::from("/tmp/rt/control.sock")
        );
        let env = |k: &str| (k == "RINIT_CONTROL").then(|| "/x.sock".to_string());
        assert_eq!(socket_path(None, &env), PathBuf::from("/x.sock"));
        assert_eq!(
            socket_path(Some(Path::new("/y")), &env),
            PathBuf::from("/y")
        );
    }
}
