//! rinit's own stdout and stderr as bounded, non-blocking queues.
//!
//! Everything rinit prints (its log lines, every relayed service line) is
//! pushed here as whole lines. A push never blocks: it writes at once when
//! nothing is queued and the stream takes it, queues otherwise, and drops
//! whole lines (counted) once `QUEUE_CAP` bytes wait. The io thread writes
//! the queue out when poll says the stream can take more, and says how much
//! was dropped once it drains.
//!
//! Invariants:
//! - rinit's descriptors 1 and 2 are never switched to non-blocking mode:
//!   the main command and `inherit` services share their open file
//!   descriptions, and would see EAGAIN. Pipes and terminals are reopened
//!   through `/proc/self/fd` as a private non-blocking description;
//!   sockets are written with MSG_DONTWAIT; regular files and /dev/null
//!   never block; anything else is written only when poll says it can
//!   take a `PIPE_BUF`-sized piece.
//! - the locks here are held only for a non-blocking write or a queue
//!   operation, never across a wait: no thread can hold one while stuck.
//! - a closed stream (EPIPE) is not an error: its output is dropped, and
//!   nothing else changes.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::os::sys;

/// Bytes that may wait per stream. 256 KiB holds several seconds of a busy
/// service's output (a burst while the log driver catches up) and sixteen
/// maximal lines, while keeping rinit's worst-case memory small.
pub const QUEUE_CAP: usize = 256 * 1024;
/// What the fallback writer hands the kernel at once: a pipe that poll
/// says is writable has room for at least this much.
const PIPE_BUF: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn fd(self) -> RawFd {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

enum Writer {
    /// Never blocks in practice: a regular file, /dev/null.
    Plain(RawFd),
    /// A private non-blocking open of the same pipe or terminal.
    Own(OwnedFd),
    /// A socket, written with MSG_DONTWAIT.
    Socket(RawFd),
    /// Could not be reopened: written only after poll says it has room.
    Guarded(RawFd),
    Closed,
}

enum WriteError {
    WouldBlock,
    Closed,
}

impl Writer {
    fn open(stream: Stream) -> Writer {
        let fd = stream.fd();
        match sys::fd_type(fd) {
            None => Writer::Closed,
            Some(libc::S_IFREG) => Writer::Plain(fd),
            Some(libc::S_IFSOCK) => Writer::Socket(fd),
            Some(libc::S_IFCHR) if is_dev_null(fd) => Writer::Plain(fd),
            Some(_) => reopen(fd).map_or(Writer::Guarded(fd), Writer::Own),
        }
    }

    fn poll_fd(&self) -> Option<RawFd> {
        match self {
            Writer::Plain(fd) | Writer::Socket(fd) | Writer::Guarded(fd) => Some(*fd),
            Writer::Own(fd) => Some(fd.as_raw_fd()),
            Writer::Closed => None,
        }
    }

    fn write(&self, buf: &[u8]) -> Result<usize, WriteError> {
        let result = match self {
            Writer::Plain(fd) => sys::write_fd(*fd, buf),
            Writer::Own(fd) => sys::write_fd(fd.as_raw_fd(), buf),
            Writer::Socket(fd) => sys::send_nonblocking(*fd, buf),
            Writer::Guarded(fd) => {
                if !writable_now(*fd) {
                    return Err(WriteError::WouldBlock);
                }
                sys::write_fd(*fd, &buf[..buf.len().min(PIPE_BUF)])
            }
            Writer::Closed => return Err(WriteError::Closed),
        };
        match result {
            Ok(n) => Ok(n),
            Err(libc::EAGAIN | libc::EINTR) => Err(WriteError::WouldBlock),
            Err(_) => Err(WriteError::Closed),
        }
    }
}

fn is_dev_null(fd: RawFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|p| p == *"/dev/null")
}

/// A second, non-blocking open file description of what `fd` refers to.
fn reopen(fd: RawFd) -> Option<OwnedFd> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(OwnedFd::from)
}

fn writable_now(fd: RawFd) -> bool {
    let mut p = [libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    }];
    sys::poll(&mut p, 0).is_ok_and(|n| n == 1) && p[0].revents & libc::POLLOUT != 0
}

struct Out {
    writer: Writer,
    queue: VecDeque<u8>,
    /// Dropped since the queue last drained: said once it does.
    dropped_pending: u64,
    dropped_total: u64,
}

impl Out {
    /// Writes what the stream takes from the front of the queue.
    fn pump(&mut self) {
        while !self.queue.is_empty() {
            let (front, _) = self.queue.as_slices();
            match self.writer.write(front) {
                Ok(0) | Err(WriteError::WouldBlock) => return,
                Ok(n) => drop(self.queue.drain(..n)),
                Err(WriteError::Closed) => return self.close(),
            }
        }
        if self.dropped_pending > 0 {
            let n = std::mem::take(&mut self.dropped_pending);
            let note = format!(
                "rinit: warning: {n} bytes of output were dropped while this stream was not being read\n"
            );
            self.queue.extend(note.as_bytes());
            self.pump();
        }
    }

    fn close(&mut self) {
        self.dropped_total += self.queue.len() as u64;
        self.queue.clear();
        self.dropped_pending = 0;
        self.writer = Writer::Closed;
    }

    fn drop_bytes(&mut self, n: usize) {
        self.dropped_total += n as u64;
        if !matches!(self.writer, Writer::Closed) {
            self.dropped_pending += n as u64;
        }
    }
}

/// rinit's two output streams. One per process ([`global`]).
pub struct Sink {
    outs: [Mutex<Out>; 2],
    /// The io thread's doorbell, rung when a queue stops being empty.
    waker: OnceLock<RawFd>,
}

impl Sink {
    fn new() -> Sink {
        let out = |s| {
            Mutex::new(Out {
                writer: Writer::open(s),
                queue: VecDeque::new(),
                dropped_pending: 0,
                dropped_total: 0,
            })
        };
        Sink {
            outs: [out(Stream::Stdout), out(Stream::Stderr)],
            waker: OnceLock::new(),
        }
    }

    fn out(&self, stream: Stream) -> MutexGuard<'_, Out> {
        // Nothing panics while holding it; a poisoned queue is still a queue.
        self.outs[stream.index()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells the sink which eventfd wakes the io thread.
    pub fn set_waker(&self, fd: RawFd) {
        let _ = self.waker.set(fd);
    }

    /// Queues one whole line (or several) for `stream`; never blocks.
    pub fn push(&self, stream: Stream, bytes: &[u8]) {
        let mut out = self.out(stream);
        if matches!(out.writer, Writer::Closed) {
            return out.drop_bytes(bytes.len());
        }
        let rest = if out.queue.is_empty() && out.dropped_pending == 0 {
            match out.writer.write(bytes) {
                Ok(n) if n >= bytes.len() => return,
                Ok(n) => &bytes[n..],
                Err(WriteError::WouldBlock) => bytes,
                Err(WriteError::Closed) => {
                    out.close();
                    return out.drop_bytes(bytes.len());
                }
            }
        } else if out.queue.len() >= QUEUE_CAP {
            return out.drop_bytes(bytes.len());
        } else {
            bytes
        };
        // A line started on the stream is always finished, so the queue
        // can exceed the cap by at most one line.
        let was_empty = out.queue.is_empty();
        out.queue.extend(rest);
        drop(out);
        if was_empty {
            if let Some(&fd) = self.waker.get() {
                sys::eventfd_ring(fd);
            }
        }
    }

    /// The descriptors the io thread must poll for POLLOUT: streams with
    /// something queued.
    pub fn waiting(&self) -> Vec<(Stream, RawFd)> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .filter_map(|s| {
                let out = self.out(s);
                let pending = !out.queue.is_empty() || out.dropped_pending > 0;
                pending.then(|| out.writer.poll_fd().map(|fd| (s, fd)))?
            })
            .collect()
    }

    /// Writes what `stream` takes now (the io thread, on POLLOUT).
    pub fn pump(&self, stream: Stream) {
        self.out(stream).pump();
    }

    /// Bytes dropped so far, per stream.
    pub fn dropped(&self, stream: Stream) -> u64 {
        self.out(stream).dropped_total
    }

    /// At exit: writes what the streams take until `deadline`, then gives up.
    pub fn flush_until(&self, deadline: Instant) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            loop {
                let fd = {
                    let mut out = self.out(stream);
                    out.pump();
                    if out.queue.is_empty() {
                        break;
                    }
                    out.writer.poll_fd()
                };
                let left = deadline.saturating_duration_since(Instant::now());
                let Some(fd) = fd.filter(|_| !left.is_zero()) else {
                    break;
                };
                let mut p = [libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                }];
                let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
                if sys::poll(&mut p, ms) == Ok(0) {
                    break;
                }
            }
        }
    }
}

/// The process's sink, made on first use.
pub fn global() -> &'static Sink {
    static SINK: OnceLock<Sink> = OnceLock::new();
    SINK.get_or_init(Sink::new)
}

/// `std::io::Write` for env_logger: each record arrives in one write.
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        global().push(Stream::Stderr, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
