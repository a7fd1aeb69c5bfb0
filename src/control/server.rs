//! The control socket, one component of the io thread's poll loop: a
//! non-blocking Unix listener and a bounded set of connections, each
//! reading one request head, then answering from the snapshot, waiting for
//! the core's reply, or streaming log lines (`logs -f`).
//!
//! Invariants (as the health server's):
//! - no socket call blocks; the io thread sleeps only in `poll`;
//! - at most `MAX_CONNS` connections; a newcomer evicts the oldest one
//!   still reading its head, else the oldest follower;
//! - a connection reading its head or writing an answer has a deadline; one
//!   waiting for the core has the request's own timeout plus a margin;
//! - a follower that cannot keep up loses lines (counted, and one
//!   `rinit: N bytes dropped` line marks the gap): it never slows a
//!   service, rinit, or another client.
//! - who may do what is decided by the caller's credentials (SO_PEERCRED),
//!   not by the socket's file mode.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::proto::{self, Route};
use crate::core::types::{Reply, Request, RequestId};
use crate::health::http::{self, Parsed};
use crate::health::Published;
use crate::io::logbuf::{Line, Rings};
use crate::os::sys;

const MAX_CONNS: usize = 64;
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Beyond a request's own timeout, how long a connection waits for the
/// core's answer before it is told 504.
const REPLY_MARGIN: Duration = Duration::from_secs(5);
/// Bytes a follower may have waiting before its lines are dropped.
const FOLLOW_CAP: usize = 256 * 1024;
const CHUNK: usize = 4096;

/// What the control socket hands the supervisor.
pub enum Submitted {
    Request(Request),
    /// `rinit ctl shutdown`: the same as SIGTERM.
    Shutdown,
    /// `rinit ctl reload --dry-run`: the plan, nothing changed.
    ReloadPlan {
        id: RequestId,
    },
    /// `rinit ctl reload`: re-read the file and apply it (SPEC section 11).
    Reload {
        id: RequestId,
        timeout: std::time::Duration,
    },
}

enum Stage {
    Reading(Vec<u8>),
    Waiting {
        id: RequestId,
        text: bool,
    },
    Writing {
        buf: Vec<u8>,
        sent: usize,
    },
    Following {
        names: Vec<Arc<str>>,
        after: u64,
        queue: VecDeque<u8>,
        dropped: u64,
    },
}

struct Conn {
    stream: UnixStream,
    stage: Stage,
    deadline: Option<Instant>,
    accepted: Instant,
    uid: u32,
    pid: i32,
}

/// Bytes of log lines each follower missed, by service (for /metrics).
pub type Dropped = Vec<(String, u64)>;

pub struct ControlServer {
    /// None once a reload turned control off: the connections open then
    /// are still answered.
    listener: Option<UnixListener>,
    published: Arc<Published>,
    own_uid: u32,
    conns: Vec<Conn>,
    next_id: RequestId,
}

enum Flow {
    Keep,
    Close,
}

impl ControlServer {
    pub fn new(listener: UnixListener, published: Arc<Published>) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener: Some(listener),
            published,
            own_uid: sys::euid(),
            conns: Vec::new(),
            next_id: 1,
        })
    }

    pub fn interest(&self, fds: &mut Vec<libc::pollfd>) {
        let pollfd = |fd, events| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // poll ignores a negative fd: the slot stays, so the layout does.
        let fd = self.listener.as_ref().map_or(-1, |l| l.as_raw_fd());
        fds.push(pollfd(fd, libc::POLLIN));
        for c in &self.conns {
            let events = match &c.stage {
                Stage::Reading(_) | Stage::Waiting { .. } => libc::POLLIN,
                Stage::Writing { .. } => libc::POLLOUT,
                Stage::Following { queue, dropped, .. } if !queue.is_empty() || *dropped > 0 => {
                    libc::POLLOUT
                }
                Stage::Following { .. } => libc::POLLIN,
            };
            fds.push(pollfd(c.stream.as_raw_fd(), events));
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().filter_map(|c| c.deadline).min()
    }

    /// A reload moved the socket: accept on `listener` (already
    /// non-blocking) from now on; the old one closes here.
    pub fn replace_listener(&mut self, listener: Option<UnixListener>) {
        self.listener = listener;
    }

    /// Serves what poll reported for the descriptors `interest` gave.
    pub fn on_ready(
        &mut self,
        revents: &[libc::c_short],
        now: Instant,
        rings: &Rings,
        submit: &mut dyn FnMut(Submitted),
    ) {
        let mut flags = revents.iter().copied();
        let listener = flags.next().is_some_and(|f| f != 0);
        let conns = std::mem::take(&mut self.conns);
        for (mut c, ev) in conns.into_iter().zip(flags.chain(std::iter::repeat(0))) {
            let flow = if ev == 0 {
                Flow::Keep
            } else {
                self.progress(&mut c, ev, now, rings, submit)
            };
            if matches!(flow, Flow::Keep) {
                self.conns.push(c);
            }
        }
        if listener {
            self.accept(now, rings, submit);
        }
    }

    /// The core's answer to a request: the connection waiting for it gets
    /// it (a connection that gave up meanwhile is gone: nothing to do).
    pub fn on_reply(&mut self, reply: &Reply, now: Instant) {
        let snap = self.published.current();
        for c in &mut self.conns {
            if let Stage::Waiting { id, text } = c.stage {
                if id == reply.id {
                    start_writing(c, proto::reply(reply, &snap, text), now);
                }
            }
        }
    }

    /// Expires deadlines, and feeds followers the lines that arrived.
    pub fn on_timers(&mut self, now: Instant, rings: &Rings, dropped: &mut Dropped) {
        let mut keep = Vec::with_capacity(self.conns.len());
        for mut c in std::mem::take(&mut self.conns) {
            if c.deadline.is_some_and(|d| d <= now) {
                match c.stage {
                    Stage::Waiting { text, .. } => {
                        let msg = "no answer from the supervisor in time";
                        start_writing(&mut c, proto::error(504, text, msg), now);
                    }
                    _ => continue,
                }
            }
            if let Stage::Following {
                names,
                after,
                queue,
                dropped: missed,
            } = &mut c.stage
            {
                feed(rings, names, after, queue, missed, dropped);
            }
            keep.push(c);
        }
        self.conns = keep;
    }

    fn accept(&mut self, now: Instant, rings: &Rings, submit: &mut dyn FnMut(Submitted)) {
        for _ in 0..16 {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::debug!("control: accept: {e}");
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let (pid, uid, _) = sys::peer_cred(stream.as_raw_fd()).unwrap_or((0, u32::MAX, 0));
            if self.conns.len() >= MAX_CONNS {
                self.evict_one();
            }
            let mut c = Conn {
                stream,
                stage: Stage::Reading(Vec::new()),
                deadline: Some(now + HEAD_TIMEOUT),
                accepted: now,
                uid,
                pid,
            };
            if matches!(self.read_head(&mut c, now, rings, submit), Flow::Keep) {
                self.conns.push(c);
            }
        }
    }

    fn evict_one(&mut self) {
        let victim = self
            .conns
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| {
                let rank = match c.stage {
                    Stage::Reading(_) => 0,
                    Stage::Following { .. } => 1,
                    _ => 2,
                };
                (rank, c.accepted)
            })
            .map(|(i, _)| i);
        if let Some(i) = victim {
            self.conns.swap_remove(i);
        }
    }

    fn progress(
        &mut self,
        c: &mut Conn,
        revents: libc::c_short,
        now: Instant,
        rings: &Rings,
        submit: &mut dyn FnMut(Submitted),
    ) -> Flow {
        if revents & libc::POLLNVAL != 0 {
            return Flow::Close;
        }
        match &c.stage {
            Stage::Reading(_) => self.read_head(c, now, rings, submit),
            // A client that hangs up while waiting has given up.
            Stage::Waiting { .. } => peer_gone(c),
            Stage::Writing { .. } => write_out(c),
            Stage::Following { queue, dropped, .. } if queue.is_empty() && *dropped == 0 => {
                peer_gone(c)
            }
            Stage::Following { .. } => write_follow(c),
        }
    }

    fn read_head(
        &mut self,
        c: &mut Conn,
        now: Instant,
        rings: &Rings,
        submit: &mut dyn FnMut(Submitted),
    ) -> Flow {
        let Stage::Reading(buf) = &mut c.stage else {
            return Flow::Keep;
        };
        let mut chunk = [0u8; CHUNK];
        let mut eof = false;
        while buf.len() <= http::MAX_HEAD {
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Flow::Close,
            }
        }
        let parsed = match http::parse(buf, http::MAX_HEAD) {
            Parsed::Partial if !eof => return Flow::Keep,
            Parsed::Partial => Err((400, "incomplete request".to_string())),
            Parsed::Reject(status) => Err((status, "bad request".to_string())),
            Parsed::Request { method, target } => Ok(proto::route(method, target)),
        };
        let answer = match parsed {
            Err((status, msg)) | Ok(Err((status, msg))) => Some(proto::error(status, false, &msg)),
            Ok(Ok(route)) => self.handle(c, route, now, rings, submit),
        };
        match answer {
            Some(bytes) => {
                start_writing(c, bytes, now);
                write_out(c)
            }
            None if matches!(c.stage, Stage::Following { .. }) => write_follow(c),
            None => Flow::Keep,
        }
    }

    /// Acts on a routed request; returns the answer to write, or None when
    /// the connection now waits for the core or follows the logs.
    fn handle(
        &mut self,
        c: &mut Conn,
        route: Route,
        now: Instant,
        rings: &Rings,
        submit: &mut dyn FnMut(Submitted),
    ) -> Option<Vec<u8>> {
        let verb = route.verb_name();
        let text = route.wants_text();
        if !route.allowed(c.uid, self.own_uid) {
            count(verb, "denied");
            log::warn!("control: {verb} denied to uid {} (pid {})", c.uid, c.pid);
            let msg = format!("permission denied: uid {} may only ask status", c.uid);
            return Some(proto::error(403, text, &msg));
        }
        let snap = self.published.current();
        match route {
            Route::Status { names, text } => {
                if let Err(e) = proto::resolve(&names, &snap) {
                    count(verb, "unknown");
                    return Some(proto::error(404, text, &e));
                }
                count(verb, "ok");
                Some(proto::status(&snap, &names, text, now))
            }
            Route::Logs {
                names,
                lines,
                follow,
            } => self.logs(c, &names, lines, follow, rings),
            Route::Shutdown { text } => {
                audit(c, "shutdown", &[]);
                count(verb, "ok");
                submit(Submitted::Shutdown);
                Some(proto::response(
                    202,
                    text,
                    if text {
                        "shutting down\n"
                    } else {
                        "{\"ok\":true}\n"
                    },
                ))
            }
            Route::Reload {
                text,
                dry_run,
                timeout,
            } => {
                audit(c, if dry_run { "reload --dry-run" } else { verb }, &[]);
                count(verb, "ok");
                let id = self.next_id;
                self.next_id += 1;
                submit(if dry_run {
                    Submitted::ReloadPlan { id }
                } else {
                    Submitted::Reload { id, timeout }
                });
                c.stage = Stage::Waiting { id, text };
                let wait = if dry_run {
                    REPLY_MARGIN
                } else {
                    timeout + REPLY_MARGIN
                };
                c.deadline = Some(crate::core::types::after(now, wait));
                None
            }
            Route::Act {
                verb: v,
                names,
                wait,
                timeout,
                text,
            } => {
                let services = match proto::resolve(&names, &snap) {
                    Ok(s) => s,
                    Err(e) => {
                        count(verb, "unknown");
                        return Some(proto::error(404, text, &e));
                    }
                };
                audit(c, verb, &names);
                count(verb, "ok");
                let id = self.next_id;
                self.next_id += 1;
                submit(Submitted::Request(Request {
                    id,
                    verb: v,
                    services,
                    wait,
                    timeout,
                }));
                c.stage = Stage::Waiting { id, text };
                c.deadline = Some(crate::core::types::after(now, timeout + REPLY_MARGIN));
                None
            }
        }
    }

    fn logs(
        &self,
        c: &mut Conn,
        names: &[String],
        lines: usize,
        follow: bool,
        rings: &Rings,
    ) -> Option<Vec<u8>> {
        let snap = self.published.current();
        if let Err(e) = proto::resolve(names, &snap) {
            count("logs", "unknown");
            return Some(proto::error(404, true, &e));
        }
        count("logs", "ok");
        let names: Vec<Arc<str>> = names.iter().map(|n| Arc::from(n.as_str())).collect();
        let mut body = Vec::new();
        for line in rings.since(&names, 0, lines) {
            render_line(&mut body, line);
        }
        if !follow {
            return Some(proto::response_bytes(200, true, &body));
        }
        let mut queue: VecDeque<u8> = proto::stream_head().into();
        queue.extend(body);
        c.stage = Stage::Following {
            names,
            after: rings.latest(),
            queue,
            dropped: 0,
        };
        c.deadline = None;
        None
    }
}

fn render_line(out: &mut Vec<u8>, line: &Line) {
    out.extend_from_slice(line.service.as_bytes());
    out.extend_from_slice(b" | ");
    out.extend_from_slice(&line.text);
    out.push(b'\n');
}

/// Appends what arrived since `after` to a follower's queue, dropping (and
/// counting) what does not fit.
fn feed(
    rings: &Rings,
    names: &[Arc<str>],
    after: &mut u64,
    queue: &mut VecDeque<u8>,
    missed: &mut u64,
    dropped: &mut Dropped,
) {
    if rings.latest() <= *after {
        return;
    }
    let mut line = Vec::new();
    for l in rings.since(names, *after, usize::MAX) {
        line.clear();
        render_line(&mut line, l);
        if queue.len() + line.len() > FOLLOW_CAP {
            *missed += line.len() as u64;
            crate::io::stats::bump(dropped, l.service.to_string(), line.len() as u64);
        } else {
            if *missed > 0 && queue.len() + 64 <= FOLLOW_CAP {
                let note = format!("rinit: {} bytes dropped\n", std::mem::take(missed));
                queue.extend(note.as_bytes());
            }
            queue.extend(&line);
        }
    }
    *after = rings.latest();
}

fn start_writing(c: &mut Conn, bytes: Vec<u8>, now: Instant) {
    c.stage = Stage::Writing {
        buf: bytes,
        sent: 0,
    };
    c.deadline = Some(now + WRITE_TIMEOUT);
}

fn write_out(c: &mut Conn) -> Flow {
    let Stage::Writing { buf, sent } = &mut c.stage else {
        return Flow::Keep;
    };
    while *sent < buf.len() {
        match c.stream.write(&buf[*sent..]) {
            Ok(0) => return Flow::Close,
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Flow::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Flow::Close,
        }
    }
    Flow::Close
}

fn write_follow(c: &mut Conn) -> Flow {
    let Stage::Following {
        queue,
        dropped: missed,
        ..
    } = &mut c.stage
    else {
        return Flow::Keep;
    };
    loop {
        if queue.is_empty() && *missed > 0 {
            // The follower caught up: say what it missed before new lines.
            let note = format!("rinit: {} bytes dropped\n", std::mem::take(missed));
            queue.extend(note.as_bytes());
        }
        if queue.is_empty() {
            break;
        }
        let (front, _) = queue.as_slices();
        match c.stream.write(front) {
            Ok(0) => return Flow::Close,
            Ok(n) => drop(queue.drain(..n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Flow::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Flow::Close,
        }
    }
    Flow::Keep
}

/// The peer sent more or hung up while it should only wait: EOF or an
/// error closes the connection; stray bytes are ignored.
fn peer_gone(c: &mut Conn) -> Flow {
    let mut chunk = [0u8; 512];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => return Flow::Close,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Flow::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Flow::Close,
        }
    }
}

fn audit(c: &Conn, verb: &str, names: &[String]) {
    log::info!(
        "control: {verb}{}{} by uid {} (pid {})",
        if names.is_empty() { "" } else { " " },
        names.join(" "),
        c.uid,
        c.pid
    );
}

fn count(verb: &'static str, result: &'static str) {
    crate::io::stats::count_control(verb, result);
}
