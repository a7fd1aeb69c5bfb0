//! Stopping one service (SPEC sections 5, 6 and 10): its `stop_signal` and
//! SIGCONT to its process group, SIGKILL after its `stop_timeout`, and done
//! only once the group is empty (the drain of `drain.rs` takes over when
//! the leader is reaped). One operation for `rinit ctl stop`, `restart` and
//! every wave of the shutdown, which only adds its cap to the deadline.

use std::time::Instant;

use super::drain::with_cont;
use super::service::State;
use super::signal;
use super::supervisor::{Level, Supervisor};
use super::types::{after, Action};

/// Where a service stands in its stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Nothing of it runs (or it never had a process): nothing to wait for.
    Gone,
    /// Its process, or what is left of its group, is still to be reaped.
    Alive,
}

impl Supervisor {
    /// Starts the stop of service `i` if it has a live process, or moves
    /// its SIGKILL along if one is under way. `cap` bounds the deadline
    /// (the shutdown's); a spawn not yet reported is alive: it is stopped
    /// the moment its pid is known (`on_spawned`).
    pub(super) fn stop_service(
        &mut self,
        i: usize,
        now: Instant,
        cap: Option<Instant>,
        acts: &mut Vec<Action>,
    ) -> Progress {
        let Some(s) = self.services.get(i) else {
            return Progress::Gone;
        };
        match s.state {
            State::Starting { pid: Some(_), .. } | State::Running { .. } => {
                self.signal_stop(i, now, cap, acts);
                Progress::Alive
            }
            State::Stopping { .. } => {
                self.stop_kill_due(i, now, acts);
                Progress::Alive
            }
            // Leftovers of its group are waited for (`drain_timers` kills
            // them at their deadline).
            State::Starting { pid: None, .. } | State::Draining { .. } => Progress::Alive,
            _ => Progress::Gone,
        }
    }

    /// The stop signal (then SIGCONT) to the live group of service `i`.
    fn signal_stop(
        &mut self,
        i: usize,
        now: Instant,
        cap: Option<Instant>,
        acts: &mut Vec<Action>,
    ) {
        // An exec probe in flight would outlive the state that tracks it.
        self.end_probe(i, now, acts);
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        let (pid, since) = match s.state {
            State::Starting {
                pid: Some(pid),
                since,
                ..
            }
            | State::Running { pid, since } => (pid, since),
            _ => return,
        };
        let sig = s.policy.stop_signal;
        for signal in with_cont(sig) {
            acts.push(Action::SignalGroup { pgid: pid, signal });
        }
        let own = after(now, s.policy.stop_timeout);
        s.state = State::Stopping {
            pid,
            since,
            deadline: cap.map_or(own, |c| own.min(c)),
            killed: false,
        };
        let text = format!("{}: sending {} (pid {pid})", s.name(), signal::name(sig));
        self.note(Level::Info, text);
    }

    /// SIGKILL to a stopping service's group once its deadline passed
    /// (once). In a shutdown that makes the exit status 1.
    pub(super) fn stop_kill_due(&mut self, i: usize, now: Instant, acts: &mut Vec<Action>) {
        let shutting_down = self.shutdown.is_some();
        let Some(s) = self.services.get_mut(i) else {
            return;
        };
        let State::Stopping {
            pid,
            deadline,
            killed,
            ..
        } = &mut s.state
        else {
            return;
        };
        if *killed || now < *deadline {
            return;
        }
        *killed = true;
        let pid = *pid;
        acts.push(Action::SignalGroup {
            pgid: pid,
            signal: signal::SIGKILL,
        });
        self.killed_any |= shutting_down;
        let text = format!("{}: stop timeout, sending SIGKILL (pid {pid})", s.name());
        self.note(Level::Warn, text);
    }
}
