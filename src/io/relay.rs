//! The `prefix` output mode inside the io thread: each service pipe is a
//! non-blocking descriptor in the poll set, its bytes cut into lines that
//! go to rinit's own stream as `name | line`.
//!
//! Invariants:
//! - a line piece is at most `MAX_LINE` bytes: a longer line is cut, never
//!   held whole; a partial line is let out after `IDLE_FLUSH` of silence
//!   (a prompt without newline shows) and at EOF;
//! - whole lines go to the sink in one push, so lines of two services
//!   never mix;
//! - a pipe costs one descriptor and no thread; it lives until EOF (every
//!   writer closed). Pipes of earlier processes of a service whose
//!   leftovers still hold them are capped at `LINGER_MAX` per stream.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::logbuf::Rings;
use super::sink::{Sink, Stream};
use crate::os::sys;

/// A line longer than this is cut into pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;
/// How long a partial line waits for its newline before it is let out.
pub const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// Read per pipe per loop turn, so one chatty service cannot starve the rest.
const READ_CHUNK: usize = 64 * 1024;
/// Older pipes of one service and stream kept open for leftover writers.
const LINGER_MAX: usize = 4;

/// Cuts a byte stream into line pieces. Pure: no I/O.
#[derive(Default)]
pub struct Splitter {
    partial: Vec<u8>,
    since: Option<Instant>,
}

impl Splitter {
    /// Feeds `data`; `emit` gets each complete line (without its newline)
    /// and each `MAX_LINE` piece of a longer one.
    pub fn feed(&mut self, mut data: &[u8], now: Instant, emit: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take_with(&window[..i], emit);
                    data = &data[i + 1..];
                }
                None if window.len() == room => {
                    self.take_with(window, emit);
                    data = &data[room..];
                }
                None => {
                    self.partial.extend_from_slice(window);
                    self.since.get_or_insert(now);
                    return;
                }
            }
        }
    }

    fn take_with(&mut self, tail: &[u8], emit: &mut impl FnMut(&[u8])) {
        if self.partial.is_empty() {
            emit(tail);
        } else {
            self.partial.extend_from_slice(tail);
            emit(&self.partial);
            self.partial.clear();
        }
        self.since = None;
    }

    /// Lets out the partial line, if any.
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&self.partial);
            self.partial.clear();
        }
        self.since = None;
    }

    /// When the partial line must be let out.
    pub fn idle_deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + IDLE_FLUSH)
    }
}

struct Pipe {
    service: Arc<str>,
    prefix: Vec<u8>,
    stream: Stream,
    file: File,
    splitter: Splitter,
    /// A newer process of the service has pipes of its own.
    lingering: bool,
}

/// What a read turn found.
enum Read_ {
    More,
    Eof,
}

/// Every service pipe, the buffers they share, and the services' recent
/// lines for `rinit ctl logs`.
pub struct Relays {
    pipes: Vec<Pipe>,
    buf: Vec<u8>,
    out: Out,
}

/// Where a line piece goes: rinit's stream, as `name | piece`, and the
/// service's log buffer.
struct Out {
    line: Vec<u8>,
    rings: Rings,
}

impl Default for Relays {
    fn default() -> Self {
        Relays {
            pipes: Vec::new(),
            buf: vec![0; READ_CHUNK],
            out: Out {
                line: Vec::with_capacity(MAX_LINE + 128),
                rings: Rings::default(),
            },
        }
    }
}

impl Relays {
    /// Takes the read end of a new process's pipe; earlier pipes of the same
    /// service and stream become lingering, and the oldest beyond
    /// `LINGER_MAX` are closed.
    pub fn add(&mut self, sink: &Sink, service: &Arc<str>, stream: Stream, fd: OwnedFd) {
        if !sys::set_nonblocking(fd.as_raw_fd()) {
            log::warn!("{service}: cannot relay {}", stream.name());
            return;
        }
        for p in &mut self.pipes {
            if p.service == *service && p.stream == stream {
                p.lingering = true;
            }
        }
        self.close_excess(sink, service, stream);
        self.pipes.push(Pipe {
            service: Arc::clone(service),
            prefix: format!("{service} | ").into_bytes(),
            stream,
            file: File::from(fd),
            splitter: Splitter::default(),
            lingering: false,
        });
    }

    fn close_excess(&mut self, sink: &Sink, service: &str, stream: Stream) {
        let same = |p: &Pipe| p.lingering && &*p.service == service && p.stream == stream;
        let n = self.pipes.iter().filter(|p| same(p)).count();
        if n < LINGER_MAX {
            return;
        }
        if let Some(i) = self.pipes.iter().position(same) {
            log::warn!(
                "{service}: closing the {} of an earlier process that something still holds open ({LINGER_MAX} are kept)",
                stream.name()
            );
            let mut p = self.pipes.remove(i);
            flush_pipe(&mut p, &mut self.out, sink);
        }
    }

    /// Descriptors to poll for POLLIN, in `on_ready` order; a pipe whose
    /// stream is held (a full but moving queue) is left out for now (-1:
    /// poll skips it), so its writer waits instead of losing lines.
    pub fn interest(&self, fds: &mut Vec<libc::pollfd>, held: impl Fn(Stream) -> bool) {
        fds.extend(self.pipes.iter().map(|p| libc::pollfd {
            fd: if held(p.stream) {
                -1
            } else {
                p.file.as_raw_fd()
            },
            events: libc::POLLIN,
            revents: 0,
        }));
    }

    /// Handles poll results for the descriptors `interest` gave.
    pub fn on_ready(&mut self, revents: &[libc::c_short], sink: &Sink, now: Instant) {
        let mut i = 0;
        let mut k = 0;
        while i < self.pipes.len() {
            let ev = revents.get(k).copied().unwrap_or(0);
            k += 1;
            if ev == 0 {
                i += 1;
                continue;
            }
            match self.read_turn(i, sink, now, READ_CHUNK) {
                Read_::More => i += 1,
                Read_::Eof => {
                    let mut p = self.pipes.remove(i);
                    flush_pipe(&mut p, &mut self.out, sink);
                }
            }
        }
    }

    /// Reads up to `budget` bytes of pipe `i` and relays its lines.
    fn read_turn(&mut self, i: usize, sink: &Sink, now: Instant, budget: usize) -> Read_ {
        let mut done = 0;
        while done < budget {
            if sink.held(self.pipes[i].stream, now).is_some() {
                return Read_::More;
            }
            let p = &mut self.pipes[i];
            let size = read_size(p.prefix.len()).min(self.buf.len());
            let n = match p.file.read(&mut self.buf[..size]) {
                Ok(0) => return Read_::Eof,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Read_::More,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Read_::Eof,
            };
            done += n;
            let out = &mut self.out;
            let (service, prefix, stream) = (&p.service, &p.prefix, p.stream);
            p.splitter.feed(&self.buf[..n], now, &mut |piece| {
                out.emit(service, prefix, piece, stream, sink)
            });
        }
        Read_::More
    }

    /// Relays everything already written to `service`'s pipes (its process
    /// has exited: what it wrote is in the pipe), so its last lines come
    /// out before anything rinit does next.
    pub fn drain_service(&mut self, service: &str, sink: &Sink, now: Instant) {
        let mut i = 0;
        while i < self.pipes.len() {
            if &*self.pipes[i].service != service {
                i += 1;
                continue;
            }
            match self.read_turn(i, sink, now, 1 << 20) {
                Read_::More => i += 1,
                Read_::Eof => {
                    let mut p = self.pipes.remove(i);
                    flush_pipe(&mut p, &mut self.out, sink);
                }
            }
        }
    }

    /// `drain_service` for every service, at exit: every process has been
    /// reaped, so the pipes hold all there is to say.
    pub fn drain_all(&mut self, sink: &Sink, now: Instant) {
        let mut i = 0;
        while i < self.pipes.len() {
            match self.read_turn(i, sink, now, 1 << 20) {
                Read_::More => {
                    flush_pipe(&mut self.pipes[i], &mut self.out, sink);
                    i += 1;
                }
                Read_::Eof => {
                    let mut p = self.pipes.remove(i);
                    flush_pipe(&mut p, &mut self.out, sink);
                }
            }
        }
    }

    /// Lets out partial lines that waited `IDLE_FLUSH`.
    pub fn on_timers(&mut self, sink: &Sink, now: Instant) {
        for p in &mut self.pipes {
            if p.splitter.idle_deadline().is_some_and(|d| d <= now) {
                flush_pipe(p, &mut self.out, sink);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.pipes
            .iter()
            .filter_map(|p| p.splitter.idle_deadline())
            .min()
    }

    /// The services' recent lines.
    pub fn rings(&self) -> &Rings {
        &self.out.rings
    }

    pub fn rings_mut(&mut self) -> &mut Rings {
        &mut self.out.rings
    }

    /// Open pipes (for tests and the fd budget).
    pub fn len(&self) -> usize {
        self.pipes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.pipes.iter().map(|p| p.file.as_raw_fd()).collect()
    }
}

/// The most one read may take, so that what it turns into (a prefix per
/// line: at worst every other byte a newline) stays under the sink's
/// margin above its hold mark, `super::sink::HOLD_MARGIN`.
fn read_size(prefix: usize) -> usize {
    (super::sink::HOLD_MARGIN * 2 / (prefix + 2)).clamp(1024, READ_CHUNK)
}

fn flush_pipe(p: &mut Pipe, out: &mut Out, sink: &Sink) {
    let (service, prefix, stream) = (&p.service, &p.prefix, p.stream);
    p.splitter
        .flush(&mut |piece| out.emit(service, prefix, piece, stream, sink));
}

impl Out {
    fn emit(
        &mut self,
        service: &Arc<str>,
        prefix: &[u8],
        piece: &[u8],
        stream: Stream,
        sink: &Sink,
    ) {
        self.line.clear();
        if super::json_log::is_json() {
            super::json_log::service_line(&mut self.line, service, stream.name(), piece);
        } else {
            self.line.extend_from_slice(prefix);
            self.line.extend_from_slice(piece);
            self.line.push(b'\n');
        }
        sink.push(stream, &self.line);
        self.rings.push(service, stream, piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Splitter) {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        let now = Instant::now();
        for c in chunks {
            s.feed(c, now, &mut |p| out.push(p.to_vec()));
        }
        (out, s)
    }

    #[test]
    fn whole_lines_come_out_without_their_newline() {
        let (out, s) = split(&[b"a\nbb\n", b"c", b"c\n"]);
        assert_eq!(out, vec![b"a".to_vec(), b"bb".to_vec(), b"cc".to_vec()]);
        assert!(s.idle_deadline().is_none());
    }

    #[test]
    fn a_partial_line_waits_then_flushes() {
        let (out, mut s) = split(&[b"Loading..."]);
        assert!(out.is_empty());
        assert!(s.idle_deadline().is_some());
        let mut flushed = Vec::new();
        s.flush(&mut |p| flushed.push(p.to_vec()));
        assert_eq!(flushed, vec![b"Loading...".to_vec()]);
        assert!(s.idle_deadline().is_none());
    }

    #[test]
    fn long_lines_are_cut_into_max_line_pieces() {
        let big = vec![b'x'; MAX_LINE * 3 + 5];
        let (out, mut s) = split(&[&big[..1000], &big[1000..], b"\n"]);
        assert_eq!(out.len(), 4);
        assert!(out[..3].iter().all(|p| p.len() == MAX_LINE));
        assert_eq!(out[3].len(), 5);
        let mut rest = Vec::new();
        s.flush(&mut |p| rest.push(p.to_vec()));
        assert!(rest.is_empty());
    }

    #[test]
    fn never_holds_more_than_a_piece() {
        let mut s = Splitter::default();
        let now = Instant::now();
        let chunk = vec![b'y'; 7000];
        let mut pieces = 0;
        for _ in 0..100 {
            s.feed(&chunk, now, &mut |p| {
                assert!(p.len() <= MAX_LINE);
                pieces += 1;
            });
            assert!(s.partial.len() < MAX_LINE);
        }
        assert_eq!(pieces, 700_000 / MAX_LINE);
    }

    #[test]
    fn invalid_utf8_and_nul_pass_through() {
        let (out, _) = split(&[b"\xff\x00\xfe\n"]);
        assert_eq!(out, vec![b"\xff\x00\xfe".to_vec()]);
    }
}
