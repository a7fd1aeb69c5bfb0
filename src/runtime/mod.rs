//! The loop that joins the pure core to the OS: it feeds the supervisor
//! the reaper's exits, caught signals and probe results, carries out the
//! actions it answers with, and sleeps until the next event or deadline.
//! With nothing timed it blocks in `recv()`: an idle rinit never wakes.
//!
//! Threads: this one, the reaper, the signal thread and the io thread,
//! whatever the number of services and probes. Nothing here writes to a
//! descriptor that could block: log lines go to the non-blocking sink,
//! output pipes and probes are handed to the io thread.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Output, ReadyCheck};
use crate::control::server::{ControlServer, Submitted};
use crate::core::types::{Action, Event, RunPolicy, Who};
use crate::core::{Level, Supervisor};
use crate::health::Published;
use crate::io::probe::{ProbeDone, ProbeKey, ProbeRequest, Resolver};
use crate::io::sink::Stream;
use crate::io::{Cmd, IoEvent, IoHandle, IoLoop};
use crate::os::groups::Groups;
use crate::os::reaper::{self, Reaped, SpawnCounter};
use crate::os::spawn::{self, Group, Launch, Outcome, Stdio};
use crate::os::sys::SignalSet;
use crate::os::{procs, signals, sys};

pub mod preflight;
mod reload;

/// The default cap on a shutdown (SPEC: `--grace`, `shutdown.timeout`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(9);

/// How long the io thread may take to say it relayed a stopped service's
/// output before the shutdown moves on (it never blocks, so this is a
/// bound, not a wait).
const RELAY_DRAIN: Duration = Duration::from_millis(100);
/// After the last reap: how long rinit tries to get its queued output out
/// before it exits anyway (a stalled reader must not keep PID 1 alive).
pub const EXIT_FLUSH: Duration = Duration::from_millis(200);

pub struct RunSpec {
    pub config: Option<Config>,
    pub command: Vec<OsString>,
    pub grace: Option<Duration>,
    /// The bound health socket; served (and taken) once the first
    /// snapshot exists.
    pub health: Option<std::net::TcpListener>,
    /// Fds rinit inherited (already close-on-exec): the main command keeps
    /// them, rinit closes them once it no longer needs them.
    pub inherited_fds: Vec<i32>,
    /// The signals `main` blocked before anything else, for the signal
    /// thread to take.
    pub signals: SignalSet,
    /// The bound control socket and its path (removed at exit).
    pub control: Option<(std::os::unix::net::UnixListener, PathBuf)>,
    /// Where `health` listens.
    pub health_addr: Option<std::net::SocketAddr>,
    pub pinned: Pinned,
}

/// Sockets given on the command line (or by variable): a reload of the
/// file does not move them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pinned {
    pub health: bool,
    pub control: bool,
}

enum Msg {
    Reaped(Reaped),
    Signal(i32),
    Probe(ProbeDone),
    Control(Submitted),
    Notify(crate::io::notify::NotifyDone),
}

struct Shell {
    spec: RunSpec,
    env: Vec<OsString>,
    cwd: PathBuf,
    counter: Arc<SpawnCounter>,
    io: IoHandle,
    chdir_done: bool,
    /// Leaders rinit spawned and groups being drained: who may be signalled.
    groups: Groups,
    /// Per service slot, the `NOTIFY_SOCKET` it gets (sd_notify services).
    notify_sockets: Vec<Option<String>>,
    /// Per service slot (the core's index), its config: a reload replaces
    /// a kept one's, appends an added one and marks a removed one.
    slots: Vec<reload::Slot>,
    published: Option<Arc<Published>>,
    /// The sockets as bound now (a reload may move them).
    health_addr: Option<std::net::SocketAddr>,
    control_path: Option<PathBuf>,
    /// What the shell itself did in a reload (rebinds), for its reply.
    reload_lines: Option<(crate::core::types::RequestId, Vec<String>)>,
}

/// Runs until the supervisor decides to exit; returns the exit status.
pub fn run(mut spec: RunSpec) -> i32 {
    let (tx, rx) = mpsc::channel();
    let counter = Arc::new(SpawnCounter::default());
    let mut sup = Supervisor::new(policies(&spec), run_policy(&spec));
    let published = (spec.health.is_some() || spec.control.is_some())
        .then(|| Arc::new(Published::new(sup.snapshot())));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    if let Some(c) = spec.config.as_mut().filter(|c| c.path.is_relative()) {
        // rinit leaves its start directory at the first spawn: a reload
        // must still find `-c rinit.yaml`.
        c.path = cwd.join(&c.path);
    }
    let control_path = spec.control.as_ref().map(|(_, p)| p.clone());
    let slots = reload::slots_of(spec.config.as_ref());
    let health_addr = spec.health_addr;
    let io = match start_threads(&mut spec, &tx, &counter, published.clone()) {
        Ok(io) => io,
        Err(e) => {
            log::error!("cannot start: {e}");
            return 2;
        }
    };
    let mut shell = Shell {
        // rinit's own NOTIFY_SOCKET (it is a notify client of whoever
        // started it) is never a service's: theirs are rinit's sockets.
        env: std::env::vars_os()
            .filter(|(k, _)| k != "NOTIFY_SOCKET")
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                OsString::from_vec(kv)
            })
            .collect(),
        cwd,
        spec,
        counter,
        io,
        chdir_done: false,
        groups: Groups::default(),
        notify_sockets: Vec::new(),
        slots,
        published: published.clone(),
        health_addr,
        control_path,
        reload_lines: None,
    };
    for slot in 0..shell.slots.len() {
        shell.sync_notify_socket(slot);
    }
    if shell.spec.command.is_empty() {
        // Only a main command inherits rinit's extra fds.
        shell.close_inherited();
    }
    let notifier = crate::os::notify::Client::from_env().map(|c| (c, Default::default()));
    let code = event_loop(&mut sup, &mut shell, &rx, published.as_deref(), notifier);
    for address in shell.notify_sockets.iter().flatten() {
        if !address.starts_with('@') {
            let _ = std::fs::remove_file(address);
        }
    }
    // Every process is reaped: the pipes hold the services' last words.
    shell.io.drain(None, RELAY_DRAIN);
    if let Some(path) = &shell.control_path {
        crate::control::socket::remove(path);
    }
    code
}

/// The reaper, signal and io threads. The signals were blocked by `main`
/// before any thread existed, so every thread has them blocked.
fn start_threads(
    spec: &mut RunSpec,
    tx: &Sender<Msg>,
    counter: &Arc<SpawnCounter>,
    published: Option<Arc<Published>>,
) -> std::io::Result<IoHandle> {
    let t = tx.clone();
    reaper::start(Arc::clone(counter), move |r| {
        let _ = t.send(Msg::Reaped(r));
    })?;
    let t = tx.clone();
    signals::start(spec.signals, move |sig| {
        let _ = t.send(Msg::Signal(sig));
    })?;
    let t = tx.clone();
    let mut io = IoLoop::new(true, resolver(spec))?.on_event(move |e| {
        let _ = t.send(match e {
            IoEvent::Probe(d) => Msg::Probe(d),
            IoEvent::Control(c) => Msg::Control(c),
            IoEvent::Notify(n) => Msg::Notify(n),
        });
    });
    if let Some(published) = published {
        if let Some(listener) = spec.health.take() {
            io = io.with_health(health_server(spec, listener, Arc::clone(&published))?);
        }
        if let Some((listener, _)) = spec.control.take() {
            io = io.with_control(ControlServer::new(listener, published)?);
        }
    }
    let handle = io.handle();
    if let Some(c) = &spec.config {
        handle.send(Cmd::LogBuffer(c.runtime.log_buffer));
    }
    io.start()?;
    Ok(handle)
}

/// Probe host names resolved once, before supervision starts.
fn resolver(spec: &RunSpec) -> Resolver {
    let hosts = spec
        .config
        .iter()
        .flat_map(|c| &c.services)
        .flat_map(|s| [&s.ready, &s.liveness])
        .filter_map(|check| match check {
            Some(ReadyCheck::Tcp { host, .. } | ReadyCheck::Http { host, .. }) => {
                Some(host.as_str())
            }
            _ => None,
        });
    Resolver::prime(hosts)
}

fn policies(spec: &RunSpec) -> Vec<crate::core::types::ServicePolicy> {
    spec.config
        .as_ref()
        .map(|c| c.services.iter().map(|s| s.policy.clone()).collect())
        .unwrap_or_default()
}

fn run_policy(spec: &RunSpec) -> RunPolicy {
    let has_main = !spec.command.is_empty();
    let mut policy = match &spec.config {
        Some(c) => c.run_policy(has_main),
        None => RunPolicy {
            drain: Duration::ZERO,
            timeout: DEFAULT_GRACE,
            has_main,
            main_stop_timeout: DEFAULT_GRACE,
            waves: Vec::new(),
        },
    };
    if let Some(g) = spec.grace {
        policy.timeout = g;
    }
    if policy.waves.is_empty() {
        // Single-command mode: the main command gets the whole grace period.
        policy.main_stop_timeout = policy.timeout;
    }
    policy
}

/// The HTTP server on the bound socket, answering from the supervisor's
/// initial snapshot until the first event is handled. The io thread takes
/// the socket: rinit keeps no second copy.
fn health_server(
    spec: &RunSpec,
    listener: std::net::TcpListener,
    published: Arc<Published>,
) -> std::io::Result<crate::health::server::Server> {
    let services = spec.config.as_ref().map_or(0, |c| c.services.len());
    crate::health::server::Server::new(listener, published, health_limits(services))
}

/// The health server's bounds: what the fd limit leaves once `services`
/// services have their descriptors.
fn health_limits(services: usize) -> crate::health::Limits {
    crate::health::Limits::within_fd_budget(
        sys::fd_limit().unwrap_or(1024),
        fd_reserve(services as u64),
    )
}

/// Descriptors the health server must leave to the rest of rinit: its own
/// (stdin/out/err, their non-blocking reopens, the eventfd, the listener,
/// and one spawn's transient pipes: 12, rounded up to 16) plus, per
/// service, its two output pipes, its leader's pidfd and a probe socket.
pub fn fd_reserve(services: u64) -> u64 {
    16 + 4 * services
}

fn event_loop(
    sup: &mut Supervisor,
    shell: &mut Shell,
    rx: &Receiver<Msg>,
    published: Option<&Published>,
    mut notifier: Option<(crate::os::notify::Client, crate::core::notify::ClientState)>,
) -> i32 {
    let has_main = !shell.spec.command.is_empty();
    let mut pending = VecDeque::from([Event::Tick]);
    loop {
        while let Some(event) = pending.pop_front() {
            let handled = event.clone();
            let actions = sup.on_event(Instant::now(), event);
            write_notes(sup);
            for action in actions {
                if let Some(code) = shell.execute(action, &mut pending) {
                    write_notes(sup);
                    return code;
                }
            }
            shell.after_event(&handled, &mut pending);
        }
        if published.is_some() || notifier.is_some() {
            let snap = Arc::new(sup.snapshot());
            if let Some((client, state)) = notifier.as_mut() {
                for message in state.messages(&snap, has_main) {
                    client.send(&message);
                }
            }
            if let Some(p) = published {
                p.publish(snap);
            }
        }
        if let Some(event) = shell.wait(sup, rx) {
            if let Event::Exited { pid, .. } = event {
                if let Some(name) = sup.stopping_service(pid) {
                    // Its last lines go out before the next wave is
                    // signalled, so the log follows the stop order.
                    shell.io.drain(Some(Arc::from(name)), RELAY_DRAIN);
                }
            }
            pending.push_back(event);
        }
    }
}

fn write_notes(sup: &mut Supervisor) {
    for n in sup.take_notes() {
        match n.level {
            Level::Error => log::error!("{}", n.text),
            Level::Warn => log::warn!("{}", n.text),
            Level::Info => log::info!("{}", n.text),
            Level::Debug => log::debug!("{}", n.text),
        }
    }
}

impl Shell {
    /// Blocks for the next message, or until the supervisor's next
    /// deadline (then a Tick).
    fn wait(&mut self, sup: &Supervisor, rx: &Receiver<Msg>) -> Option<Event> {
        let msg = match sup.next_deadline() {
            None => rx.recv().ok(),
            Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => return Some(Event::Tick),
                Err(RecvTimeoutError::Disconnected) => None,
            },
        };
        let Some(msg) = msg else {
            // Cannot happen while `self.tx` lives; never spin if it does.
            log::error!("event channel closed");
            return Some(Event::Tick);
        };
        match msg {
            Msg::Reaped(Reaped::Exit { pid, status }) => Some(Event::Exited { pid, status }),
            // A report from before the latest spawn is stale.
            Msg::Reaped(Reaped::NoChildren { spawns }) => {
                (spawns == self.counter.current()).then_some(Event::NoChildren)
            }
            Msg::Signal(sig) => Some(Event::Signal(sig)),
            Msg::Control(Submitted::Request(req)) => Some(Event::Control(req)),
            Msg::Control(Submitted::Shutdown) => Some(Event::Signal(crate::core::signal::SIGTERM)),
            Msg::Control(Submitted::ReloadPlan { id }) => {
                self.reply(self.reload_plan(id));
                None
            }
            Msg::Control(Submitted::Reload { id, timeout }) => self.reload(sup, id, timeout),
            Msg::Notify(n) => Some(Event::Notify {
                service: n.service,
                session: n.session,
                notice: n.notice,
            }),
            Msg::Probe(ProbeDone { key, ok }) => Some(Event::ProbeResult {
                service: key.service,
                generation: key.generation,
                attempt: key.attempt,
                ok,
            }),
        }
    }

    /// Bookkeeping once the supervisor has handled `event`: a reaped
    /// leader's pidfd is dropped, and drained groups are checked, since a
    /// reaped exit may have been the last member of one.
    fn after_event(&mut self, event: &Event, pending: &mut VecDeque<Event>) {
        if let Event::Exited { pid, .. } = event {
            self.groups.forget(*pid);
        }
        if matches!(
            event,
            Event::Exited { .. } | Event::Tick | Event::NoChildren
        ) {
            let gone = self.groups.gone();
            pending.extend(gone.into_iter().map(|pgid| Event::GroupGone { pgid }));
        }
    }

    /// Carries out one action; events it causes go to `pending`.
    fn execute(&mut self, action: Action, pending: &mut VecDeque<Event>) -> Option<i32> {
        match action {
            Action::Spawn(who) => pending.push_back(self.spawn(who)),
            Action::Probe {
                service,
                generation,
                attempt,
                liveness,
            } => self.start_probe(
                ProbeKey {
                    service,
                    generation,
                    attempt,
                },
                liveness,
            ),
            Action::SignalGroup { pgid, signal } => self.groups.signal_group(pgid, signal),
            Action::WatchGroup { pgid } => {
                if !self.groups.watch(pgid) {
                    pending.push_back(Event::GroupGone { pgid });
                }
            }
            Action::SignalLeftovers { pgid, signal } => self.groups.signal_leftovers(pgid, signal),
            Action::LogLeftovers => {
                let left = procs::leftovers();
                log::error!("left after SIGKILL: {}", left.join(", "));
            }
            Action::SignalAll(sig) => {
                let n = procs::signal_all(sig);
                log::debug!(
                    "sent {} to {n} leftover process(es)",
                    crate::core::signal::name(sig)
                );
            }
            Action::Exit(code) => return Some(code),
            Action::Reply(reply) => {
                let reply = self.with_reload_lines(reply);
                self.reply(reply);
            }
        }
        None
    }

    fn spawn(&mut self, who: Who) -> Event {
        let (outcome, ready_rd) = self.launch(who);
        let event = match outcome {
            Outcome::Started(started) => {
                self.counter.bump();
                self.groups.track(started.pid);
                if let Who::Service(i) = who {
                    self.relay(i, started.stdout, started.stderr);
                    if let Some(fd) = ready_rd {
                        self.io.send(Cmd::ReadyFd {
                            service: i,
                            pid: started.pid,
                            fd,
                        });
                    }
                }
                Event::Spawned {
                    who,
                    pid: started.pid,
                }
            }
            Outcome::ExecFailed { pid, code, error } => {
                self.counter.bump();
                self.groups.track(pid);
                log::error!("{}: {error} (exit {code})", self.name_of(who));
                Event::SpawnFailed {
                    who,
                    pid: Some(pid),
                    code,
                }
            }
            Outcome::NotStarted { code, error } => {
                log::error!("{}: {error} (exit {code})", self.name_of(who));
                Event::SpawnFailed {
                    who,
                    pid: None,
                    code,
                }
            }
        };
        if who == Who::Main {
            self.close_inherited();
        }
        if !self.chdir_done {
            // rinit must not keep the start directory's mount busy.
            self.chdir_done = true;
            if let Err(e) = std::env::set_current_dir("/") {
                log::debug!("chdir /: {e}");
            }
        }
        event
    }

    fn name_of(&self, who: Who) -> String {
        let svc = |i: usize| {
            self.slots
                .get(i)
                .map_or_else(|| format!("service {i}"), |s| s.svc.name.clone())
        };
        match who {
            Who::Main => "main command".into(),
            Who::Service(i) => svc(i),
            Who::Probe(i) => format!("{} (readiness probe)", svc(i)),
            Who::Liveness(i) => format!("{} (liveness check)", svc(i)),
        }
    }

    /// Spawns `who`; for a service with `ready: {fd: N}`, also the read
    /// end of its readiness pipe (the write end is N in the child only).
    fn launch(&self, who: Who) -> (Outcome, Option<std::os::fd::OwnedFd>) {
        let no_fds: [i32; 0] = [];
        let service = match who {
            Who::Main => {
                let outcome = spawn::spawn(&Launch {
                    argv: &self.spec.command,
                    env: &self.env,
                    workdir: Some(&self.cwd),
                    identity: None,
                    group: Group::Foreground,
                    stdio: Stdio::Inherit,
                    keep_fds: &self.spec.inherited_fds,
                    ready_fd: None,
                    hardening: None,
                });
                return (outcome, None);
            }
            Who::Service(i) | Who::Probe(i) | Who::Liveness(i) => self.slots.get(i).map(|s| &s.svc),
        };
        let Some(svc) = service else {
            let error = "no such service".into();
            return (Outcome::NotStarted { code: 127, error }, None);
        };
        let check = match who {
            Who::Liveness(_) => &svc.liveness,
            _ => &svc.ready,
        };
        let argv: Vec<OsString> = match (who, check) {
            (Who::Probe(_) | Who::Liveness(_), Some(ReadyCheck::Exec(argv))) => {
                argv.iter().map(OsString::from).collect()
            }
            (Who::Probe(_) | Who::Liveness(_), _) => {
                let error = "no exec probe".into();
                return (Outcome::NotStarted { code: 127, error }, None);
            }
            _ => svc
                .command
                .to_argv()
                .into_iter()
                .map(OsString::from)
                .collect(),
        };
        let mut env = merge_env(&self.env, &svc.env);
        let notify = match who {
            Who::Service(i) => self.notify_sockets.get(i).and_then(Option::as_ref),
            _ => None,
        };
        if let Some(address) = notify {
            env.retain(|kv| !kv.as_encoded_bytes().starts_with(b"NOTIFY_SOCKET="));
            env.push(OsString::from(format!("NOTIFY_SOCKET={address}")));
            if let Some(w) = svc.policy.watchdog {
                env.push(OsString::from(format!("WATCHDOG_USEC={}", w.as_micros())));
            }
        }
        let stdio = match (who, svc.output) {
            (Who::Probe(_) | Who::Liveness(_), _) => Stdio::QuietStdout,
            (_, Output::Prefix) => Stdio::Pipes,
            (_, Output::Inherit) => Stdio::Inherit,
        };
        let ready_pipe = match (who, &svc.ready) {
            (Who::Service(_), Some(ReadyCheck::Fd(n))) => {
                match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                    Ok((rd, wr)) => Some((rd, wr, *n)),
                    Err(e) => {
                        let error = format!("cannot create its readiness pipe: {e}");
                        return (Outcome::NotStarted { code: 126, error }, None);
                    }
                }
            }
            _ => None,
        };
        let outcome = spawn::spawn(&Launch {
            argv: &argv,
            env: &env,
            workdir: Some(svc.workdir.as_deref().unwrap_or(&self.cwd)),
            // Only root switches; otherwise `main` checked that `user:` is
            // rinit's own identity (or that `user_when_not_root: rinit` lets
            // it run as rinit's), and setgroups would fail without privilege.
            identity: svc.user.as_ref().filter(|_| sys::euid() == 0),
            group: Group::NewSession,
            stdio,
            keep_fds: &no_fds,
            ready_fd: ready_pipe
                .as_ref()
                .map(|(_, wr, n)| (std::os::fd::AsRawFd::as_raw_fd(wr), *n)),
            hardening: Some(&svc.hardening),
        });
        // The write end closes here: only the child holds it now.
        (outcome, ready_pipe.map(|(rd, _, _)| rd))
    }

    fn relay(
        &self,
        i: usize,
        out: Option<std::os::fd::OwnedFd>,
        err: Option<std::os::fd::OwnedFd>,
    ) {
        let service: Arc<str> = Arc::from(self.name_of(Who::Service(i)));
        for (stream, fd) in [(Stream::Stdout, out), (Stream::Stderr, err)] {
            if let Some(fd) = fd {
                self.io.send(Cmd::Relay {
                    service: Arc::clone(&service),
                    stream,
                    fd,
                });
            }
        }
    }

    fn start_probe(&self, key: ProbeKey, liveness: bool) {
        let Some(svc) = self.slots.get(key.service).map(|s| &s.svc) else {
            return;
        };
        let (check, policy) = if liveness {
            (svc.liveness.clone(), svc.policy.liveness.map(|l| l.probe))
        } else {
            (svc.ready.clone(), svc.policy.probe)
        };
        let (Some(check), Some(policy)) = (check, policy) else {
            return;
        };
        self.io.send(Cmd::Probe(ProbeRequest {
            key,
            check,
            timeout: policy.timeout,
        }));
    }

    /// Hands a control reply to the io thread, which holds the connection.
    fn reply(&self, reply: crate::core::types::Reply) {
        self.io.send(Cmd::Reply(reply));
    }

    fn close_inherited(&mut self) {
        for fd in self.spec.inherited_fds.drain(..) {
            sys::close(fd);
        }
    }
}

/// rinit's environment with the service's variables set on top.
fn merge_env(base: &[OsString], extra: &[(String, String)]) -> Vec<OsString> {
    let mut env: Vec<OsString> = base
        .iter()
        .filter(|kv| {
            let bytes = kv.as_encoded_bytes();
            !extra
                .iter()
                .any(|(k, _)| bytes.starts_with(k.as_bytes()) && bytes.get(k.len()) == Some(&b'='))
        })
        .cloned()
        .collect();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| OsString::from(format!("{k}={v}"))),
    );
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_env_overrides_and_adds() {
        let base = vec![
            OsString::from("A=1"),
            OsString::from("AB=2"),
            OsString::from("PATH=/bin"),
        ];
        let env = merge_env(
            &base,
            &[("A".into(), "x".into()), ("NEW".into(), "".into())],
        );
        assert_eq!(
            env,
            vec![
                OsString::from("AB=2"),
                OsString::from("PATH=/bin"),
                OsString::from("A=x"),
                OsString::from("NEW=")
            ]
        );
    }
}
