//! What the supervisor publishes after every event, for the HTTP server to
//! answer from without touching the supervisor: an immutable value, shared
//! behind an `Arc`.

use std::time::Instant;

use super::types::ExitStatus;

/// The per-service states of the contract (SPEC section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Waiting,
    Starting,
    Running,
    Backoff,
    Failed,
    Stopping,
    Stopped,
    Done,
    /// Stopped on request (`rinit ctl stop`).
    Down,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Waiting,
        Phase::Starting,
        Phase::Running,
        Phase::Backoff,
        Phase::Failed,
        Phase::Stopping,
        Phase::Stopped,
        Phase::Done,
        Phase::Down,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Backoff => "backoff",
            Phase::Failed => "failed",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
            Phase::Done => "done",
            Phase::Down => "down",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    /// The service's slot in the core: what control requests name it by.
    pub id: usize,
    /// Removed by a reload and still being stopped.
    pub removed: bool,
    pub name: String,
    pub phase: Phase,
    /// The live process, if any: set only between spawn and reap.
    pub pid: Option<i32>,
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    /// When the current process was spawned (for uptime).
    pub since: Option<Instant>,
    pub critical: bool,
    /// What the operator asked: false once `ctl stop`ped, until a start.
    pub wanted_up: bool,
    /// Restarts asked through `rinit ctl restart` (not in `restarts`).
    pub restarts_operator: u32,
    /// Ready now: running, or a oneshot that is done.
    pub ready: bool,
    /// Has been ready (oneshots: done) since its last (re)start on request.
    pub ever_ready: bool,
    pub liveness: LivenessView,
    /// Failed liveness checks so far, for `/metrics`.
    pub liveness_failures_total: u64,
    /// The last sd_notify `STATUS=` text.
    pub notify_status: Option<String>,
}

/// The liveness part of `/status` (SPEC section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivenessView {
    /// No `liveness` check.
    None,
    Passing,
    /// Failed this many times in a row, fewer than `failures`: healthy.
    Failing(u32),
    /// Stopped for failing its checks (or its `start_timeout`), not ready
    /// again since: `/healthz` says 503.
    Unhealthy,
}

impl LivenessView {
    pub fn as_str(self) -> &'static str {
        match self {
            LivenessView::None => "none",
            LivenessView::Passing => "passing",
            LivenessView::Failing(_) => "failing",
            LivenessView::Unhealthy => "unhealthy",
        }
    }
}

impl ServiceView {
    /// A reason for `/healthz` to fail: failed, backing off, stopped, or
    /// unhealthy until ready again.
    pub fn unhealthy(&self) -> bool {
        matches!(self.phase, Phase::Failed | Phase::Backoff | Phase::Stopped)
            || self.liveness == LivenessView::Unhealthy
    }

    /// A reason for `/startupz` to fail: wanted up and never ready yet,
    /// or failed.
    pub fn not_started(&self) -> bool {
        self.phase == Phase::Failed || (self.wanted_up && !self.ever_ready)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub services: Vec<ServiceView>,
    /// The main command's pid while it runs.
    pub main_pid: Option<i32>,
    pub shutting_down: bool,
    /// Every process the reaper has reaped, known or adopted.
    pub reaped_total: u64,
    /// Orphans: reaped processes rinit did not spawn itself.
    pub orphans_reaped: u64,
    /// sd_notify datagrams ignored (another sender, or over 4 KiB).
    pub notify_ignored: u64,
}

impl Snapshot {
    pub fn empty() -> Self {
        Snapshot {
            services: Vec::new(),
            main_pid: None,
            shutting_down: false,
            reaped_total: 0,
            orphans_reaped: 0,
            notify_ignored: 0,
        }
    }

    /// SPEC section 7: healthy while no service is failed, in backoff,
    /// stopped or unhealthy, and no shutdown is under way.
    pub fn healthy(&self) -> bool {
        !self.shutting_down && !self.services.iter().any(ServiceView::unhealthy)
    }

    /// SPEC section 7, `/startupz`: every service wanted up has been ready
    /// (oneshots: done) and none is failed.
    pub fn started(&self) -> bool {
        !self.services.iter().any(ServiceView::not_started)
    }

    /// Ready when every service is running or done, and no shutdown. A
    /// `down` service is not wanted up, so it is not waited for (SPEC 7),
    /// nor is one a reload removed and is still stopping.
    pub fn ready(&self) -> bool {
        !self.shutting_down
            && self
                .services
                .iter()
                .all(|s| s.ready || s.phase == Phase::Down || s.removed)
    }
}
