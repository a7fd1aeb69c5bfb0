//! Plain data shared by the decision core and its callers: what a service is
//! allowed to do (its policy), how a process ended, and the events and
//! actions that cross the boundary between the core and the OS shell.

use std::time::{Duration, Instant};

/// How a process ended, as the reaper saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128+N when killed by signal N.
    pub fn as_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {}", crate::core::signal::name(*s)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Which readiness check a service has, as far as the core cares: exec
/// probes are processes the core tracks, the others run off-thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Exec,
    Network,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbePolicy {
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
}

/// `liveness:` as the core schedules it: a check every `probe.interval`
/// once ready; `failures` consecutive failures make the service unhealthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessPolicy {
    pub probe: ProbePolicy,
    pub failures: u32,
}

/// Everything the core needs to decide about one service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServicePolicy {
    pub name: String,
    pub depends_on: Vec<usize>,
    pub oneshot: bool,
    pub restart: RestartPolicy,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub critical: bool,
    pub success_codes: Vec<i32>,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub probe: Option<ProbePolicy>,
    /// Which forwarded (non-shutdown) signals reach this service.
    pub forward: Forward,
    /// Not ready this long after the spawn: stopped, and the attempt
    /// counts as a failed exit.
    pub start_timeout: Option<Duration>,
    pub liveness: Option<LivenessPolicy>,
    /// `ready: {sd_notify: true}`: ready on `READY=1` (SPEC section 12).
    pub notify: bool,
    /// With `notify`: `WATCHDOG=1` is due at least this often once ready.
    pub watchdog: Option<Duration>,
}

/// The `forward` key: which of the signals rinit forwards reach a service.
/// The shutdown signals are not forwarded as such and never filtered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    All,
    /// Only these signal numbers (empty: `none`).
    Only(Vec<i32>),
}

impl Forward {
    pub fn allows(&self, sig: i32) -> bool {
        match self {
            Forward::All => true,
            Forward::Only(list) => list.contains(&sig),
        }
    }
}

impl ServicePolicy {
    /// The defaults of the contract (SPEC section 4), for a long-running service.
    pub fn new(name: &str) -> Self {
        ServicePolicy {
            name: name.to_string(),
            depends_on: Vec::new(),
            oneshot: false,
            restart: RestartPolicy::Always,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            max_restarts: 10,
            restart_window: Duration::from_secs(60),
            critical: true,
            success_codes: vec![0],
            stop_signal: crate::core::signal::SIGTERM,
            stop_timeout: Duration::from_secs(5),
            probe: None,
            forward: Forward::All,
            start_timeout: None,
            liveness: None,
            notify: false,
            watchdog: None,
        }
    }

    pub fn is_success(&self, status: ExitStatus) -> bool {
        matches!(status, ExitStatus::Code(c) if self.success_codes.contains(&c))
    }
}

/// Options of the whole run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPolicy {
    /// Time between the shutdown signal and the first stop signal.
    pub drain: Duration,
    /// Cap on the whole shutdown, drain included.
    pub timeout: Duration,
    /// Whether a main command (CMD) runs after the services are ready.
    pub has_main: bool,
    /// How long the main command gets between its signal and SIGKILL.
    pub main_stop_timeout: Duration,
    /// Start waves, in start order; shutdown walks them backwards.
    pub waves: Vec<Vec<usize>>,
}

/// Who a spawned process is, from the core's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Who {
    Main,
    Service(usize),
    /// The exec readiness probe of a service.
    Probe(usize),
    /// The exec liveness check of a running service.
    Liveness(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The process was forked and its exec succeeded.
    Spawned {
        who: Who,
        pid: i32,
    },
    /// No process runs: fork failed, or exec failed (then `pid` is the
    /// forked child that already exited with `code`, and the reaper will
    /// report it like any other).
    SpawnFailed {
        who: Who,
        pid: Option<i32>,
        code: i32,
    },
    Exited {
        pid: i32,
        status: ExitStatus,
    },
    /// The reaper found no child left at all.
    NoChildren,
    Signal(i32),
    /// The process group `pgid`, watched after `WatchGroup`, is empty: its
    /// leader and every other member have been reaped.
    GroupGone {
        pgid: i32,
    },
    /// A network readiness probe finished: the attempt the core asked for
    /// (a result of any other attempt is stale and dropped).
    ProbeResult {
        service: usize,
        generation: u64,
        attempt: u64,
        ok: bool,
    },
    /// A deadline from `next_deadline` passed.
    Tick,
    /// An operator's request (`rinit ctl`); answered by `Action::Reply`.
    Control(Request),
    /// A datagram on a service's notify socket: `session` is the session
    /// of the sending process (from its credentials), `notice` what it
    /// said; None when it was unreadable or over 4 KiB.
    Notify {
        service: usize,
        session: Option<i32>,
        notice: Option<super::notify::Notice>,
    },
    /// `rinit ctl reload`, validated and planned by the shell (SPEC
    /// section 11); answered by `Action::Reply` once what it started is
    /// ready and what it removed is gone.
    Reload(Box<Reload>),
}

/// A reload as the core applies it: per service slot, what changes. Slots
/// are stable: a kept service keeps its index, an added one takes the next
/// free index (never one a removed service had), so every index in flight
/// (events, probes, requests) still means the same service.
#[derive(Clone, Debug, PartialEq)]
pub struct Reload {
    pub id: RequestId,
    pub changes: Vec<SlotChange>,
    /// `shutdown.drain` and `shutdown.timeout`: for the next shutdown.
    pub drain: Duration,
    pub shutdown_timeout: Duration,
    /// How long the reply waits for restarted and added services.
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SlotChange {
    pub slot: usize,
    pub kind: ChangeKind,
    /// For a person: "command changed", "added".
    pub why: String,
    /// The new policy (`depends_on` in slots); None for a removal.
    pub policy: Option<ServicePolicy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Unchanged,
    /// Policy keys only: the process keeps running.
    InPlace,
    /// How the process runs changed: stopped and started again.
    Restart,
    /// Added: started once its dependencies are ready.
    Start,
    /// Removed: stopped as at shutdown, dependents first, then forgotten.
    Stop,
}

/// Names a control request, so its reply finds the connection waiting.
pub type RequestId = u64;

/// What an operator asks of some services (SPEC section 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Bring up (with its dependencies that are not up), fresh crash-loop
    /// window; reply when ready (or failed).
    Start,
    /// Graceful stop with its own stop rules; the service becomes `down`;
    /// reply when every process of it is reaped.
    Stop,
    /// Stop, then start; not counted in `restarts` nor backoff; reply when
    /// ready again.
    Restart,
    /// Send this signal to each one's process group; reply at once.
    Signal(i32),
}

/// A control request, already resolved to service indices by the shell (an
/// unknown name never reaches the core), in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: RequestId,
    pub verb: Verb,
    pub services: Vec<usize>,
    /// False: reply as soon as the request is accepted (`--no-wait`).
    pub wait: bool,
    /// Reply with a failure if what was asked has not happened by then.
    pub timeout: Duration,
}

/// How one service fared in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceOutcome {
    pub service: usize,
    pub ok: bool,
    /// For a person: "ready", "down; still running and depending on it: web",
    /// "failed (exit code 3)", "timed out waiting for ready".
    pub detail: String,
}

/// The answer to a request: `ok` only when every service's outcome is.
/// `refused` (nothing was changed): a shutdown is under way, for example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub id: RequestId,
    pub ok: bool,
    pub refused: Option<String>,
    pub services: Vec<ServiceOutcome>,
    /// Free text lines (a reload plan, config errors), after the services.
    pub lines: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_never_overflows() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(3600 * 24 * 365));
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Spawn(Who),
    /// Start a network probe; its result comes back as `ProbeResult`.
    Probe {
        service: usize,
        generation: u64,
        attempt: u64,
        /// The service's `liveness` check, not its `ready` probe.
        liveness: bool,
    },
    /// Send a signal to a process group (ESRCH is fine).
    SignalGroup {
        pgid: i32,
        signal: i32,
    },
    /// Send a signal to every process left: all of the namespace as PID 1,
    /// else every descendant.
    SignalAll(i32),
    /// The leader of group `pgid` has been reaped: check at once whether
    /// anything is left of the group (`kill(-pgid, 0)`), and again after
    /// every reaped exit, and report `GroupGone` once it is empty.
    WatchGroup {
        pgid: i32,
    },
    /// Signal what is left of a watched group, if anything: the only way
    /// the core signals a group whose leader's exit it has seen.
    SignalLeftovers {
        pgid: i32,
        signal: i32,
    },
    /// Log every process still left (pid and state) before giving up.
    LogLeftovers,
    Exit(i32),
    /// The answer to a `Control` request, once what it asked has happened.
    Reply(Reply),
}

/// `now + d` that cannot panic: durations come from user config, and an
/// absurd one (`1000years`) must mean "practically never", not an
/// overflow that would kill PID 1.
pub fn after(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(d.min(FAR)).unwrap_or(now)
}

/// Sorts `(key, index)` pairs. Every sort in rinit goes through this one
/// instantiation: each sort of another type or key closure costs PID 1
/// a few KiB of code, and the binary must stay under 1 MiB.
pub fn sort_pairs(pairs: &mut [(usize, usize)]) {
    pairs.sort_unstable();
}

/// `items` reordered by `key`, ties kept in their order.
pub fn sorted_by_key<T>(items: Vec<T>, key: impl Fn(&T) -> usize) -> Vec<T> {
    let mut keyed: Vec<(usize, usize)> =
        items.iter().enumerate().map(|(i, t)| (key(t), i)).collect();
    sort_pairs(&mut keyed);
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    keyed
        .iter()
        .filter_map(|&(_, i)| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// The earlier of two optional deadlines.
pub fn deadline_min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
