//! The HTTP server, one component of the io thread's `poll(2)` loop: a
//! non-blocking listener and a bounded set of non-blocking connections,
//! answering each request from the latest published snapshot.
//!
//! Invariants:
//! - no socket call blocks: the listener and every connection are
//!   non-blocking, and the io thread sleeps only in `poll`;
//! - at most `max_conns` connections are open (fewer for a while after
//!   running out of descriptors); when full, a new connection evicts the
//!   oldest one that is not sending a response;
//! - every connection has a deadline (complete head, then response written,
//!   then a short lingering close) and is closed when it passes;
//! - `next_deadline` is the nearest deadline, and none when nothing is
//!   pending, so an idle server never wakes the loop;
//! - no error ends the loop: out of descriptors or memory, the oldest
//!   connection makes room (or, with none open, the listener pauses
//!   briefly); transient accept errors are skipped; nothing ever spins.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::{self, Extras, Parsed};
use super::Published;

/// The bounds of the server; `Limits::default()` is what rinit uses.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_conns: usize,
    /// From accept to a complete request head.
    pub head_timeout: Duration,
    /// From a complete head to the last byte of the response written.
    pub write_timeout: Duration,
    /// After the response, how long unread input is drained before closing
    /// (closing with unread input would reset the connection and could
    /// destroy the response in flight).
    pub linger: Duration,
    /// Input drained after the response, at most.
    pub linger_bytes: usize,
    pub max_head: usize,
    /// How long the listener is left alone after running out of descriptors.
    pub accept_pause: Duration,
    pub thread_name: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 256,
            head_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            linger: Duration::from_millis(500),
            linger_bytes: 64 * 1024,
            max_head: http::MAX_HEAD,
            accept_pause: Duration::from_millis(100),
            thread_name: "rinit-http".to_string(),
        }
    }
}

/// Most connections accepted per loop turn, so that a flood of connects
/// cannot keep the loop from serving the connections it already has.
const ACCEPT_BATCH: usize = 64;
const CHUNK: usize = 4096;
/// How long a connection cap lowered by descriptor exhaustion holds.
const FD_CAP_HOLD: Duration = Duration::from_secs(5);

/// Bind the listening socket (before privileges or children exist, so that
/// a bad address fails early).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Descriptors freed, beyond the one that failed, when accept runs out.
const EMFILE_SPARE: usize = 8;

impl Limits {
    /// The default limits, with the connection bound lowered so that open
    /// connections can use at most `fd_limit - reserve` descriptors: a
    /// flood of clients must leave the supervisor what it needs to spawn.
    pub fn within_fd_budget(fd_limit: u64, reserve: u64) -> Limits {
        let mut limits = Limits::default();
        let budget = usize::try_from(fd_limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
        limits.max_conns = limits.max_conns.min(budget).max(1);
        limits
    }
}

/// Starts a thread running an io loop that serves only `listener`, within
/// `limits` (rinit itself serves it from its one io thread).
pub fn serve_with(
    listener: TcpListener,
    published: Arc<Published>,
    limits: Limits,
) -> io::Result<JoinHandle<()>> {
    let name = limits.thread_name.clone();
    let server = Server::new(listener, published, limits)?;
    let io = crate::io::IoLoop::new(false, crate::io::probe::Resolver::default())?;
    let mut io = io.with_health(server);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || io.run())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the complete request head.
    Reading,
    /// Sending the response.
    Writing,
    /// Response sent and write side shut: discarding input until EOF.
    Draining,
}

/// What to do with a connection after it made progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Keep,
    Close,
}

struct Conn {
    stream: TcpStream,
    stage: Stage,
    /// The head received so far while reading, the response while writing.
    buf: Vec<u8>,
    sent: usize,
    drained: usize,
    accepted: Instant,
    deadline: Instant,
}

pub struct Server {
    listener: TcpListener,
    published: Arc<Published>,
    limits: Limits,
    conns: Vec<Conn>,
    /// The listener is not polled until then (descriptor exhaustion).
    paused_until: Option<Instant>,
    /// A lower connection bound until then, after running out of descriptors.
    fd_cap: Option<(usize, Instant)>,
}

impl Server {
    pub fn new(
        listener: TcpListener,
        published: Arc<Published>,
        limits: Limits,
    ) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            published,
            limits,
            conns: Vec::new(),
            paused_until: None,
            fd_cap: None,
        })
    }

    /// New bounds (a reload changed how many services share the fd budget);
    /// connections already open keep going.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Listens on `listener` (already non-blocking) from now on; the old
    /// listener closes, the connections it accepted are still answered.
    pub fn replace_listener(&mut self, listener: TcpListener) {
        self.listener = listener;
    }

    /// Closes connections past their deadline, ends an accept pause.
    pub fn on_timers(&mut self, now: Instant) {
        self.conns.retain(|c| c.deadline > now);
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
        }
    }

    /// The nearest deadline, if any: an idle server has none.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .map(|c| c.deadline)
            .chain(self.paused_until)
            .min()
    }

    /// Descriptors to poll, in `on_ready` order: the listener (unless
    /// paused), then every connection.
    pub fn interest(&self, fds: &mut Vec<libc::pollfd>) {
        let pollfd = |fd, events| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        if self.paused_until.is_none() {
            fds.push(pollfd(self.listener.as_raw_fd(), libc::POLLIN));
        }
        for conn in &self.conns {
            let events = match conn.stage {
                Stage::Reading | Stage::Draining => libc::POLLIN,
                Stage::Writing => libc::POLLOUT,
            };
            fds.push(pollfd(conn.stream.as_raw_fd(), events));
        }
    }

    /// Serves what poll reported for the descriptors `interest` gave.
    pub fn on_ready(&mut self, revents: &[libc::c_short], now: Instant) {
        let mut flags = revents.iter().copied();
        let listener = self.paused_until.is_none() && flags.next().is_some_and(|f| f != 0);
        let mut keep = Vec::with_capacity(self.conns.len());
        for (mut conn, ev) in std::mem::take(&mut self.conns)
            .into_iter()
            .zip(flags.chain(std::iter::repeat(0)))
        {
            if ev == 0 || self.progress(&mut conn, ev, now) == Flow::Keep {
                keep.push(conn);
            }
        }
        self.conns = keep;
        if listener {
            self.accept_some(now);
        }
    }

    fn progress(&self, conn: &mut Conn, revents: libc::c_short, now: Instant) -> Flow {
        if revents & libc::POLLNVAL != 0 {
            return Flow::Close;
        }
        match conn.stage {
            Stage::Reading => self.read_head(conn, now),
            Stage::Writing => write_response(conn, &self.limits, now),
            Stage::Draining => drain(conn, &self.limits),
        }
    }

    /// Read what has arrived of the head; once it is complete (or refused),
    /// switch to writing the response.
    fn read_head(&self, conn: &mut Conn, now: Instant) -> Flow {
        let limit = self.limits.max_head + 1;
        let mut chunk = [0u8; CHUNK];
        let mut eof = false;
        while conn.buf.len() < limit {
            let room = (limit - conn.buf.len()).min(CHUNK);
            match conn.stream.read(&mut chunk[..room]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Flow::Close,
            }
        }
        let response = match http::parse(&conn.buf, self.limits.max_head) {
            Parsed::Partial if !eof => return Flow::Keep,
            Parsed::Partial if conn.buf.is_empty() => return Flow::Close,
            Parsed::Partial => http::error_response(400, false),
            Parsed::Reject(status) => http::error_response(status, false),
            Parsed::Request { method, target } => {
                let snapshot = self.published.current();
                http::respond(method, target, &snapshot, &extras(), now)
            }
        };
        conn.buf = response;
        conn.sent = 0;
        conn.stage = Stage::Writing;
        conn.deadline = now + self.limits.write_timeout;
        write_response(conn, &self.limits, now)
    }

    /// Accept what is pending, up to a batch.
    fn accept_some(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            let e = match self.listener.accept() {
                Ok((stream, _)) => {
                    self.admit(stream, now);
                    continue;
                }
                Err(e) => e,
            };
            match accept_error(&e) {
                AcceptError::Drained => return,
                AcceptError::Transient => log::debug!("http: accept: {e}"),
                AcceptError::Exhausted if self.evict_one() => self.lower_cap(&e, now),
                AcceptError::Exhausted | AcceptError::Unexpected => {
                    log::warn!("http: accept: {e}; pausing the listener");
                    self.paused_until = Some(now + self.limits.accept_pause);
                    return;
                }
            }
        }
    }

    /// Out of descriptors with connections open: one was just closed, and
    /// the cap drops to what is left, so that from now on each new
    /// connection replaces the oldest (draining the accept queue at full
    /// speed, so a probe queued behind a flood is reached) instead of
    /// failing again.
    fn lower_cap(&mut self, e: &io::Error, now: Instant) {
        let already = self.fd_cap.is_some_and(|(_, until)| until > now);
        // Leave the rest of rinit (spawns, pipes, probes) a few descriptors:
        // the health server must never starve the supervisor.
        let cap = self.conns.len().saturating_sub(EMFILE_SPARE).max(1);
        while self.conns.len() > cap && self.evict_one() {}
        self.fd_cap = Some((cap, now + FD_CAP_HOLD));
        if already {
            log::debug!("http: accept: {e}; connection cap now {cap}");
        } else {
            log::warn!("http: accept: {e}; capping connections at {cap} for a while");
        }
    }

    /// The connection bound now: `max_conns`, or lower for a while after
    /// running out of descriptors.
    fn capacity(&self, now: Instant) -> usize {
        match self.fd_cap {
            Some((cap, until)) if until > now => cap.min(self.limits.max_conns),
            _ => self.limits.max_conns,
        }
    }

    fn admit(&mut self, stream: TcpStream, now: Instant) {
        if let Err(e) = stream.set_nonblocking(true) {
            log::debug!("http: dropping a connection: {e}");
            return;
        }
        if self.conns.len() >= self.capacity(now) {
            self.evict_one();
        }
        let mut conn = Conn {
            stream,
            stage: Stage::Reading,
            buf: Vec::new(),
            sent: 0,
            drained: 0,
            accepted: now,
            deadline: now + self.limits.head_timeout,
        };
        // The request often arrives with the connection: try it right away.
        if self.read_head(&mut conn, now) == Flow::Keep {
            self.conns.push(conn);
        }
    }

    /// Close the oldest connection, preferring those not sending a response;
    /// false when there is none.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| (c.stage == Stage::Writing, c.accepted))
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                log::debug!("http: closing the oldest connection to make room");
                self.conns.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

/// Send what the socket takes; when all is sent, shut the write side and
/// linger to drain the input.
fn write_response(conn: &mut Conn, limits: &Limits, now: Instant) -> Flow {
    while conn.sent < conn.buf.len() {
        match conn.stream.write(&conn.buf[conn.sent..]) {
            Ok(0) => return Flow::Close,
            Ok(n) => conn.sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Flow::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Flow::Close,
        }
    }
    if conn.stream.shutdown(Shutdown::Write).is_err() {
        return Flow::Close;
    }
    conn.buf = Vec::new();
    conn.stage = Stage::Draining;
    conn.deadline = now + limits.linger;
    drain(conn, limits)
}

/// Discard input until the peer closes, errs, or sends too much.
fn drain(conn: &mut Conn, limits: &Limits) -> Flow {
    let mut chunk = [0u8; CHUNK];
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => return Flow::Close,
            Ok(n) => {
                conn.drained += n;
                if conn.drained > limits.linger_bytes {
                    return Flow::Close;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Flow::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Flow::Close,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AcceptError {
    /// Nothing more to accept now.
    Drained,
    /// This connection failed (aborted, network error): go on accepting.
    Transient,
    /// Out of descriptors or kernel memory: back off.
    Exhausted,
    /// Anything else: back off too, but never give up.
    Unexpected,
}

fn accept_error(e: &io::Error) -> AcceptError {
    if e.kind() == ErrorKind::WouldBlock {
        return AcceptError::Drained;
    }
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptError::Exhausted,
        Some(
            libc::EINTR
            | libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ETIMEDOUT,
        ) => AcceptError::Transient,
        _ => AcceptError::Unexpected,
    }
}

/// What the server reports beside the snapshot: rinit's own output losses.
fn extras() -> Extras {
    let sink = crate::io::sink::global();
    Extras {
        log_dropped: [
            sink.dropped(crate::io::sink::Stream::Stdout),
            sink.dropped(crate::io::sink::Stream::Stderr),
        ],
        stats: crate::io::stats::snapshot(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_classified_by_errno() {
        let of = |n| accept_error(&io::Error::from_raw_os_error(n));
        assert_eq!(of(libc::EAGAIN), AcceptError::Drained);
        assert_eq!(of(libc::EMFILE), AcceptError::Exhausted);
        assert_eq!(of(libc::ENFILE), AcceptError::Exhausted);
        assert_eq!(of(libc::ENOBUFS), AcceptError::Exhausted);
        assert_eq!(of(libc::ENOMEM), AcceptError::Exhausted);
        assert_eq!(of(libc::ECONNABORTED), AcceptError::Transient);
        assert_eq!(of(libc::EINTR), AcceptError::Transient);
        assert_eq!(of(libc::EBADF), AcceptError::Unexpected);
    }
}
