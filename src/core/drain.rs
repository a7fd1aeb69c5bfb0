//! What is left of a service's process group (SPEC section 5): when the
//! main process is reaped, the rest of its group gets the stop signal and
//! SIGCONT, then SIGKILL after `stop_timeout`, and the exit counts only
//! once the shell reports the group empty (`WatchGroup` / `GroupGone`).
//! Until then the service is `Draining`: no pid, no forwarded signals, no
//! restart, and a stop wave waits for it.

use std::time::Instant;

use super::service::State;
use super::signal;
use super::supervisor::{Level, Supervisor};
use super::types::{after, Action, ExitStatus};

impl Supervisor {
    /// The service's main process was reaped: what is left of its group is
    /// stopped and waited for before the exit counts (SPEC section 5).
    pub(super) fn on_service_exit(
        &mut self,
        i: usize,
        status: ExitStatus,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        self.end_probe(i, now, acts);
        let cap = self.shutdown.as_ref().map(|sd| sd.cap);
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        let Some(pgid) = s.pid() else {
            return;
        };
        acts.push(Action::WatchGroup { pgid });
        let sig = s.policy.stop_signal;
        if let State::Stopping {
            deadline, killed, ..
        } = s.state
        {
            // Stopped on purpose: the deadline stands. The stop signal goes
            // out again, for what the leader started after the first one
            // or what missed it (a child between fork and exec).
            s.begin_drain(status, deadline, killed);
        } else {
            let deadline = after(now, s.policy.stop_timeout);
            s.begin_drain(status, cap.map_or(deadline, |c| deadline.min(c)), false);
        }
        let text = format!("{}: main process exited ({status})", s.name());
        self.note(Level::Debug, text);
        for signal in with_cont(sig) {
            acts.push(Action::SignalLeftovers { pgid, signal });
        }
    }

    /// Kills the service's exec probe in flight, if any.
    pub(super) fn end_probe(&mut self, i: usize, now: Instant, acts: &mut Vec<Action>) {
        if let Some(probe_pid) = self.services.get_mut(i).and_then(|s| s.finish_probe(now)) {
            self.kill_untracked(probe_pid, acts);
        }
    }

    /// Nothing is left of a draining service's group: its exit counts now.
    pub(super) fn on_group_gone(&mut self, pgid: i32, now: Instant, acts: &mut Vec<Action>) {
        let Some((i, status)) = self.services.iter().enumerate().find_map(|(i, s)| {
            s.draining()
                .filter(|(g, _)| *g == pgid)
                .map(|(_, status)| (i, status))
        }) else {
            return;
        };
        self.settle_exit(i, status, now, acts);
    }

    /// SIGKILL for what is left of groups that outlived their stop_timeout.
    pub(super) fn drain_timers(&mut self, now: Instant, acts: &mut Vec<Action>) {
        let shutting_down = self.shutdown.is_some();
        for i in 0..self.services.len() {
            let Some(pgid) = self.services[i].drain_kill_due(now) else {
                continue;
            };
            acts.push(Action::SignalLeftovers {
                pgid,
                signal: signal::SIGKILL,
            });
            // Outside a shutdown, leftovers are the service's business.
            self.killed_any |= shutting_down;
            let text = format!(
                "{}: what is left of its process group did not stop in time; sending SIGKILL",
                self.services[i].name()
            );
            self.note(Level::Warn, text);
        }
    }

    /// SIGKILL to a process of ours that nothing tracks any more (a
    /// probe whose attempt is over): its exit is expected, not an orphan's.
    pub(super) fn kill_untracked(&mut self, pid: i32, acts: &mut Vec<Action>) {
        acts.push(Action::SignalGroup {
            pgid: pid,
            signal: signal::SIGKILL,
        });
        self.expected.push(pid);
    }
}

/// A stop signal, then SIGCONT so that a stopped process acts on it (as s6
/// does); SIGKILL needs no SIGCONT.
pub(super) fn with_cont(sig: i32) -> Vec<i32> {
    if sig == signal::SIGKILL || sig == signal::SIGCONT {
        vec![sig]
    } else {
        vec![sig, signal::SIGCONT]
    }
}
