//! The supervisor: takes events (spawns, exits, signals, probe results,
//! ticks) with the time they are handled at, and answers with actions.
//! It is the only owner of every state; the shell just carries actions out.
//! Invariants: a pid is recorded before its exit can be handled (the shell
//! reports `Spawned` synchronously); states change only on the reaper's
//! exit statuses, never on guesses.

use std::time::{Duration, Instant};

use super::control::Pending;
use super::service::{AfterExit, Liveness, Service, State};
use super::shutdown::{Cause, Shutdown};
use super::signal;
use super::snapshot::{ServiceView, Snapshot};
use super::types::{
    deadline_min, Action, Event, ExitStatus, ProbeKind, RunPolicy, ServicePolicy, Who,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

/// What the supervisor wants said in rinit's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum MainState {
    NotStarted,
    Starting,
    Running { pid: i32 },
    Exited,
}

pub struct Supervisor {
    pub(super) services: Vec<Service>,
    pub(super) run: RunPolicy,
    pub(super) main: MainState,
    pub(super) main_status: Option<ExitStatus>,
    pub(super) shutdown: Option<Shutdown>,
    /// False once the reaper has reported that no child is left, until the
    /// next spawn. Starts true: rinit may have inherited children.
    pub(super) children_possible: bool,
    pub(super) killed_any: bool,
    pub(super) critical_status: Option<i32>,
    pub(super) first_failed: Option<i32>,
    pub(super) exited: bool,
    reaped_total: u64,
    orphans_reaped: u64,
    /// Pids that rinit forked and no longer tracks, whose exit is still to
    /// come (exec failures, killed probes): not orphans when reaped.
    pub(super) expected: Vec<i32>,
    pub(super) notes: Vec<Note>,
    /// Operator requests not yet answered or whose stops are not done.
    pub(super) pending: Vec<Pending>,
    /// Notify datagrams ignored: from outside the service, or unreadable.
    pub(super) notify_ignored: u64,
}

impl Supervisor {
    pub fn new(policies: Vec<ServicePolicy>, run: RunPolicy) -> Self {
        Supervisor {
            services: policies.into_iter().map(Service::new).collect(),
            run,
            main: MainState::NotStarted,
            main_status: None,
            shutdown: None,
            children_possible: true,
            killed_any: false,
            critical_status: None,
            first_failed: None,
            exited: false,
            reaped_total: 0,
            orphans_reaped: 0,
            expected: Vec::new(),
            notes: Vec::new(),
            pending: Vec::new(),
            notify_ignored: 0,
        }
    }

    /// Handles one event; returns what to do, in order.
    pub fn on_event(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut acts = Vec::new();
        if self.exited {
            return acts;
        }
        match event {
            Event::Spawned { who, pid } => self.on_spawned(who, pid, now, &mut acts),
            Event::SpawnFailed { who, pid, code } => {
                self.on_spawn_failed(who, pid, code, now, &mut acts)
            }
            Event::Exited { pid, status } => self.on_exited(pid, status, now, &mut acts),
            Event::NoChildren => self.children_possible = false,
            Event::GroupGone { pgid } => self.on_group_gone(pgid, now, &mut acts),
            Event::Signal(sig) => self.on_signal(sig, now, &mut acts),
            Event::ProbeResult {
                service,
                generation,
                attempt,
                ok,
            } => self.on_probe_result(service, generation, Some(attempt), ok, now, &mut acts),
            Event::Tick => {}
            Event::Control(req) => self.on_control(req, now, &mut acts),
            Event::Notify {
                service,
                session,
                notice,
            } => self.on_notify(service, session, notice, now, &mut acts),
            Event::Reload(reload) => self.on_reload(*reload, now, &mut acts),
        }
        self.step(now, &mut acts);
        acts
    }

    /// The name of the service whose process `pid` is, if it is being
    /// stopped: in a shutdown, or on request (`ctl stop`/`restart`), so
    /// that its last lines go out before what the stop leads to.
    pub fn stopping_service(&self, pid: i32) -> Option<&str> {
        let shutting_down = self.shutdown.is_some();
        self.services
            .iter()
            .find(|s| s.pid() == Some(pid))
            .filter(|s| shutting_down || s.stop_requested())
            .map(|s| s.name())
    }

    /// Log lines produced since the last call.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    /// When the supervisor must be called again with `Event::Tick`, if no
    /// other event comes first. None: nothing is timed (sleep forever).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.exited {
            return None;
        }
        let mut d = self.shutdown.as_ref().and_then(|s| s.deadline(self));
        for s in &self.services {
            let stopping = matches!(s.state, State::Stopping { .. } | State::Draining { .. });
            if self.shutdown.is_none() || stopping {
                d = deadline_min(d, s.deadline());
            }
        }
        for p in &self.pending {
            d = deadline_min(d, Some(p.deadline()));
        }
        d
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            services: self
                .services
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.forgotten())
                .map(|(id, s)| ServiceView {
                    id,
                    removed: s.retired,
                    name: s.name().to_string(),
                    phase: s.phase(),
                    pid: s.pid(),
                    restarts: s.restarts,
                    last_exit: s.last_exit,
                    since: s.since(),
                    critical: s.policy.critical,
                    wanted_up: s.wanted_up,
                    restarts_operator: s.restarts_operator,
                    ready: s.is_ready(),
                    ever_ready: s.ever_ready,
                    liveness: s.liveness_view(),
                    liveness_failures_total: s.liveness_failures_total,
                    notify_status: s.notify_status.clone(),
                })
                .collect(),
            main_pid: match self.main {
                MainState::Running { pid } => Some(pid),
                _ => None,
            },
            shutting_down: self.shutdown.is_some(),
            reaped_total: self.reaped_total,
            orphans_reaped: self.orphans_reaped,
            notify_ignored: self.notify_ignored,
        }
    }

    pub(super) fn note(&mut self, level: Level, text: String) {
        self.notes.push(Note { level, text });
    }

    fn on_spawned(&mut self, who: Who, pid: i32, now: Instant, acts: &mut Vec<Action>) {
        self.children_possible = true;
        if self.shutdown.as_ref().is_some_and(|sd| sd.forced) {
            // Spawned after everything got SIGKILL: it gets it too.
            acts.push(Action::SignalGroup {
                pgid: pid,
                signal: signal::SIGKILL,
            });
        }
        match who {
            Who::Main => {
                self.main = MainState::Running { pid };
                self.note(Level::Info, format!("main command started (pid {pid})"));
            }
            Who::Service(i) => {
                let Some(s) = self.services.get_mut(i) else {
                    return;
                };
                // Stopped (or restarted) on request before its pid was
                // known: it is never reported ready, and gets its stop in
                // this event's `step` (in a shutdown, from its wave).
                let ready = s.spawned(pid, now);
                let text = format!("{}: started (pid {pid})", s.name());
                self.note(Level::Info, text);
                if ready {
                    self.note_ready(i);
                }
            }
            Who::Probe(i) | Who::Liveness(i) => {
                if let Some(inflight) = self
                    .services
                    .get_mut(i)
                    .and_then(|s| s.probe_mut())
                    .and_then(|p| p.inflight.as_mut())
                {
                    inflight.pid = Some(pid);
                } else {
                    // Its attempt was abandoned (a shutdown began) before
                    // the spawn was reported.
                    self.kill_untracked(pid, acts);
                }
            }
        }
    }

    pub(super) fn note_ready(&mut self, i: usize) {
        if let Some(s) = self.services.get(i) {
            let text = format!("{}: running", s.name());
            self.note(Level::Info, text);
        }
    }

    fn on_spawn_failed(
        &mut self,
        who: Who,
        pid: Option<i32>,
        code: i32,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        if let Some(pid) = pid {
            self.children_possible = true;
            // The failed child is still to be reaped; nothing tracks it.
            self.expected.push(pid);
        }
        let status = ExitStatus::Code(code);
        match who {
            Who::Main => self.on_main_exit(status, now, acts),
            // It never exec'd: nothing else can be in its group.
            Who::Service(i) => {
                self.end_probe(i, now, acts);
                self.settle_exit(i, status, now, acts)
            }
            Who::Probe(i) | Who::Liveness(i) => {
                self.on_probe_result(i, self.generation_of(i), None, false, now, acts)
            }
        }
    }

    fn generation_of(&self, i: usize) -> u64 {
        self.services.get(i).map_or(0, |s| s.generation)
    }

    fn on_exited(&mut self, pid: i32, status: ExitStatus, now: Instant, acts: &mut Vec<Action>) {
        self.reaped_total += 1;
        if self.main == (MainState::Running { pid }) {
            return self.on_main_exit(status, now, acts);
        }
        if let Some(i) = self.services.iter().position(|s| s.pid() == Some(pid)) {
            return self.on_service_exit(i, status, now, acts);
        }
        if let Some(i) = self
            .services
            .iter()
            .position(|s| s.probe_pid() == Some(pid))
        {
            // Reaped: it must not be signalled as a failed probe would be.
            if let Some(f) = self.services[i]
                .probe_mut()
                .and_then(|p| p.inflight.as_mut())
            {
                f.pid = None;
            }
            let ok = status == ExitStatus::Code(0);
            return self.on_probe_result(i, self.generation_of(i), None, ok, now, acts);
        }
        if let Some(k) = self.expected.iter().position(|&p| p == pid) {
            self.expected.swap_remove(k);
            return;
        }
        self.orphans_reaped += 1;
        self.note(Level::Debug, format!("reaped orphan pid {pid} ({status})"));
    }

    fn on_main_exit(&mut self, status: ExitStatus, now: Instant, acts: &mut Vec<Action>) {
        self.main = MainState::Exited;
        self.main_status = Some(status);
        self.note(Level::Info, format!("main command exited ({status})"));
        if self.shutdown.is_none() {
            self.begin_shutdown(Cause::MainExited, now, acts);
        }
    }

    /// What the exit of the service's process means, once nothing of it
    /// is left: stopped in a shutdown, else done, stopped, failed or a
    /// restart.
    pub(super) fn settle_exit(
        &mut self,
        i: usize,
        status: ExitStatus,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        let shutting_down = self.shutdown.is_some();
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        let name = s.name().to_string();
        if shutting_down {
            s.last_exit = Some(status);
            s.state = State::Stopped;
            self.note(Level::Info, format!("{name}: stopped ({status})"));
            return;
        }
        // Stopped on request: not a crash, no restart, no shutdown even
        // for a critical service.
        if !s.wanted_up {
            s.last_exit = Some(status);
            s.state = State::Down;
            if s.retired {
                self.note(Level::Info, format!("{name}: stopped ({status})"));
                return self.forget(i);
            }
            self.note(Level::Info, format!("{name}: down ({status})"));
            return;
        }
        if s.restart_pending {
            s.last_exit = Some(status);
            s.revive(false);
            self.note(
                Level::Info,
                format!("{name}: stopped ({status}), restarting on request"),
            );
            return;
        }
        let unhealthy = s.stopping_unhealthy();
        let outcome = s.on_exit(status, now);
        let critical = s.policy.critical;
        // Stopped as unhealthy: the status is that of the stop, the
        // failure is the check's.
        let status_text = if unhealthy {
            format!("{status}, stopped as unhealthy")
        } else {
            status.to_string()
        };
        match outcome {
            AfterExit::Done => self.note(Level::Info, format!("{name}: done ({status})")),
            AfterExit::Stopped => {
                self.note(Level::Info, format!("{name}: exited ({status}), stopped"))
            }
            AfterExit::Restart { delay, attempt } => self.note(
                Level::Warn,
                format!("{name}: exited ({status_text}), restart {attempt} in {delay:?}"),
            ),
            AfterExit::Failed => self.on_failed(&name, status, critical, now, acts),
        }
    }

    pub(super) fn on_failed(
        &mut self,
        name: &str,
        status: ExitStatus,
        critical: bool,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        let code = status.as_code();
        self.first_failed.get_or_insert(code);
        let what = if critical {
            "critical, shutting down"
        } else {
            "not critical"
        };
        self.note(
            Level::Error,
            format!("{name}: exited ({status}), failed ({what})"),
        );
        if critical && self.shutdown.is_none() {
            self.critical_status = Some(code);
            self.begin_shutdown(Cause::CriticalFailed, now, acts);
        }
    }

    fn on_signal(&mut self, sig: i32, now: Instant, acts: &mut Vec<Action>) {
        if signal::starts_shutdown(sig) {
            if self.shutdown.is_none() {
                self.note(Level::Info, format!("received {}", signal::name(sig)));
                return self.begin_shutdown(Cause::Signal(sig), now, acts);
            }
            self.note(
                Level::Warn,
                format!("second {}: killing everything now", signal::name(sig)),
            );
            return self.force_kill(now, acts);
        }
        self.forward(sig, acts);
    }

    /// Process groups of the main command and every service with a process.
    pub(super) fn live_groups(&self) -> Vec<i32> {
        let main = match self.main {
            MainState::Running { pid } => Some(pid),
            _ => None,
        };
        main.into_iter()
            .chain(self.services.iter().filter_map(|s| s.pid()))
            .collect()
    }

    /// `attempt`: the network attempt a result names; None for an exec
    /// probe (matched by its pid) or a timeout the core decided itself.
    fn on_probe_result(
        &mut self,
        i: usize,
        generation: u64,
        attempt: Option<u64>,
        ok: bool,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        let inflight = s.probe_mut().and_then(|p| p.inflight.as_ref());
        let current = inflight.is_some_and(|f| attempt.is_none_or(|a| a == f.attempt));
        if s.generation != generation || !current {
            return;
        }
        let liveness = s.checks_liveness();
        let probe_pid = s.finish_probe(now);
        if let Some(pid) = probe_pid.filter(|_| !ok) {
            self.kill_untracked(pid, acts);
        }
        if liveness {
            return self.on_liveness_result(i, ok, now, acts);
        }
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        if !ok {
            let text = format!("{}: readiness probe failed", s.name());
            self.note(Level::Debug, text);
        } else if self.shutdown.is_none() && s.mark_ready(now) {
            self.note_ready(i);
        }
    }

    /// SPEC section 12: a passing check resets the count; `failures`
    /// consecutive failures stop the service, and its exit then counts as
    /// a failed one (restart policy, backoff, `max_restarts`, `critical`).
    fn on_liveness_result(&mut self, i: usize, ok: bool, now: Instant, acts: &mut Vec<Action>) {
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        let was_failing = s.liveness_failures > 0;
        let limit = s.policy.liveness.map_or(0, |l| l.failures);
        let name = s.name().to_string();
        match s.liveness_result(ok) {
            Liveness::Passing if was_failing => {
                self.note(Level::Info, format!("{name}: liveness check passes again"))
            }
            Liveness::Passing => {}
            Liveness::Failing(n) => self.note(
                Level::Warn,
                format!("{name}: liveness check failed ({n} of {limit})"),
            ),
            Liveness::Unhealthy(n) => {
                let why = format!("liveness check failed {n} times in a row");
                self.stop_unhealthy(i, &why, now, acts);
            }
        }
    }

    /// Stops service `i` with its own stop rules because it is unhealthy
    /// (`why`); its exit will be handled as a failure.
    pub(super) fn stop_unhealthy(
        &mut self,
        i: usize,
        why: &str,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        if self.shutdown.is_some() {
            return;
        }
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        if s.stop_requested() {
            return;
        }
        s.mark_unhealthy();
        let text = format!("{}: unhealthy ({why}): stopping it", s.name());
        self.note(Level::Warn, text);
        self.stop_service(i, now, None, acts);
    }

    /// Timers, scheduling and shutdown progress, after every event.
    fn step(&mut self, now: Instant, acts: &mut Vec<Action>) {
        self.drain_timers(now, acts);
        // A stop under way (on request, or of an unhealthy service) keeps
        // its SIGKILL deadline in a shutdown too, whatever wave it is in.
        for i in 0..self.services.len() {
            if matches!(self.services[i].state, State::Stopping { .. }) {
                self.stop_kill_due(i, now, acts);
            }
        }
        if self.shutdown.is_none() {
            self.run_timers(now, acts);
            self.advance_requests(now, acts);
            self.start_what_can_start(now, acts);
            self.check_all_ended(now, acts);
        }
        if self.shutdown.is_some() {
            self.advance_shutdown(now, acts);
        }
    }

    fn run_timers(&mut self, now: Instant, acts: &mut Vec<Action>) {
        for i in 0..self.services.len() {
            let s = &mut self.services[i];
            match s.state {
                State::Backoff { until } if now >= until => {
                    s.begin_spawn(now);
                    acts.push(Action::Spawn(Who::Service(i)));
                }
                State::Starting { .. } => {
                    if let Some(limit) = s.start_timed_out(now) {
                        let why = format!("not ready {limit:?} after its start: start_timeout");
                        self.stop_unhealthy(i, &why, now, acts);
                    } else {
                        self.probe_timers(i, now, acts);
                    }
                }
                State::Running { .. } => {
                    self.watchdog_timer(i, now, acts);
                    self.probe_timers(i, now, acts);
                }
                _ => {}
            }
        }
    }

    fn probe_timers(&mut self, i: usize, now: Instant, acts: &mut Vec<Action>) {
        let s = &mut self.services[i];
        let timed_out = s
            .probe_mut()
            .and_then(|p| p.inflight.as_ref())
            .is_some_and(|f| now >= f.deadline);
        if timed_out {
            let generation = s.generation;
            return self.on_probe_result(i, generation, None, false, now, acts);
        }
        let liveness = s.checks_liveness();
        match s.probe_due(now) {
            Some(ProbeKind::Exec) if liveness => acts.push(Action::Spawn(Who::Liveness(i))),
            Some(ProbeKind::Exec) => acts.push(Action::Spawn(Who::Probe(i))),
            Some(ProbeKind::Network) => acts.push(Action::Probe {
                service: i,
                generation: s.generation,
                attempt: s.probe_mut().map_or(0, |p| p.attempts),
                liveness,
            }),
            None => {}
        }
    }

    /// Per service: waiting on a dependency that ended without ever being
    /// ready, directly or through other waiting services; such a service
    /// can never start. One memoised pass (each service settled once, with
    /// an explicit stack): the plain recursion walked every path of the
    /// graph, which is exponential on layered diamonds.
    pub(super) fn blocked_all(&self) -> Vec<bool> {
        let n = self.services.len();
        let mut memo: Vec<Option<bool>> = vec![None; n];
        let mut visiting = vec![false; n];
        for root in 0..n {
            let mut stack = vec![root];
            while let Some(&i) = stack.last() {
                if memo[i].is_some() {
                    stack.pop();
                    continue;
                }
                visiting[i] = true;
                let s = &self.services[i];
                if !matches!(s.state, State::Waiting) {
                    memo[i] = Some(false);
                    continue;
                }
                // A dependency still to settle first (a cycle, which
                // validation rejects, counts as not blocked).
                let deps = &s.policy.depends_on;
                let pending = deps
                    .iter()
                    .copied()
                    .find(|&d| d < n && memo[d].is_none() && !visiting[d]);
                if let Some(d) = pending {
                    stack.push(d);
                    continue;
                }
                let blocked = deps.iter().any(|&d| {
                    self.services.get(d).is_some_and(|dep| {
                        (dep.is_terminal() && !dep.ever_ready) || memo[d] == Some(true)
                    })
                });
                memo[i] = Some(blocked);
            }
        }
        memo.into_iter().map(|b| b == Some(true)).collect()
    }

    /// Per service: will never run again: ended for good, or waiting on a
    /// dependency that ended without ever being ready.
    fn over_all(&self) -> Vec<bool> {
        let blocked = self.blocked_all();
        self.services
            .iter()
            .zip(blocked)
            .map(|(s, b)| s.is_terminal() || b)
            .collect()
    }

    /// Every dependency has been ready and is still wanted as it is (not
    /// being stopped or restarted on request).
    fn deps_ready(&self, i: usize) -> bool {
        let Some(s) = self.services.get(i) else {
            return false;
        };
        s.policy.depends_on.iter().all(|&d| {
            self.services
                .get(d)
                .is_some_and(|dep| dep.ever_ready && !dep.stop_requested())
        })
    }

    fn start_what_can_start(&mut self, now: Instant, acts: &mut Vec<Action>) {
        for i in 0..self.services.len() {
            if matches!(self.services[i].state, State::Waiting) && self.deps_ready(i) {
                self.services[i].begin_spawn(now);
                acts.push(Action::Spawn(Who::Service(i)));
            }
        }
        // A service stopped on request is not waited for.
        let over = self.over_all();
        let settled = (0..self.services.len())
            .all(|i| self.services[i].ever_ready || !self.services[i].wanted_up || over[i]);
        if self.run.has_main && self.main == MainState::NotStarted && settled {
            self.main = MainState::Starting;
            acts.push(Action::Spawn(Who::Main));
        }
    }

    /// Without a main command, rinit ends when no service can run any more.
    /// A `down` service (or one being stopped on request) can: `ctl start`
    /// brings it back. So while any service is wanted down rinit does not
    /// exit for lack of services, whatever the others did; it exits, as
    /// without `ctl`, once every service has ended for good on its own
    /// (SPEC section 5).
    fn check_all_ended(&mut self, now: Instant, acts: &mut Vec<Action>) {
        if self.run.has_main || self.services.is_empty() {
            return;
        }
        if self.services.iter().any(|s| !s.wanted_up) {
            return;
        }
        let ended = self.over_all().into_iter().all(|over| over);
        if ended {
            self.note(Level::Info, "no service can run any more".to_string());
            self.begin_shutdown(Cause::AllEnded, now, acts);
        }
    }

    /// The time since a shutdown began, for log lines.
    pub(super) fn shutdown_elapsed(&self, now: Instant) -> Duration {
        self.shutdown
            .as_ref()
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s.started))
    }
}
