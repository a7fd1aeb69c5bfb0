//! The io thread: one `poll(2)` loop over every descriptor rinit reads or
//! writes besides the reaper's and the signal thread's work: service output
//! pipes, rinit's own stdout/stderr when they cannot take more, the health
//! listener and its connections, and network readiness probes.
//!
//! Invariants:
//! - nothing in the loop blocks but `poll`: every descriptor in it is
//!   non-blocking (or written only when poll says it has room);
//! - the poll timeout is the nearest deadline of a component, and infinite
//!   when none has one, so an idle rinit never wakes;
//! - the supervisor talks to it through a command queue and an eventfd; the
//!   queue's lock is held only to push or take commands;
//! - it reports probe results through a callback (a channel send) and
//!   nothing else: it never decides anything about a service.

pub mod json_log;
pub mod logbuf;
pub mod notify;
pub mod probe;
pub mod relay;
pub mod sink;
pub mod stats;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::control::server::{ControlServer, Dropped, Submitted};
use crate::core::types::Reply;
use crate::health::server::Server;
use crate::os::sys;
use probe::{ProbeDone, ProbeRequest, Probes, Resolver};
use relay::Relays;
use sink::{Sink, Stream};

/// What the supervisor asks of the io thread.
pub enum Cmd {
    /// Relay the read end of a service's output pipe.
    Relay {
        service: Arc<str>,
        stream: Stream,
        fd: OwnedFd,
    },
    Probe(ProbeRequest),
    /// Relay what is already in these services' pipes (all when None), then
    /// raise `ack`.
    Drain {
        service: Option<Arc<str>>,
        ack: Arc<Ack>,
    },
    /// The core's answer to a control request.
    Reply(Reply),
    /// Bytes of recent output kept per service (`logs.buffer`).
    LogBuffer(usize),
    /// `ready: {fd: N}`: the read end of the readiness pipe of the
    /// service's process `pid`.
    ReadyFd {
        service: usize,
        pid: i32,
        fd: OwnedFd,
    },
    /// Read this service's sd_notify socket.
    Notify {
        service: usize,
        fd: OwnedFd,
    },
    /// A reload removed the service or its sd_notify: close its socket.
    NotifyClose {
        service: usize,
    },
    /// A reload moved `health.listen`.
    Health(HealthSwap),
    /// A reload moved `control.socket`: listen here (None: nowhere);
    /// connections already open stay, the reload's own among them.
    ControlListener(Option<std::os::unix::net::UnixListener>),
}

/// How a reload changes the health server: the new listener is already
/// bound; the old one closes as this is applied.
pub enum HealthSwap {
    /// A new address for the server that runs.
    Listener(std::net::TcpListener),
    /// A server where there was none.
    Server(Box<Server>),
    Off,
    /// The same listener, new bounds (more or fewer services share the
    /// descriptors).
    Limits(crate::health::Limits),
}

/// What the io thread reports to the supervisor.
pub enum IoEvent {
    Probe(ProbeDone),
    Control(Submitted),
    Notify(notify::NotifyDone),
}

/// A one-shot flag the io thread raises and the supervisor waits on, with
/// a time limit.
#[derive(Default)]
pub struct Ack {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Ack {
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn raise(&self) {
        *self.lock() = true;
        self.cv.notify_all();
    }

    /// Waits until raised, at most `limit`; true when it was.
    pub fn wait(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut done = self.lock();
        while !*done {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = match self.cv.wait_timeout(done, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

struct Shared {
    cmds: Mutex<Vec<Cmd>>,
    waker: OwnedFd,
}

impl Shared {
    fn take(&self) -> Vec<Cmd> {
        let mut cmds = self
            .cmds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *cmds)
    }
}

/// The supervisor's end: sends commands, never waits on I/O.
#[derive(Clone)]
pub struct IoHandle {
    shared: Arc<Shared>,
}

impl IoHandle {
    pub fn send(&self, cmd: Cmd) {
        self.shared
            .cmds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(cmd);
        sys::eventfd_ring(self.shared.waker.as_raw_fd());
    }

    /// Has the io thread relay what `service`'s pipes (all, with None)
    /// already hold, waiting at most `limit` for it to say it did.
    pub fn drain(&self, service: Option<Arc<str>>, limit: Duration) {
        let ack = Arc::new(Ack::default());
        self.send(Cmd::Drain {
            service,
            ack: Arc::clone(&ack),
        });
        ack.wait(limit);
    }
}

type Report = Box<dyn Fn(IoEvent) + Send>;

/// The loop's state: every component it polls.
pub struct IoLoop {
    shared: Arc<Shared>,
    sink: &'static Sink,
    relays: Relays,
    probes: Probes,
    notify: notify::NotifySockets,
    health: Option<Server>,
    control: Option<ControlServer>,
    report: Option<Report>,
    /// Follower losses not yet added to the global counters.
    dropped: Dropped,
}

/// Which slice of the pollfd array belongs to whom.
struct Layout {
    sink: Vec<Stream>,
    relays: std::ops::Range<usize>,
    probes: std::ops::Range<usize>,
    notify: std::ops::Range<usize>,
    health: std::ops::Range<usize>,
    control: std::ops::Range<usize>,
}

impl IoLoop {
    /// `owns_sink`: this loop writes rinit's stdout/stderr out (the one
    /// loop of a running rinit; not the servers tests start).
    pub fn new(owns_sink: bool, resolver: Resolver) -> std::io::Result<IoLoop> {
        let waker = sys::eventfd().map_err(std::io::Error::from_raw_os_error)?;
        let sink = sink::global();
        if owns_sink {
            sink.set_waker(waker.as_raw_fd());
        }
        Ok(IoLoop {
            shared: Arc::new(Shared {
                cmds: Mutex::new(Vec::new()),
                waker,
            }),
            sink,
            relays: Relays::default(),
            probes: Probes::new(resolver),
            notify: notify::NotifySockets::default(),
            health: None,
            control: None,
            report: None,
            dropped: Dropped::new(),
        })
    }

    pub fn handle(&self) -> IoHandle {
        IoHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    pub fn with_health(mut self, server: Server) -> IoLoop {
        self.health = Some(server);
        self
    }

    pub fn with_control(mut self, server: ControlServer) -> IoLoop {
        self.control = Some(server);
        self
    }

    /// Where probe results and control requests go.
    pub fn on_event(mut self, report: impl Fn(IoEvent) + Send + 'static) -> IoLoop {
        self.report = Some(Box::new(report));
        self
    }

    /// Starts the io thread.
    pub fn start(mut self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("io".into())
            .stack_size(256 * 1024)
            .spawn(move || self.run())
            .map(|_| ())
    }

    pub fn run(&mut self) -> ! {
        let mut fds = Vec::new();
        loop {
            self.turn(&mut fds);
        }
    }

    fn turn(&mut self, fds: &mut Vec<libc::pollfd>) {
        let now = Instant::now();
        self.take_commands(now);
        self.relays.on_timers(self.sink, now);
        self.probes.on_timers(now);
        if let Some(h) = &mut self.health {
            h.on_timers(now);
        }
        if let Some(c) = &mut self.control {
            c.on_timers(now, self.relays.rings(), &mut self.dropped);
            if !self.dropped.is_empty() {
                stats::add_follower_dropped(&mut self.dropped);
            }
        }
        self.report_probes();
        fds.clear();
        let layout = self.interest(fds);
        let timeout = poll_timeout(self.next_deadline(), now);
        match sys::poll(fds, timeout) {
            Ok(_) => {}
            Err(libc::EINTR) => return,
            Err(e) => {
                // Cannot happen with valid descriptors; never spin on it.
                log::warn!("io: poll failed: {}", std::io::Error::from_raw_os_error(e));
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
        }
        self.dispatch(fds, &layout, Instant::now());
        self.report_probes();
    }

    fn take_commands(&mut self, now: Instant) {
        for cmd in self.shared.take() {
            match cmd {
                Cmd::Relay {
                    service,
                    stream,
                    fd,
                } => self.relays.add(self.sink, &service, stream, fd),
                Cmd::Probe(req) => self.probes.start(req, now),
                Cmd::Drain { service, ack } => {
                    match service {
                        Some(s) => self.relays.drain_service(&s, self.sink, now),
                        None => self.relays.drain_all(self.sink, now),
                    }
                    ack.raise();
                }
                Cmd::Reply(reply) => {
                    if let Some(c) = &mut self.control {
                        c.on_reply(&reply, now);
                    }
                }
                Cmd::LogBuffer(cap) => self.relays.rings_mut().set_cap(cap),
                Cmd::Notify { service, fd } => self.notify.add(service, fd),
                Cmd::NotifyClose { service } => self.notify.remove(service),
                Cmd::Health(swap) => self.swap_health(swap),
                Cmd::ControlListener(listener) => {
                    if let Some(c) = &mut self.control {
                        c.replace_listener(listener);
                    }
                }
                Cmd::ReadyFd { service, pid, fd } => self.notify.add_ready_pipe(service, pid, fd),
            }
        }
    }

    fn swap_health(&mut self, swap: HealthSwap) {
        match swap {
            HealthSwap::Listener(listener) => {
                if let Some(h) = &mut self.health {
                    h.replace_listener(listener);
                }
            }
            HealthSwap::Server(server) => self.health = Some(*server),
            HealthSwap::Limits(limits) => {
                if let Some(h) = &mut self.health {
                    h.set_limits(limits);
                }
            }
            HealthSwap::Off => self.health = None,
        }
    }

    fn report_probes(&mut self) {
        let done = self.probes.take_done();
        let notified = self.notify.take_done();
        if let Some(report) = &self.report {
            for d in done {
                report(IoEvent::Probe(d));
            }
            for n in notified {
                report(IoEvent::Notify(n));
            }
        }
    }

    fn interest(&self, fds: &mut Vec<libc::pollfd>) -> Layout {
        fds.push(pollin(self.shared.waker.as_raw_fd()));
        let mut sink = Vec::new();
        for (stream, fd) in self.sink.waiting() {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            });
            sink.push(stream);
        }
        let mark = fds.len();
        let now = Instant::now();
        let held = [Stream::Stdout, Stream::Stderr].map(|s| self.sink.held(s, now).is_some());
        self.relays.interest(fds, |s| match s {
            Stream::Stdout => held[0],
            Stream::Stderr => held[1],
        });
        let relays = mark..fds.len();
        let mark = fds.len();
        self.probes.interest(fds);
        let probes = mark..fds.len();
        let mark = fds.len();
        self.notify.interest(fds);
        let notify = mark..fds.len();
        let mark = fds.len();
        if let Some(h) = &self.health {
            h.interest(fds);
        }
        let health = mark..fds.len();
        let mark = fds.len();
        if let Some(c) = &self.control {
            c.interest(fds);
        }
        Layout {
            sink,
            relays,
            probes,
            notify,
            health,
            control: mark..fds.len(),
        }
    }

    fn dispatch(&mut self, fds: &[libc::pollfd], layout: &Layout, now: Instant) {
        if fds.first().is_some_and(|f| f.revents != 0) {
            sys::eventfd_drain(self.shared.waker.as_raw_fd());
        }
        let revents: Vec<libc::c_short> = fds.iter().map(|f| f.revents).collect();
        for (i, stream) in layout.sink.iter().enumerate() {
            if revents.get(1 + i).is_some_and(|&r| r != 0) {
                self.sink.pump(*stream);
            }
        }
        self.relays
            .on_ready(&revents[layout.relays.clone()], self.sink, now);
        self.probes.on_ready(&revents[layout.probes.clone()]);
        self.notify.on_ready(&revents[layout.notify.clone()]);
        if let Some(h) = &mut self.health {
            h.on_ready(&revents[layout.health.clone()], now);
        }
        if let Some(c) = &mut self.control {
            let report = &self.report;
            let mut submit = |s: Submitted| {
                if let Some(r) = report {
                    r(IoEvent::Control(s));
                }
            };
            c.on_ready(
                &revents[layout.control.clone()],
                now,
                self.relays.rings(),
                &mut submit,
            );
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.relays.next_deadline(),
            self.probes.next_deadline(),
            self.health.as_ref().and_then(Server::next_deadline),
            self.control.as_ref().and_then(ControlServer::next_deadline),
            // A held stream is looked at again when it would count as stalled.
            self.sink.held(Stream::Stdout, Instant::now()),
            self.sink.held(Stream::Stderr, Instant::now()),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// The nearest deadline as a poll timeout in milliseconds, rounded up so a
/// sub-millisecond wait does not spin; -1 (no limit) without one.
fn poll_timeout(deadline: Option<Instant>, now: Instant) -> i32 {
    match deadline {
        None => -1,
        Some(t) => {
            let micros = t.saturating_duration_since(now).as_micros();
            i32::try_from(micros.div_ceil(1000)).unwrap_or(i32::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeouts_round_up_and_default_to_forever() {
        let now = Instant::now();
        assert_eq!(poll_timeout(None, now), -1);
        assert_eq!(poll_timeout(Some(now), now), 0);
        assert_eq!(poll_timeout(Some(now + Duration::from_micros(10)), now), 1);
        assert_eq!(
            poll_timeout(Some(now + Duration::from_millis(250)), now),
            250
        );
        assert_eq!(
            poll_timeout(Some(now + Duration::from_secs(1 << 40)), now),
            i32::MAX
        );
    }
}
