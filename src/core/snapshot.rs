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
}

impl Snapshot {
    pub fn empty() -> Self {
        Snapshot {
            services: Vec::new(),
            main_pid: None,
            shutting_down: false,
            reaped_total: 0,
            orphans_reaped: 0,
        }
    }

    /// SPEC section 7: healthy while no service is failed, in backoff or
    /// stopped, and no shutdown is under way.
    pub fn healthy(&self) -> bool {
        !self.shutting_down
            && !self
                .services
                .iter()
                .any(|s| matches!(s.phase, Phase::Failed | Phase::Backoff | Phase::Stopped))
    }

    /// Ready when every service is running or done, and no shutdown. A
    /// `down` service is not wanted up, so it is not waited for (SPEC 7).
    pub fn ready(&self) -> bool {
        !self.shutting_down
            && self
                .services
                .iter()
                .all(|s| matches!(s.phase, Phase::Running | Phase::Done | Phase::Down))
    }
}
