//! The supervisor: takes events (spawns, exits, signals, probe results,
//! ticks) with the time they are handled at, and answers with actions.
//! It is the only owner of every state; the shell just carries actions out.
//! Invariants: a pid is recorded before its exit can be handled (the shell
//! reports `Spawned` synchronously); states change only on the reaper's
//! exit statuses, never on guesses.

use std::time::{Duration, Instant};

use super::service::{AfterExit, Service, State};
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
            Event::Control(req) => acts.push(Action::Reply(crate::core::types::Reply {
                id: req.id,
                ok: false,
                refused: Some("not implemented yet".into()),
                services: Vec::new(),
            })),
        }
        self.step(now, &mut acts);
        acts
    }

    /// During a shutdown, the name of the service whose process `pid` is.
    pub fn stopping_service(&self, pid: i32) -> Option<&str> {
        self.shutdown.as_ref()?;
        self.services
            .iter()
            .find(|s| s.pid() == Some(pid))
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
        d
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            services: self
                .services
                .iter()
                .map(|s| ServiceView {
                    name: s.name().to_string(),
                    phase: s.phase(),
                    pid: s.pid(),
                    restarts: s.restarts,
                    last_exit: s.last_exit,
                    since: s.since(),
                    critical: s.policy.critical,
                })
                .collect(),
            main_pid: match self.main {
                MainState::Running { pid } => Some(pid),
                _ => None,
            },
            shutting_down: self.shutdown.is_some(),
            reaped_total: self.reaped_total,
            orphans_reaped: self.orphans_reaped,
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
                let ready = s.spawned(pid, now);
                let text = format!("{}: started (pid {pid})", s.name());
                self.note(Level::Info, text);
                if ready {
                    self.note_ready(i);
                }
            }
            Who::Probe(i) => {
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

    fn note_ready(&mut self, i: usize) {
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
            Who::Probe(i) => self.on_probe_result(i, self.generation_of(i), None, false, now, acts),
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
        let outcome = s.on_exit(status, now);
        let critical = s.policy.critical;
        match outcome {
            AfterExit::Done => self.note(Level::Info, format!("{name}: done ({status})")),
            AfterExit::Stopped => {
                self.note(Level::Info, format!("{name}: exited ({status}), stopped"))
            }
            AfterExit::Restart { delay, attempt } => self.note(
                Level::Warn,
                format!("{name}: exited ({status}), restart {attempt} in {delay:?}"),
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
        let probe_pid = s.finish_probe(now);
        if let Some(pid) = probe_pid.filter(|_| !ok) {
            self.kill_untracked(pid, acts);
        }
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        if !ok {
            let text = format!("{}: readiness probe failed", s.name());
            self.note(Level::Debug, text);
        } else if self.shutdown.is_none() && s.mark_ready() {
            self.note_ready(i);
        }
    }

    /// Timers, scheduling and shutdown progress, after every event.
    fn step(&mut self, now: Instant, acts: &mut Vec<Action>) {
        self.drain_timers(now, acts);
        if self.shutdown.is_none() {
            self.run_timers(now, acts);
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
                State::Starting { .. } => self.probe_timers(i, now, acts),
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
        match s.probe_due(now) {
            Some(ProbeKind::Exec) => acts.push(Action::Spawn(Who::Probe(i))),
            Some(ProbeKind::Network) => acts.push(Action::Probe {
                service: i,
                generation: s.generation,
                attempt: s.probe_mut().map_or(0, |p| p.attempts),
            }),
            None => {}
        }
    }

    /// A dependency that ended without ever being ready blocks its
    /// dependents for good.
    fn blocked(&self, i: usize) -> bool {
        let Some(s) = self.services.get(i) else {
            return false;
        };
        matches!(s.state, State::Waiting)
            && s.policy.depends_on.iter().any(|&d| {
                self.services
                    .get(d)
                    .is_some_and(|dep| (dep.is_terminal() && !dep.ever_ready) || self.blocked(d))
            })
    }

    /// Will never run again: ended for good, or waiting on a dependency
    /// that ended without ever being ready.
    fn over(&self, i: usize) -> bool {
        self.services.get(i).is_some_and(|s| s.is_terminal()) || self.blocked(i)
    }

    fn deps_ready(&self, i: usize) -> bool {
        self.services[i]
            .policy
            .depends_on
            .iter()
            .all(|&d| self.services.get(d).is_some_and(|dep| dep.ever_ready))
    }

    fn start_what_can_start(&mut self, now: Instant, acts: &mut Vec<Action>) {
        for i in 0..self.services.len() {
            if matches!(self.services[i].state, State::Waiting) && self.deps_ready(i) {
                self.services[i].begin_spawn(now);
                acts.push(Action::Spawn(Who::Service(i)));
            }
        }
        let settled = (0..self.services.len()).all(|i| self.services[i].ever_ready || self.over(i));
        if self.run.has_main && self.main == MainState::NotStarted && settled {
            self.main = MainState::Starting;
            acts.push(Action::Spawn(Who::Main));
        }
    }

    /// Without a main command, rinit ends when no service can run any more.
    fn check_all_ended(&mut self, now: Instant, acts: &mut Vec<Action>) {
        if self.run.has_main || self.services.is_empty() {
            return;
        }
        let ended = (0..self.services.len()).all(|i| self.over(i));
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
