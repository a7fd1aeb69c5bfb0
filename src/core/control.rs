//! Operator requests (`rinit ctl`, SPEC section 10) as events: `start`,
//! `stop`, `restart` and `signal` against any state, answered by a `Reply`
//! once what was asked has happened (ready, reaped), at the request's
//! timeout, or when a shutdown interrupts it. The request only changes
//! what is wanted (`wanted_up`, `restart_pending`); the ordinary machinery
//! (dependency gating, the per-service stop, the group drain) does the rest.
//!
//! Where SPEC section 10 is silent, the rules are:
//! - `start`: `running` is "already up" at once; `waiting`, `starting`,
//!   `backoff` and a crash being drained are already coming up: the reply
//!   waits for ready. `down`, `stopped`, `failed` and (named) `done` are
//!   brought up with their dependencies that are down, stopped or failed
//!   (a `done` dependency is ready as it is); only `failed` gets a fresh
//!   crash-loop window and backoff. A `start` during a requested stop
//!   brings the service back once its processes are gone (and the stop
//!   is answered "started again before it was down").
//! - `stop`: without a process (`waiting`, `backoff`, `failed`,
//!   `stopped`, `done`, `down`) it is `down` at once; a spawn not yet
//!   reported is stopped as soon as its pid is; a crash being drained
//!   ends `down` instead of restarting. Several are stopped dependents
//!   first, each once those depending on it that are being stopped too
//!   are gone (whichever request asked for them).
//! - `restart`: what has a process is stopped, then started as soon as it
//!   is gone (no backoff, not in `restarts` nor the crash-loop window);
//!   a crash being drained is absorbed. Without a process it is a `start`
//!   (a `backoff` one skips the rest of its delay). `restarts_operator`
//!   counts every `restart` asked for the service.
//! - `signal`: only a group whose leader has not been reaped; any other
//!   state is "not running". The service's `forward` does not apply.
//! - `wait: false`: answered "accepted" at once, and the work goes on
//!   exactly as when waited for.

use std::time::Instant;

use super::service::State;
use super::signal;
use super::supervisor::{Level, Supervisor};
use super::types::{after, Action, Reply, Request, RequestId, ServiceOutcome, Verb};

pub(super) const SHUTTING_DOWN: &str = "rinit is shutting down";
const INTERRUPTED: &str = "interrupted: rinit is shutting down";

/// A request still being carried out.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    id: RequestId,
    deadline: Instant,
    /// In the order they are handled (stop: dependents first).
    items: Vec<Item>,
    /// A reload: answered with a line per service (`label: outcome`),
    /// since a removed service has no name left to look up.
    reload: bool,
}

#[derive(Clone, Debug)]
pub(super) struct Item {
    pub(super) service: usize,
    pub(super) awaits: Awaits,
    /// For a reload: "web: restarted (command changed)".
    pub(super) label: Option<String>,
    pub(super) outcome: Option<ServiceOutcome>,
}

/// What an item's outcome waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Awaits {
    /// Ready (or an end that will not become ready): start, restart.
    Ready,
    /// Down, every process reaped: stop.
    Down,
    /// Removed by a reload: stopped and forgotten.
    Forgotten,
}

impl Pending {
    /// When it must be answered at the latest.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(super) fn new(id: RequestId, deadline: Instant, items: Vec<Item>, reload: bool) -> Self {
        Pending {
            id,
            deadline,
            items,
            reload,
        }
    }

    pub(super) fn is_reload(&self) -> bool {
        self.reload
    }
}

pub(super) fn outcome(service: usize, ok: bool, detail: impl Into<String>) -> ServiceOutcome {
    ServiceOutcome {
        service,
        ok,
        detail: detail.into(),
    }
}

impl Supervisor {
    pub(super) fn on_control(&mut self, req: Request, now: Instant, acts: &mut Vec<Action>) {
        if self.shutdown.is_some() {
            return acts.push(refusal(req.id, SHUTTING_DOWN));
        }
        let order = self.request_order(&req.services, req.verb);
        let awaits = match req.verb {
            Verb::Stop => Awaits::Down,
            _ => Awaits::Ready,
        };
        let mut items = Vec::with_capacity(order.len());
        for &i in &order {
            let early = match req.verb {
                Verb::Start => self.want_up(i),
                Verb::Stop => self.want_down(i),
                Verb::Restart => self.want_restart(i),
                Verb::Signal(sig) => Some(self.signal_service(i, sig, acts)),
            };
            items.push(Item {
                service: i,
                awaits,
                label: None,
                outcome: early,
            });
        }
        // Indices the shell should never send, or of a service a reload
        // removed since the name was looked up: answered, never trusted.
        for &i in &req.services {
            if !self.is_known(i) {
                items.push(Item {
                    service: i,
                    awaits,
                    label: None,
                    outcome: Some(outcome(i, false, "no such service")),
                });
            }
        }
        self.note_request(&req, &order);
        if !req.wait {
            // Nothing to keep: the order of stops and starts comes from
            // what is wanted, not from the request.
            return acts.push(reply(req.id, accepted(&items)));
        }
        // A signal's outcomes are all known: answered in this same step.
        self.pending
            .push(Pending::new(req.id, after(now, req.timeout), items, false));
    }

    /// A service the operator may name: it exists and no reload removed it.
    pub(super) fn is_known(&self, i: usize) -> bool {
        self.services.get(i).is_some_and(|s| !s.retired)
    }

    /// Valid, deduplicated, in dependency order: dependencies first, or
    /// dependents first for a stop or restart (whose stop half goes first).
    fn request_order(&self, asked: &[usize], verb: Verb) -> Vec<usize> {
        let rank = |i: usize| {
            self.run
                .waves
                .iter()
                .position(|w| w.contains(&i))
                .unwrap_or(usize::MAX)
        };
        let mut order: Vec<usize> = Vec::with_capacity(asked.len());
        for &i in asked {
            if self.is_known(i) && !order.contains(&i) {
                order.push(i);
            }
        }
        let mut order = super::types::sorted_by_key(order, |&i| rank(i));
        if matches!(verb, Verb::Stop | Verb::Restart) {
            order.reverse();
        }
        order
    }

    fn note_request(&mut self, req: &Request, order: &[usize]) {
        let verb = match req.verb {
            Verb::Start => "start".to_string(),
            Verb::Stop => "stop".to_string(),
            Verb::Restart => "restart".to_string(),
            Verb::Signal(sig) => format!("signal {}", signal::name(sig)),
        };
        let names: Vec<&str> = order
            .iter()
            .filter_map(|&i| self.services.get(i).map(|s| s.name()))
            .collect();
        self.note(
            Level::Info,
            format!("control: {verb} {} (request {})", names.join(" "), req.id),
        );
    }

    /// `start`: brings service `i` up with its dependencies that are not
    /// up. Returns the outcome when there is nothing to wait for.
    fn want_up(&mut self, i: usize) -> Option<ServiceOutcome> {
        let running = self
            .services
            .get(i)
            .is_some_and(|s| s.wanted_up && !s.restart_pending && s.is_ready());
        if running && !self.is_oneshot(i) {
            return Some(outcome(i, true, "already up"));
        }
        let mut seen = Vec::new();
        self.bring_up(i, true, &mut seen);
        None
    }

    fn is_oneshot(&self, i: usize) -> bool {
        self.services.get(i).is_some_and(|s| s.policy.oneshot)
    }

    /// Revives `i` if it is not up (`named`: a `done` oneshot named in the
    /// request runs again; as a dependency it is ready as it is), then its
    /// dependencies, so that they are all gated on readiness as at boot.
    fn bring_up(&mut self, i: usize, named: bool, seen: &mut Vec<usize>) {
        if seen.contains(&i) {
            return;
        }
        seen.push(i);
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        match s.state {
            State::Failed => s.revive(true),
            State::Down | State::Stopped => s.revive(false),
            State::Done if named => s.revive(false),
            // A requested stop under way: it comes back once it is gone.
            State::Starting { .. }
            | State::Running { .. }
            | State::Stopping { .. }
            | State::Draining { .. }
                if !s.wanted_up =>
            {
                s.wanted_up = true;
                s.restart_pending = true;
            }
            _ => {}
        }
        let deps = s.policy.depends_on.clone();
        for d in deps {
            self.bring_up(d, false, seen);
        }
    }

    /// `stop`: the service is no longer wanted; what has no process is
    /// down at once, a process is stopped by `advance_requests` once the
    /// dependents named in the same request are gone.
    fn want_down(&mut self, i: usize) -> Option<ServiceOutcome> {
        let s = self.services.get_mut(i)?;
        s.wanted_up = false;
        s.restart_pending = false;
        match s.state {
            State::Waiting
            | State::Backoff { .. }
            | State::Failed
            | State::Stopped
            | State::Done
            | State::Down => {
                s.state = State::Down;
                Some(self.down_outcome(i))
            }
            _ => None,
        }
    }

    /// `restart`: stop then start, outside `restarts` and the backoff.
    fn want_restart(&mut self, i: usize) -> Option<ServiceOutcome> {
        let s = self.services.get_mut(i)?;
        s.restarts_operator = s.restarts_operator.saturating_add(1);
        match s.state {
            State::Starting { .. }
            | State::Running { .. }
            | State::Stopping { .. }
            | State::Draining { .. } => {
                s.wanted_up = true;
                s.restart_pending = true;
            }
            // Nothing to stop: skip the backoff, start now.
            State::Backoff { .. } => s.revive(false),
            _ => {}
        }
        let mut seen = Vec::new();
        self.bring_up(i, true, &mut seen);
        None
    }

    fn signal_service(&mut self, i: usize, sig: i32, acts: &mut Vec<Action>) -> ServiceOutcome {
        // Only a group whose leader's exit has not been seen: once reaped
        // its pid may belong to someone else.
        match self.services.get(i).and_then(|s| s.pid()) {
            Some(pgid) => {
                acts.push(Action::SignalGroup { pgid, signal: sig });
                outcome(i, true, format!("sent {}", signal::name(sig)))
            }
            None => outcome(i, false, "not running"),
        }
    }

    /// "down", naming the services depending on it that keep running.
    fn down_outcome(&self, i: usize) -> ServiceOutcome {
        let names: Vec<&str> = self
            .services
            .iter()
            .enumerate()
            .filter(|(j, s)| *j != i && self.depends_on(*j, i) && s.wanted_up && s.pid().is_some())
            .map(|(_, s)| s.name())
            .collect();
        if names.is_empty() {
            outcome(i, true, "down")
        } else {
            let text = format!(
                "down; still running and depending on it: {}",
                names.join(", ")
            );
            outcome(i, true, text)
        }
    }

    /// Whether `j` depends on `i`, directly or not (bounded: the graph has
    /// no cycles, and a visited list keeps a bad one from looping).
    pub(super) fn depends_on(&self, j: usize, i: usize) -> bool {
        let mut stack = vec![j];
        let mut seen = Vec::new();
        while let Some(k) = stack.pop() {
            if seen.contains(&k) {
                continue;
            }
            seen.push(k);
            let Some(s) = self.services.get(k) else {
                continue;
            };
            for &d in &s.policy.depends_on {
                if d == i {
                    return true;
                }
                stack.push(d);
            }
        }
        false
    }

    /// After every event outside a shutdown: starts the stops that may
    /// start, settles what has happened, answers what is complete or late.
    pub(super) fn advance_requests(&mut self, now: Instant, acts: &mut Vec<Action>) {
        self.begin_requested_stops(now, acts);
        let mut pending = std::mem::take(&mut self.pending);
        for p in &mut pending {
            self.settle_items(p, now);
        }
        for p in pending {
            if p.items.iter().all(|it| it.outcome.is_some()) {
                acts.push(answer(p, |it| it.outcome));
            } else {
                self.pending.push(p);
            }
        }
    }

    /// Services wanted down (or restarting) are stopped dependents first,
    /// as the shutdown's waves: each once nothing depending on it that is
    /// being stopped too still runs. Not tied to a request, so a stop whose
    /// request timed out (or was not waited for) still happens.
    pub(super) fn begin_requested_stops(&mut self, now: Instant, acts: &mut Vec<Action>) {
        for i in 0..self.services.len() {
            let due = self.services.get(i).is_some_and(|s| {
                s.stop_requested()
                    && matches!(
                        s.state,
                        State::Starting { pid: Some(_), .. } | State::Running { .. }
                    )
            });
            if due && !self.held_by_dependents(i) {
                self.stop_service(i, now, None, acts);
            }
        }
    }

    fn held_by_dependents(&self, i: usize) -> bool {
        self.services
            .iter()
            .enumerate()
            .any(|(j, s)| j != i && s.stop_requested() && s.has_process() && self.depends_on(j, i))
    }

    fn settle_items(&mut self, p: &mut Pending, now: Instant) {
        let late = now >= p.deadline;
        for k in 0..p.items.len() {
            let Some(it) = p.items.get(k) else {
                continue;
            };
            if it.outcome.is_some() {
                continue;
            }
            let i = it.service;
            let awaits = it.awaits;
            let mut got = match awaits {
                Awaits::Down => self.stop_result(i),
                Awaits::Ready => self.ready_result(i),
                Awaits::Forgotten => self.forgotten_result(i),
            };
            if got.is_none() && late {
                let what = match awaits {
                    Awaits::Down | Awaits::Forgotten => "timed out waiting for it to stop",
                    Awaits::Ready => "timed out waiting for ready",
                };
                got = Some(outcome(i, false, what));
            }
            if let Some(it) = p.items.get_mut(k) {
                it.outcome = got;
            }
        }
    }

    /// For `start`/`restart`: ready, or an end that will not become ready.
    fn ready_result(&self, i: usize) -> Option<ServiceOutcome> {
        let s = self.services.get(i)?;
        if !s.wanted_up {
            return Some(outcome(i, false, "stopped on request before it was ready"));
        }
        if s.restart_pending {
            return None;
        }
        let exit = s.last_exit.map_or_else(String::new, |e| format!(" ({e})"));
        match s.state {
            State::Running { .. } => Some(outcome(i, true, "ready")),
            State::Done => Some(outcome(i, true, "done")),
            State::Failed => Some(outcome(i, false, format!("failed{exit}"))),
            State::Stopped => Some(outcome(
                i,
                false,
                format!("stopped{exit} before it was ready"),
            )),
            State::Waiting if self.blocked_all().get(i) == Some(&true) => {
                Some(outcome(i, false, "a dependency ended without being ready"))
            }
            _ => None,
        }
    }

    /// For `stop`: down once every process of it is reaped.
    fn stop_result(&self, i: usize) -> Option<ServiceOutcome> {
        let s = self.services.get(i)?;
        if s.wanted_up {
            return Some(outcome(i, false, "started again before it was down"));
        }
        matches!(s.state, State::Down).then(|| self.down_outcome(i))
    }

    /// For a removed service: gone once every process of it is reaped.
    fn forgotten_result(&self, i: usize) -> Option<ServiceOutcome> {
        let s = self.services.get(i)?;
        s.forgotten().then(|| outcome(i, true, "stopped"))
    }

    /// A shutdown began: every request still waiting is answered now.
    pub(super) fn interrupt_requests(&mut self, acts: &mut Vec<Action>) {
        for p in std::mem::take(&mut self.pending) {
            acts.push(answer(p, |it| {
                Some(
                    it.outcome
                        .unwrap_or_else(|| outcome(it.service, false, INTERRUPTED)),
                )
            }));
        }
    }
}

/// The reply to a finished request, each item's outcome from `take`: per
/// service, or for a reload one line each (`label: detail`).
fn answer(p: Pending, take: impl Fn(Item) -> Option<ServiceOutcome>) -> Action {
    let (id, reload) = (p.id, p.reload);
    let mut lines = Vec::new();
    let mut services = Vec::new();
    for it in p.items {
        let label = it.label.clone();
        let Some(o) = take(it) else {
            continue;
        };
        match label.filter(|_| reload) {
            Some(label) if o.detail.is_empty() => lines.push(label),
            Some(label) => lines.push(format!("{label}: {}", o.detail)),
            None => {}
        }
        services.push(o);
    }
    let ok = services.iter().all(|o| o.ok);
    if reload {
        services.clear();
        lines.push(if ok {
            "reload applied".to_string()
        } else {
            "reload applied, but not everything it started became ready".to_string()
        });
    }
    Action::Reply(Reply {
        id,
        ok,
        refused: None,
        services,
        lines,
    })
}

/// The answer to `wait: false`: "accepted", or what already failed.
fn accepted(items: &[Item]) -> Vec<ServiceOutcome> {
    items
        .iter()
        .map(|it| match &it.outcome {
            Some(o) if !o.ok => o.clone(),
            _ => outcome(it.service, true, "accepted"),
        })
        .collect()
}

/// The answer to a request that changed nothing, and why.
pub(super) fn refusal(id: RequestId, why: &str) -> Action {
    Action::Reply(Reply {
        id,
        ok: false,
        refused: Some(why.into()),
        services: Vec::new(),
        lines: Vec::new(),
    })
}

/// `ok` only when every outcome is.
fn reply(id: RequestId, services: Vec<ServiceOutcome>) -> Action {
    Action::Reply(Reply {
        id,
        ok: services.iter().all(|o| o.ok),
        refused: None,
        services,
        lines: Vec::new(),
    })
}
