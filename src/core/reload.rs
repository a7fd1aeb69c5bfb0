//! Applying a reload (SPEC section 11): the shell has validated the new
//! file and matched its services to slots by name; here each slot gets its
//! change through the machinery every other request uses. What is wanted
//! changes (`wanted_up`, `restart_pending`, `retired`), and the ordinary
//! steps do the rest: requested stops go dependents first and wait for the
//! dependents being stopped too, starts wait for their dependencies to be
//! ready as at boot, a removed service is forgotten once it is reaped.
//!
//! Rules where the contract is silent:
//! - a restarted service that has a process is stopped and started again
//!   (no backoff, not in `restarts` nor `restarts_operator`); one without
//!   (`waiting`, `backoff`, `failed`, `stopped`, `done`) starts afresh with
//!   a new crash-loop window, since its new command is a new attempt;
//! - a `down` service stays down whatever changed; its new policy is kept;
//! - a restarted service's running process is stopped by its old policy
//!   (its own `stop_signal`, `stop_timeout`, dependents); the new one
//!   applies from its next start;
//! - the stop order is recomputed from the graph as it is (at a reload and
//!   when a shutdown begins), with the services still being removed placed
//!   by their old dependencies.

use std::time::Instant;

use super::control::{outcome, Awaits, Item, Pending};
use super::service::State;
use super::supervisor::{Level, Supervisor};
use super::types::{after, Action, ChangeKind, Reload, ServicePolicy, SlotChange};

pub(super) const RELOAD_UNDER_WAY: &str =
    "a reload is being applied; run it again once it has answered";

impl Supervisor {
    /// Whether a reload is being applied (two reloads never interleave).
    pub(super) fn reload_under_way(&self) -> bool {
        self.pending.iter().any(Pending::is_reload)
    }

    /// Why a reload would be refused now, if it would: the shell asks
    /// before it touches anything, and the core applies the same rule.
    pub fn reload_refusal(&self) -> Option<&'static str> {
        if self.shutdown.is_some() {
            Some(super::control::SHUTTING_DOWN)
        } else if self.reload_under_way() {
            Some(RELOAD_UNDER_WAY)
        } else {
            None
        }
    }

    pub(super) fn on_reload(&mut self, reload: Reload, now: Instant, acts: &mut Vec<Action>) {
        if let Some(why) = self.reload_refusal() {
            return acts.push(super::control::refusal(reload.id, why));
        }
        self.note(
            Level::Info,
            format!("control: reload (request {})", reload.id),
        );
        // In the plan's order. Added services come in slot order; a kept
        // one's `depends_on` may name one added later in the list, which
        // is only looked at once the whole event is applied.
        let mut items = Vec::with_capacity(reload.changes.len());
        for change in reload.changes {
            let item = match change.kind {
                ChangeKind::Start => self.add_service(&change),
                _ => Some(self.apply_change(change, now, acts)),
            };
            items.extend(item);
        }
        self.run.drain = reload.drain;
        self.run.timeout = reload.shutdown_timeout;
        self.recompute_waves();
        self.pending.push(Pending::new(
            reload.id,
            after(now, reload.timeout),
            items,
            true,
        ));
    }

    /// Appends the added service at the slot the shell gave it (the next
    /// one: anything else is a shell bug, answered and not applied).
    fn add_service(&mut self, change: &SlotChange) -> Option<Item> {
        let label = format!("{}: started ({})", name_of(change), change.why);
        let policy = change.policy.clone()?;
        if change.slot != self.services.len() {
            let text = format!("reload: {label}: slot {} is not the next", change.slot);
            self.note(Level::Error, text);
            return None;
        }
        self.note(Level::Info, format!("reload: {label}"));
        self.services.push(super::service::Service::new(policy));
        Some(item(change.slot, Awaits::Ready, label, None))
    }

    fn apply_change(&mut self, change: SlotChange, now: Instant, acts: &mut Vec<Action>) -> Item {
        let i = change.slot;
        let Some(s) = self.services.get(i).filter(|s| !s.retired) else {
            let label = format!("service {i}");
            return item(i, Awaits::Ready, label, Some((false, "no such service")));
        };
        let name = s.name().to_string();
        let down = matches!(s.state, State::Down) || !s.wanted_up;
        let (label, awaits, early) = match change.kind {
            ChangeKind::Unchanged => {
                self.set_policy(i, change.policy, now, acts);
                (
                    format!("{name}: unchanged"),
                    Awaits::Ready,
                    Some((true, "")),
                )
            }
            ChangeKind::InPlace => {
                self.set_policy(i, change.policy, now, acts);
                let label = format!("{name}: updated in place ({})", change.why);
                (label, Awaits::Ready, Some((true, "kept running")))
            }
            ChangeKind::Restart if down => {
                self.set_policy(i, change.policy, now, acts);
                let label = format!("{name}: not restarted ({})", change.why);
                let what = "down; the new config applies at its next start";
                (label, Awaits::Ready, Some((true, what)))
            }
            ChangeKind::Restart => {
                self.reload_restart(i, change.policy, now, acts);
                let label = format!("{name}: restarted ({})", change.why);
                (label, Awaits::Ready, None)
            }
            ChangeKind::Stop | ChangeKind::Start => {
                self.retire(i);
                (format!("{name}: removed"), Awaits::Forgotten, None)
            }
        };
        let text = match early {
            Some((_, "")) | None => label.clone(),
            Some((_, what)) => format!("{label}: {what}"),
        };
        let level = if change.kind == ChangeKind::Unchanged {
            Level::Debug
        } else {
            Level::Info
        };
        self.note(level, format!("reload: {text}"));
        item(i, awaits, label, early)
    }

    /// The new policy of a kept service, its name unchanged. A liveness
    /// check of the old kind in flight is ended first.
    fn set_policy(
        &mut self,
        i: usize,
        policy: Option<ServicePolicy>,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        let Some(policy) = policy else {
            return;
        };
        if self
            .services
            .get(i)
            .is_some_and(|s| s.liveness_changes(&policy))
        {
            self.end_probe(i, now, acts);
        }
        if let Some(s) = self.services.get_mut(i) {
            s.update_policy(policy, now);
        }
    }

    /// A new process with the new config: what runs is stopped first, by
    /// its old rules (`begin_requested_stops`, dependents first), and the
    /// new policy is taken when it starts again; what does not run starts
    /// afresh at once. Either way it is gated on its dependencies again.
    fn reload_restart(
        &mut self,
        i: usize,
        policy: Option<ServicePolicy>,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        let running = self.services.get(i).is_some_and(|s| s.has_process());
        if !running {
            self.set_policy(i, policy, now, acts);
            if let Some(s) = self.services.get_mut(i) {
                s.revive(true);
            }
            return;
        }
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        if policy.is_some() {
            s.next_policy = policy;
        }
        s.wanted_up = true;
        s.restart_pending = true;
    }

    /// Removed: no longer wanted; stopped once the removed services that
    /// depend on it are gone, forgotten once reaped (`settle_exit`).
    fn retire(&mut self, i: usize) {
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        s.retired = true;
        s.wanted_up = false;
        s.restart_pending = false;
        if !s.has_process() {
            self.forget(i);
        }
    }

    /// Nothing of a removed service runs: it ends as a neutral `stopped`
    /// that counts for nothing (not down, not waited for, not shown).
    pub(super) fn forget(&mut self, i: usize) {
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        s.state = State::Stopped;
        s.wanted_up = true;
        s.restart_pending = false;
        let text = format!("{}: removed", s.name());
        self.note(Level::Info, text);
    }

    /// The start waves from the services' dependencies as they are now;
    /// forgotten services are left out (one forgotten later stays in a
    /// wave until the next reload, where stopping it finds nothing).
    pub(super) fn recompute_waves(&mut self) {
        let deps: Vec<Vec<usize>> = self
            .services
            .iter()
            .map(|s| s.policy.depends_on.clone())
            .collect();
        let (waves, _) = super::waves::waves(&deps);
        self.run.waves = waves
            .into_iter()
            .map(|w| {
                w.into_iter()
                    .filter(|&i| self.services.get(i).is_some_and(|s| !s.forgotten()))
                    .collect::<Vec<_>>()
            })
            .filter(|w| !w.is_empty())
            .collect();
    }
}

fn name_of(change: &SlotChange) -> &str {
    change.policy.as_ref().map_or("?", |p| p.name.as_str())
}

fn item(service: usize, awaits: Awaits, label: String, early: Option<(bool, &str)>) -> Item {
    Item {
        service,
        awaits,
        label: Some(label),
        outcome: early.map(|(ok, what)| outcome(service, ok, what)),
    }
}
