//! One service's state machine and restart bookkeeping. The rules of the
//! contract that concern a single service live here: what an exit means
//! (done, stopped, failed, or a restart after a backoff) and how long the
//! backoff is. Everything is a function of the inputs and `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::snapshot::Phase;
use super::types::{after, ExitStatus, ProbeKind, ProbePolicy, RestartPolicy, ServicePolicy};

/// After this long up, a service's next crash starts the backoff from the
/// beginning again.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// A network probe gets this much beyond its own timeout to report before
/// the core gives up on it (the prober enforces the timeout itself).
const NETWORK_PROBE_SLACK: Duration = Duration::from_millis(500);

#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub next_at: Instant,
    pub inflight: Option<Inflight>,
    /// Attempts started so far for this process: the id of the latest.
    pub attempts: u64,
}

impl Probe {
    /// When the core must look at it: the deadline of the attempt in
    /// flight, else when the next one is due.
    fn due(&self) -> Instant {
        self.inflight.as_ref().map_or(self.next_at, |i| i.deadline)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Inflight {
    /// Which attempt this is: a network result must name it to count.
    pub attempt: u64,
    pub started: Instant,
    pub deadline: Instant,
    /// The exec probe's process, once spawned.
    pub pid: Option<i32>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Waiting,
    /// Spawn requested (`pid` None until the shell reports it) or spawned
    /// and not yet ready.
    Starting {
        pid: Option<i32>,
        since: Instant,
        probe: Option<Probe>,
    },
    Running {
        pid: i32,
        since: Instant,
    },
    Backoff {
        until: Instant,
    },
    Failed,
    Stopping {
        pid: i32,
        since: Instant,
        deadline: Instant,
        killed: bool,
    },
    /// The main process exited with `status` and has been reaped, but its
    /// process group `pgid` still has members (or has not been checked
    /// yet): they got the stop signal and get SIGKILL at `deadline`. What
    /// the exit means is decided only once the group is empty.
    Draining {
        pgid: i32,
        status: ExitStatus,
        /// When the exited process was spawned (its uptime counts for
        /// the backoff reset).
        since: Instant,
        deadline: Instant,
        killed: bool,
    },
    Stopped,
    Done,
    /// Stopped on request (`rinit ctl stop`): stays so until a `start`.
    Down,
}

/// What an exit of the service's process leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterExit {
    Done,
    Stopped,
    Failed,
    Restart { delay: Duration, attempt: u32 },
}

#[derive(Clone, Debug)]
pub struct Service {
    pub policy: ServicePolicy,
    pub state: State,
    pub restarts: u32,
    recent_restarts: VecDeque<Instant>,
    consecutive: u32,
    pub last_exit: Option<ExitStatus>,
    /// Reached `running` (or `done`) at least once: dependents may start.
    pub ever_ready: bool,
    /// Bumped at every spawn so late probe results of an earlier process
    /// are recognised and dropped.
    pub generation: u64,
    /// What the operator asked (`ctl start`/`stop`), apart from the state:
    /// a service not wanted up is never restarted and ends `Down`.
    pub wanted_up: bool,
    /// A `ctl restart` (or a `start` during a requested stop) is under
    /// way: once its process is gone it starts again, with no backoff and
    /// no count in `restarts`.
    pub restart_pending: bool,
    /// Restarts asked by an operator, counted apart from `restarts`.
    pub restarts_operator: u32,
    /// The liveness check's schedule while `Running` (SPEC section 12).
    check: Option<Probe>,
    /// Consecutive failed liveness checks of the current process.
    pub liveness_failures: u32,
    /// Every failed liveness check, for `/metrics`.
    pub liveness_failures_total: u64,
    /// Stopped for failing its liveness check or its `start_timeout`: the
    /// exit of this process counts as a failure whatever its status.
    stop_is_failure: bool,
    /// Unhealthy (see `stop_is_failure`) and not ready again since:
    /// `/healthz` says 503 meanwhile.
    pub unhealthy: bool,
    /// `RELOADING=1` and no `READY=1` since: not ready.
    pub reloading: bool,
    /// The last `STATUS=` text.
    pub notify_status: Option<String>,
    /// When the next `WATCHDOG=1` is due, while running with a watchdog.
    watchdog_at: Option<Instant>,
    /// `EXTEND_TIMEOUT_USEC=`: the start deadline, moved once.
    start_extended: Option<Instant>,
    /// Removed by a reload: stopped (dependents first), then forgotten.
    pub retired: bool,
    /// A reload's new policy for a service it restarts: the process that
    /// runs is stopped by its own rules (its program expects its own
    /// `stop_signal`), the next one starts with these.
    pub next_policy: Option<ServicePolicy>,
}

/// What a finished liveness check means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Passing,
    /// Failed `n` times in a row, fewer than `failures`.
    Failing(u32),
    /// Failed `failures` times in a row: to be stopped and restarted.
    Unhealthy(u32),
}

impl Service {
    pub fn new(policy: ServicePolicy) -> Self {
        Service {
            policy,
            state: State::Waiting,
            restarts: 0,
            recent_restarts: VecDeque::new(),
            consecutive: 0,
            last_exit: None,
            ever_ready: false,
            generation: 0,
            wanted_up: true,
            restart_pending: false,
            restarts_operator: 0,
            check: None,
            liveness_failures: 0,
            liveness_failures_total: 0,
            stop_is_failure: false,
            unhealthy: false,
            reloading: false,
            notify_status: None,
            watchdog_at: None,
            start_extended: None,
            retired: false,
            next_policy: None,
        }
    }

    /// Removed by a reload and nothing of it runs any more: it is no
    /// longer shown, resolved, waited for or stopped.
    pub fn forgotten(&self) -> bool {
        self.retired && !self.has_process()
    }

    /// A reload changed only policy keys: the new ones apply from now on
    /// to the process as it runs. A changed liveness check or watchdog is
    /// scheduled afresh (the caller ended any check in flight first).
    pub fn update_policy(&mut self, policy: ServicePolicy, now: Instant) {
        if self.next_policy.is_some() {
            // Still stopping for a restart: the next process gets it.
            self.next_policy = Some(policy);
            return;
        }
        let rescheduled = self.policy.liveness != policy.liveness;
        let watchdog = self.policy.watchdog != policy.watchdog;
        self.policy = policy;
        if !matches!(self.state, State::Running { .. }) {
            return;
        }
        if rescheduled {
            let attempts = self.check.as_ref().map_or(0, |c| c.attempts);
            self.liveness_failures = 0;
            self.check = self.policy.liveness.map(|l| Probe {
                next_at: after(now, l.probe.interval),
                inflight: None,
                attempts,
            });
        }
        if watchdog {
            self.watchdog_at = self.policy.watchdog.map(|w| after(now, w));
        }
    }

    /// True when a changed liveness check means the one in flight is of
    /// the old kind and must be ended before `update_policy`.
    pub fn liveness_changes(&self, policy: &ServicePolicy) -> bool {
        self.policy.liveness != policy.liveness && self.checks_liveness()
    }

    pub fn name(&self) -> &str {
        &self.policy.name
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Waiting => Phase::Waiting,
            State::Starting { .. } => Phase::Starting,
            State::Running { .. } => Phase::Running,
            State::Backoff { .. } => Phase::Backoff,
            State::Failed => Phase::Failed,
            // Still stopping: what is left of the group is being stopped.
            State::Stopping { .. } | State::Draining { .. } => Phase::Stopping,
            State::Stopped => Phase::Stopped,
            State::Done => Phase::Done,
            State::Down => Phase::Down,
        }
    }

    /// The live main process, if one runs (a draining service has none:
    /// its leader has been reaped).
    pub fn pid(&self) -> Option<i32> {
        match self.state {
            State::Starting { pid, .. } => pid,
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    pub fn since(&self) -> Option<Instant> {
        match self.state {
            State::Starting { since, .. }
            | State::Running { since, .. }
            | State::Stopping { since, .. }
            | State::Draining { since, .. } => Some(since),
            _ => None,
        }
    }

    /// The leader of the service's group has been reaped with `status`:
    /// the group is drained before the exit is decided.
    pub fn begin_drain(&mut self, status: ExitStatus, deadline: Instant, killed: bool) {
        let Some(pgid) = self.pid() else {
            return;
        };
        let since = self.since().unwrap_or(deadline);
        self.state = State::Draining {
            pgid,
            status,
            since,
            deadline,
            killed,
        };
    }

    /// The group being drained, with the leader's exit status.
    pub fn draining(&self) -> Option<(i32, ExitStatus)> {
        match self.state {
            State::Draining { pgid, status, .. } => Some((pgid, status)),
            _ => None,
        }
    }

    /// SIGKILL is due for what is left of a draining group (true once).
    pub fn drain_kill_due(&mut self, now: Instant) -> Option<i32> {
        match &mut self.state {
            State::Draining {
                pgid,
                deadline,
                killed,
                ..
            } if !*killed && now >= *deadline => {
                *killed = true;
                Some(*pgid)
            }
            _ => None,
        }
    }

    /// Ready now: running, or a oneshot that is done.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Running { .. } | State::Done) && !self.reloading
    }

    /// Its process is to be stopped as soon as it is known: the operator
    /// asked for a stop or restart before the spawn was reported.
    pub fn stop_requested(&self) -> bool {
        !self.wanted_up || self.restart_pending
    }

    /// Brought up again on request (`ctl start` of an ended service, or
    /// the second half of a restart): it waits for its dependencies as at
    /// boot; `fresh`: with a new crash-loop window and backoff (a `failed`
    /// one), else they stand (an operator's restart is not a crash).
    /// Readiness is earned again, so dependents started with it wait.
    pub fn revive(&mut self, fresh: bool) {
        if let Some(policy) = self.next_policy.take() {
            self.policy = policy;
        }
        self.wanted_up = true;
        self.restart_pending = false;
        if fresh {
            self.recent_restarts.clear();
            self.consecutive = 0;
        }
        self.ever_ready = false;
        self.state = State::Waiting;
    }

    /// Something of it may still run: a process (or a spawn not yet
    /// reported), or what is left of its group.
    pub fn has_process(&self) -> bool {
        matches!(
            self.state,
            State::Starting { .. }
                | State::Running { .. }
                | State::Stopping { .. }
                | State::Draining { .. }
        )
    }

    /// Ended for good: nothing will start it again.
    pub fn is_terminal(&self) -> bool {
        matches!(self.state, State::Failed | State::Stopped | State::Done)
    }

    /// Moves to `Starting` for a new process; the caller emits the spawn.
    pub fn begin_spawn(&mut self, now: Instant) {
        self.generation += 1;
        self.stop_is_failure = false;
        self.liveness_failures = 0;
        self.reloading = false;
        self.start_extended = None;
        self.watchdog_at = None;
        let probe = self.policy.probe.map(|_| Probe {
            next_at: now,
            inflight: None,
            attempts: 0,
        });
        self.state = State::Starting {
            pid: None,
            since: now,
            probe,
        };
    }

    /// The shell reports the pid; without a probe that means ready (a
    /// oneshot is ready only once it exits with success).
    /// Returns true when the service became ready.
    pub fn spawned(&mut self, pid: i32, now: Instant) -> bool {
        let State::Starting { since, probe, .. } = &self.state else {
            return false;
        };
        // A process to be stopped at once is never reported ready.
        if probe.is_some() || self.policy.notify || self.policy.oneshot || self.stop_requested() {
            let (since, probe) = (*since, probe.clone());
            self.state = State::Starting {
                pid: Some(pid),
                since,
                probe,
            };
            return false;
        }
        self.state = State::Running { pid, since: now };
        self.became_ready(now, 0);
        true
    }

    /// A passing probe: `Starting` becomes `Running`.
    pub fn mark_ready(&mut self, now: Instant) -> bool {
        if let State::Starting {
            pid: Some(pid),
            since,
            ref probe,
        } = self.state
        {
            let attempts = probe.as_ref().map_or(0, |p| p.attempts);
            self.state = State::Running { pid, since };
            self.became_ready(now, attempts);
            return true;
        }
        false
    }

    /// Ready (again): healthy, and the liveness check, if any, starts one
    /// `interval` from now. Its attempt ids continue the readiness probe's
    /// so that no late readiness answer counts for it.
    fn became_ready(&mut self, now: Instant, attempts: u64) {
        self.ever_ready = true;
        self.unhealthy = false;
        self.liveness_failures = 0;
        self.check = self.policy.liveness.map(|l| Probe {
            next_at: after(now, l.probe.interval),
            inflight: None,
            attempts,
        });
        self.watchdog_at = self.policy.watchdog.map(|w| after(now, w));
    }

    /// `WATCHDOG=1`: the next one is due a `watchdog` from now.
    pub fn feed_watchdog(&mut self, now: Instant) {
        if matches!(self.state, State::Running { .. }) {
            self.watchdog_at = self.policy.watchdog.map(|w| after(now, w));
        }
    }

    /// The watchdog went unfed past its deadline (once: it is cleared).
    pub fn watchdog_missed(&mut self, now: Instant) -> Option<std::time::Duration> {
        let due = self.watchdog_at?;
        if now < due || !matches!(self.state, State::Running { .. }) || self.stop_requested() {
            return None;
        }
        self.watchdog_at = None;
        self.policy.watchdog
    }

    /// `EXTEND_TIMEOUT_USEC=`: while starting, the start deadline becomes
    /// `now + extra` if that is later; honoured once per process.
    pub fn extend_start(&mut self, now: Instant, extra: std::time::Duration) -> bool {
        if self.start_extended.is_some() || !matches!(self.state, State::Starting { .. }) {
            return false;
        }
        self.start_extended = Some(after(now, extra));
        true
    }

    /// The check that runs in the current state: the readiness probe while
    /// starting, the liveness check while running.
    fn check_policy(&self) -> Option<ProbePolicy> {
        match self.state {
            State::Starting { .. } => self.policy.probe,
            State::Running { .. } => self.policy.liveness.map(|l| l.probe),
            _ => None,
        }
    }

    /// True while running with a liveness check (whose results are
    /// liveness results, not readiness).
    pub fn checks_liveness(&self) -> bool {
        matches!(self.state, State::Running { .. }) && self.check.is_some()
    }

    /// Counts a finished liveness check.
    pub fn liveness_result(&mut self, ok: bool) -> Liveness {
        if ok {
            self.liveness_failures = 0;
            return Liveness::Passing;
        }
        self.liveness_failures = self.liveness_failures.saturating_add(1);
        self.liveness_failures_total = self.liveness_failures_total.saturating_add(1);
        let limit = self.policy.liveness.map_or(u32::MAX, |l| l.failures);
        if self.liveness_failures >= limit {
            Liveness::Unhealthy(self.liveness_failures)
        } else {
            Liveness::Failing(self.liveness_failures)
        }
    }

    /// Not ready `start_timeout` after its spawn (once a pid is known and
    /// unless a stop was asked for already).
    pub fn start_timed_out(&self, now: Instant) -> Option<std::time::Duration> {
        let limit = self.policy.start_timeout?;
        match self.state {
            State::Starting {
                pid: Some(_),
                since,
                ..
            } if !self.stop_requested() && now >= self.start_deadline(since, limit) => Some(limit),
            _ => None,
        }
    }

    fn start_deadline(&self, since: Instant, limit: std::time::Duration) -> Instant {
        let own = after(since, limit);
        self.start_extended.map_or(own, |e| e.max(own))
    }

    /// About to be stopped as unhealthy: its exit will be a failure, and
    /// it is unhealthy until ready again.
    pub fn mark_unhealthy(&mut self) {
        self.stop_is_failure = true;
        self.unhealthy = true;
    }

    pub fn liveness_view(&self) -> super::snapshot::LivenessView {
        use super::snapshot::LivenessView;
        if self.unhealthy {
            LivenessView::Unhealthy
        } else if self.policy.liveness.is_none() {
            LivenessView::None
        } else if self.liveness_failures > 0 {
            LivenessView::Failing(self.liveness_failures)
        } else {
            LivenessView::Passing
        }
    }

    /// Its process is being stopped (or was) as unhealthy.
    pub fn stopping_unhealthy(&self) -> bool {
        self.stop_is_failure
    }

    /// Decides what the exit of the service's process means, outside of a
    /// shutdown, and records the restart if there is one.
    pub fn on_exit(&mut self, status: ExitStatus, now: Instant) -> AfterExit {
        let uptime = self
            .since()
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        self.last_exit = Some(status);
        let success = self.policy.is_success(status) && !std::mem::take(&mut self.stop_is_failure);
        if self.policy.oneshot && success {
            self.ever_ready = true;
            return self.settle(AfterExit::Done);
        }
        let wants_restart = match self.policy.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
        if !wants_restart {
            return self.settle(if success {
                AfterExit::Stopped
            } else {
                AfterExit::Failed
            });
        }
        self.restart_or_fail(uptime, now)
    }

    fn restart_or_fail(&mut self, uptime: Duration, now: Instant) -> AfterExit {
        let window = self.policy.restart_window;
        while let Some(&t) = self.recent_restarts.front() {
            if now.saturating_duration_since(t) >= window {
                self.recent_restarts.pop_front();
            } else {
                break;
            }
        }
        if self.recent_restarts.len() >= self.policy.max_restarts as usize {
            return self.settle(AfterExit::Failed);
        }
        self.recent_restarts.push_back(now);
        self.restarts = self.restarts.saturating_add(1);
        if uptime >= BACKOFF_RESET_AFTER {
            self.consecutive = 0;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        let delay = backoff_delay(
            self.policy.backoff_initial,
            self.policy.backoff_max,
            self.consecutive,
        );
        self.state = State::Backoff {
            until: after(now, delay),
        };
        AfterExit::Restart {
            delay,
            attempt: self.consecutive,
        }
    }

    fn settle(&mut self, outcome: AfterExit) -> AfterExit {
        self.state = match outcome {
            AfterExit::Done => State::Done,
            AfterExit::Stopped => State::Stopped,
            _ => State::Failed,
        };
        outcome
    }

    /// The probe timer: start a probe when due. Returns the kind to start.
    pub fn probe_due(&mut self, now: Instant) -> Option<ProbeKind> {
        let policy = self.check_policy()?;
        if matches!(self.state, State::Starting { pid: None, .. }) {
            return None;
        }
        let probe = self.probe_mut()?;
        if probe.inflight.is_some() || now < probe.next_at {
            return None;
        }
        let slack = match policy.kind {
            ProbeKind::Exec => Duration::ZERO,
            ProbeKind::Network => NETWORK_PROBE_SLACK,
        };
        probe.attempts += 1;
        probe.inflight = Some(Inflight {
            attempt: probe.attempts,
            started: now,
            deadline: after(now, policy.timeout.saturating_add(slack)),
            pid: None,
        });
        Some(policy.kind)
    }

    /// The check in flight or scheduled: readiness while starting,
    /// liveness while running.
    pub fn probe_mut(&mut self) -> Option<&mut Probe> {
        match &mut self.state {
            State::Starting {
                probe: Some(probe), ..
            } => Some(probe),
            State::Running { .. } => self.check.as_mut(),
            _ => None,
        }
    }

    fn probe_ref(&self) -> Option<&Probe> {
        match &self.state {
            State::Starting {
                probe: Some(probe), ..
            } => Some(probe),
            State::Running { .. } => self.check.as_ref(),
            _ => None,
        }
    }

    /// Ends the probe in flight; a failure schedules the next one.
    /// Returns the exec probe's pid, if it still runs.
    pub fn finish_probe(&mut self, now: Instant) -> Option<i32> {
        let interval = self.check_policy().map_or(Duration::ZERO, |p| p.interval);
        // Liveness runs every interval, start to start; readiness ramps up.
        let ramp = matches!(self.state, State::Starting { .. });
        let probe = self.probe_mut()?;
        let inflight = probe.inflight.take()?;
        let gap = if ramp {
            retry_gap(inflight.attempt, interval)
        } else {
            interval
        };
        probe.next_at = after(inflight.started, gap).max(now);
        inflight.pid
    }

    pub fn probe_pid(&self) -> Option<i32> {
        self.probe_ref()?.inflight.as_ref()?.pid
    }

    /// The earliest time this service needs the core to look at it again.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Backoff { until } => Some(*until),
            State::Starting {
                ref probe,
                pid: Some(_),
                since,
            } => {
                let check = probe.as_ref().map(Probe::due);
                // A stop asked for already supersedes the start timeout.
                let timeout = (!self.stop_requested())
                    .then_some(self.policy.start_timeout)
                    .flatten()
                    .map(|t| self.start_deadline(*since, t));
                super::types::deadline_min(check, timeout)
            }
            State::Running { .. } => {
                let check = self.check.as_ref().map(Probe::due);
                let watchdog = self.watchdog_at.filter(|_| !self.stop_requested());
                super::types::deadline_min(check, watchdog)
            }
            State::Stopping {
                deadline,
                killed: false,
                ..
            }
            | State::Draining {
                deadline,
                killed: false,
                ..
            } => Some(*deadline),
            _ => None,
        }
    }
}

/// `initial`·2ⁿ⁻¹ for the n-th consecutive restart, capped at `max`.
pub fn backoff_delay(initial: Duration, max: Duration, n: u32) -> Duration {
    let shift = n.saturating_sub(1).min(31);
    initial
        .checked_mul(1u32 << shift)
        .map_or(max, |d| d.min(max))
}

/// The first readiness retry comes 10 ms after the first attempt, each next
/// one twice as late, until `interval`: a daemon that listens 30 ms after
/// its exec is seen ready at about 30 ms, not one `interval` later, and a
/// chain of dependencies does not add an `interval` per link. At most
/// log2(interval / 10 ms) attempts more than a fixed `interval` would make.
fn retry_gap(attempt: u64, interval: Duration) -> Duration {
    let first = Duration::from_millis(10);
    let shift = attempt.saturating_sub(1).min(20);
    first.saturating_mul(1 << shift as u32).min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let d: Vec<_> = (1..=6)
            .map(|n| backoff_delay(ms(100), ms(1000), n))
            .collect();
        assert_eq!(
            d,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(backoff_delay(ms(100), ms(1000), 200), ms(1000));
        assert_eq!(backoff_delay(Duration::ZERO, ms(1000), 5), Duration::ZERO);
    }

    fn started(policy: ServicePolicy, now: Instant) -> Service {
        let mut s = Service::new(policy);
        s.begin_spawn(now);
        s.spawned(100, now);
        s
    }

    #[test]
    fn exit_outcomes_follow_the_policy() {
        let t = Instant::now();
        let mut p = ServicePolicy::new("a");
        p.restart = RestartPolicy::Never;
        assert_eq!(
            started(p.clone(), t).on_exit(ExitStatus::Code(0), t),
            AfterExit::Stopped
        );
        assert_eq!(
            started(p.clone(), t).on_exit(ExitStatus::Code(3), t),
            AfterExit::Failed
        );
        assert_eq!(
            started(p.clone(), t).on_exit(ExitStatus::Signal(9), t),
            AfterExit::Failed
        );
        p.restart = RestartPolicy::OnFailure;
        assert_eq!(
            started(p.clone(), t).on_exit(ExitStatus::Code(0), t),
            AfterExit::Stopped
        );
        assert!(matches!(
            started(p.clone(), t).on_exit(ExitStatus::Code(1), t),
            AfterExit::Restart { .. }
        ));
        p.success_codes = vec![0, 3];
        assert_eq!(
            started(p.clone(), t).on_exit(ExitStatus::Code(3), t),
            AfterExit::Stopped
        );
        p.restart = RestartPolicy::Always;
        assert!(matches!(
            started(p, t).on_exit(ExitStatus::Code(0), t),
            AfterExit::Restart { .. }
        ));
    }

    #[test]
    fn oneshot_success_is_done_and_ready() {
        let t = Instant::now();
        let mut p = ServicePolicy::new("m");
        p.oneshot = true;
        p.restart = RestartPolicy::Never;
        let mut s = started(p, t);
        assert_eq!(s.on_exit(ExitStatus::Code(0), t), AfterExit::Done);
        assert!(s.ever_ready && s.is_terminal());
    }

    #[test]
    fn crash_loop_fails_after_max_restarts_in_window() {
        let t = Instant::now();
        let mut p = ServicePolicy::new("a");
        p.max_restarts = 3;
        p.restart_window = Duration::from_secs(60);
        let mut s = started(p, t);
        let mut delays = Vec::new();
        for i in 0..3 {
            let now = t + ms(10 * i);
            match s.on_exit(ExitStatus::Code(1), now) {
                AfterExit::Restart { delay, .. } => delays.push(delay),
                other => panic!("restart {i}: {other:?}"),
            }
            s.begin_spawn(now);
            s.spawned(100 + i as i32, now);
        }
        assert_eq!(delays, vec![ms(100), ms(200), ms(400)]);
        assert_eq!(
            s.on_exit(ExitStatus::Code(1), t + ms(40)),
            AfterExit::Failed
        );
        assert_eq!(s.restarts, 3);
    }

    #[test]
    fn restarts_outside_the_window_do_not_count() {
        let t = Instant::now();
        let mut p = ServicePolicy::new("a");
        p.max_restarts = 1;
        p.restart_window = Duration::from_secs(1);
        let mut s = started(p, t);
        assert!(matches!(
            s.on_exit(ExitStatus::Code(1), t),
            AfterExit::Restart { .. }
        ));
        s.begin_spawn(t);
        s.spawned(2, t);
        let later = t + Duration::from_secs(2);
        assert!(matches!(
            s.on_exit(ExitStatus::Code(1), later),
            AfterExit::Restart { .. }
        ));
    }

    #[test]
    fn backoff_resets_after_ten_seconds_up() {
        let t = Instant::now();
        let mut s = started(ServicePolicy::new("a"), t);
        assert_eq!(
            s.on_exit(ExitStatus::Code(1), t),
            AfterExit::Restart {
                delay: ms(100),
                attempt: 1
            }
        );
        s.begin_spawn(t);
        s.spawned(2, t);
        assert_eq!(
            s.on_exit(ExitStatus::Code(1), t + ms(50)),
            AfterExit::Restart {
                delay: ms(200),
                attempt: 2
            }
        );
        let t2 = t + ms(50);
        s.begin_spawn(t2);
        s.spawned(3, t2);
        assert_eq!(
            s.on_exit(ExitStatus::Code(1), t2 + Duration::from_secs(11)),
            AfterExit::Restart {
                delay: ms(100),
                attempt: 1
            }
        );
    }

    #[test]
    fn zero_max_restarts_fails_on_first_exit() {
        let t = Instant::now();
        let mut p = ServicePolicy::new("a");
        p.max_restarts = 0;
        assert_eq!(
            started(p, t).on_exit(ExitStatus::Code(1), t),
            AfterExit::Failed
        );
    }

    #[test]
    fn probe_gates_readiness_and_reschedules() {
        let t = Instant::now();
        let mut p = ServicePolicy::new("db");
        p.probe = Some(crate::core::types::ProbePolicy {
            kind: ProbeKind::Network,
            interval: ms(200),
            timeout: ms(100),
        });
        let mut s = Service::new(p);
        s.begin_spawn(t);
        assert!(!s.spawned(7, t));
        assert_eq!(s.phase(), Phase::Starting);
        assert_eq!(s.probe_due(t), Some(ProbeKind::Network));
        assert_eq!(s.probe_due(t), None, "one probe in flight at a time");
        assert_eq!(s.deadline(), Some(t + ms(600)));
        s.finish_probe(t + ms(5));
        assert_eq!(s.deadline(), Some(t + ms(10)), "the first retry is quick");
        assert_eq!(s.probe_due(t + ms(9)), None);
        assert_eq!(s.probe_due(t + ms(10)), Some(ProbeKind::Network));
        s.finish_probe(t + ms(12));
        assert_eq!(s.deadline(), Some(t + ms(30)), "then twice as late");
        assert!(s.mark_ready(t));
        assert_eq!(s.phase(), Phase::Running);
        assert!(s.ever_ready);
    }

    #[test]
    fn readiness_retries_double_from_10ms_up_to_the_interval() {
        let gaps: Vec<u64> = (1..=8)
            .map(|n| retry_gap(n, ms(200)).as_millis() as u64)
            .collect();
        assert_eq!(gaps, [10, 20, 40, 80, 160, 200, 200, 200]);
        assert_eq!(retry_gap(u64::MAX, ms(1000)), ms(1000), "no overflow");
        assert_eq!(retry_gap(1, ms(5)), ms(5), "never beyond the interval");
    }
}
