//! The ordered shutdown (SPEC section 6) and the exit status. Stages run in
//! order: drain, main command, service waves in reverse start order, then
//! the sweep of leftovers. Every stage is bounded by the shutdown cap;
//! rinit exits the moment the reaper reports no child left, never earlier.

use std::time::{Duration, Instant};

use super::drain::with_cont;
use super::service::State;
use super::signal;
use super::stop::Progress;
use super::supervisor::{Level, MainState, Supervisor};
use super::types::{after, Action};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Signal(i32),
    MainExited,
    CriticalFailed,
    AllEnded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    Drain {
        until: Instant,
    },
    Main {
        deadline: Option<Instant>,
        killed: bool,
    },
    /// Index into the stop order (the start waves reversed).
    Wave(usize),
    Sweep {
        term_sent: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Shutdown {
    pub(super) cause: Cause,
    pub(super) started: Instant,
    pub(super) cap: Instant,
    pub(super) stage: Stage,
    /// Everything got SIGKILL (second signal or the cap).
    pub(super) forced: bool,
    /// When that SIGKILL went out.
    pub(super) forced_at: Option<Instant>,
}

/// How long rinit waits after its SIGKILL to everything before it gives
/// up: a process in uninterruptible sleep can ignore SIGKILL for ever, and
/// `docker stop` must not hang on it.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

impl Shutdown {
    pub(super) fn deadline(&self, sup: &Supervisor) -> Option<Instant> {
        let stage = match self.stage {
            Stage::Drain { until } => Some(until),
            Stage::Main {
                deadline,
                killed: false,
            } => deadline,
            _ => None,
        };
        let cap = (!self.forced && sup.children_possible).then_some(self.cap);
        let give_up = self
            .forced_at
            .filter(|_| sup.children_possible)
            .map(|t| after(t, KILL_WAIT));
        super::types::deadline_min(super::types::deadline_min(stage, cap), give_up)
    }
}

impl Supervisor {
    pub(super) fn begin_shutdown(&mut self, cause: Cause, now: Instant, acts: &mut Vec<Action>) {
        let drain = match cause {
            Cause::Signal(_) if !self.run.drain.is_zero() => Some(after(now, self.run.drain)),
            _ => None,
        };
        self.note(
            Level::Info,
            format!(
                "shutting down ({}), drain {}, cap {}",
                describe(cause),
                humantime::format_duration(self.run.drain),
                humantime::format_duration(self.run.timeout)
            ),
        );
        // The graph as it is now: a reload's restarts take their new
        // `depends_on` only as they start again.
        self.recompute_waves();
        for i in 0..self.services.len() {
            if let Some(pid) = self.services[i].finish_probe(now) {
                self.kill_untracked(pid, acts);
            }
            let s = &mut self.services[i];
            if matches!(s.state, State::Waiting | State::Backoff { .. }) {
                s.state = State::Stopped;
            }
        }
        self.shutdown = Some(Shutdown {
            cause,
            started: now,
            cap: after(now, self.run.timeout),
            stage: match drain {
                Some(until) => Stage::Drain { until },
                None => Stage::Main {
                    deadline: None,
                    killed: false,
                },
            },
            forced: false,
            forced_at: None,
        });
        self.interrupt_requests(acts);
    }

    /// Second SIGTERM/SIGINT, or the cap: SIGKILL to everything left.
    pub(super) fn force_kill(&mut self, now: Instant, acts: &mut Vec<Action>) {
        let groups = self.live_groups();
        let probes: Vec<i32> = self.services.iter().filter_map(|s| s.probe_pid()).collect();
        if !groups.is_empty() || self.children_possible {
            self.killed_any = true;
        }
        for pgid in groups.into_iter().chain(probes) {
            acts.push(Action::SignalGroup {
                pgid,
                signal: signal::SIGKILL,
            });
        }
        for s in &mut self.services {
            match &mut s.state {
                State::Stopping { killed, .. } => *killed = true,
                State::Draining { pgid, killed, .. } => {
                    *killed = true;
                    acts.push(Action::SignalLeftovers {
                        pgid: *pgid,
                        signal: signal::SIGKILL,
                    });
                }
                _ => {}
            }
        }
        if self.children_possible {
            acts.push(Action::SignalAll(signal::SIGKILL));
        }
        if let Some(sd) = self.shutdown.as_mut() {
            sd.forced = true;
            sd.forced_at.get_or_insert(now);
            sd.stage = Stage::Sweep { term_sent: true };
        }
    }

    pub(super) fn advance_shutdown(&mut self, now: Instant, acts: &mut Vec<Action>) {
        let Some(sd) = self.shutdown.as_ref() else {
            return;
        };
        if now >= sd.cap && !sd.forced && self.children_possible {
            self.note(
                Level::Warn,
                "shutdown timeout reached: sending SIGKILL to everything left".into(),
            );
            self.force_kill(now, acts);
        }
        if self.give_up_due(now) {
            return self.give_up(now, acts);
        }
        while let Some(stage) = self.shutdown.as_ref().map(|s| s.stage) {
            let next = match stage {
                Stage::Drain { until } if now < until => return,
                Stage::Drain { .. } => Stage::Main {
                    deadline: None,
                    killed: false,
                },
                Stage::Main { deadline, killed } => {
                    match self.stop_main(now, deadline, killed, acts) {
                        Some(stage) => stage,
                        None => return,
                    }
                }
                Stage::Wave(k) if k >= self.run.waves.len() => Stage::Sweep { term_sent: false },
                Stage::Wave(k) => {
                    if self.stop_wave(k, now, acts) {
                        return;
                    }
                    Stage::Wave(k + 1)
                }
                Stage::Sweep { term_sent } => return self.sweep(term_sent, now, acts),
            };
            self.set_stage(next, now);
        }
    }

    fn give_up_due(&self, now: Instant) -> bool {
        let forced_at = self.shutdown.as_ref().and_then(|sd| sd.forced_at);
        self.children_possible && forced_at.is_some_and(|t| now >= after(t, KILL_WAIT))
    }

    /// Processes survived SIGKILL for `KILL_WAIT`: say which, and exit 1
    /// rather than hang (as PID 1 the kernel takes them down with us).
    fn give_up(&mut self, now: Instant, acts: &mut Vec<Action>) {
        let elapsed = self.shutdown_elapsed(now);
        self.note(
            Level::Error,
            format!("processes survived SIGKILL for {KILL_WAIT:?} (shutdown +{elapsed:?}); exiting with status 1 without them"),
        );
        self.exited = true;
        acts.push(Action::LogLeftovers);
        acts.push(Action::Exit(1));
    }

    fn set_stage(&mut self, stage: Stage, now: Instant) {
        let elapsed = self.shutdown_elapsed(now);
        if let Some(sd) = self.shutdown.as_mut() {
            sd.stage = stage;
        }
        let what = match stage {
            Stage::Main { .. } => "stopping the main command".to_string(),
            Stage::Wave(k) if k < self.run.waves.len() => format!("stopping wave {}", k + 1),
            Stage::Wave(_) => return,
            Stage::Sweep { .. } => "services stopped; sweeping leftovers".to_string(),
            Stage::Drain { .. } => return,
        };
        self.note(Level::Debug, format!("shutdown +{elapsed:?}: {what}"));
    }

    /// Signals the main command, then SIGKILLs it at its deadline. Returns
    /// the next stage once it is gone.
    fn stop_main(
        &mut self,
        now: Instant,
        deadline: Option<Instant>,
        killed: bool,
        acts: &mut Vec<Action>,
    ) -> Option<Stage> {
        let MainState::Running { pid } = self.main else {
            return Some(Stage::Wave(0));
        };
        let sd = self.shutdown.as_mut()?;
        let stage = match deadline {
            None => {
                let sig = match sd.cause {
                    Cause::Signal(s) => s,
                    _ => signal::SIGTERM,
                };
                for signal in with_cont(sig) {
                    acts.push(Action::SignalGroup { pgid: pid, signal });
                }
                let d = after(now, self.run.main_stop_timeout).min(sd.cap);
                Stage::Main {
                    deadline: Some(d),
                    killed: false,
                }
            }
            Some(d) if now >= d && !killed => {
                acts.push(Action::SignalGroup {
                    pgid: pid,
                    signal: signal::SIGKILL,
                });
                self.killed_any = true;
                Stage::Main {
                    deadline: Some(d),
                    killed: true,
                }
            }
            Some(_) => return None,
        };
        sd.stage = stage;
        None
    }

    /// Stops the services of stop wave `k` (the per-service stop under the
    /// shutdown's cap); true while any is still alive.
    fn stop_wave(&mut self, k: usize, now: Instant, acts: &mut Vec<Action>) -> bool {
        let Some(cap) = self.shutdown.as_ref().map(|s| s.cap) else {
            return false;
        };
        let Some(wave) = self
            .run
            .waves
            .len()
            .checked_sub(k + 1)
            .and_then(|w| self.run.waves.get(w))
            .cloned()
        else {
            return false;
        };
        let mut alive = false;
        for i in wave {
            alive |= self.stop_service(i, now, Some(cap), acts) == Progress::Alive;
        }
        alive
    }

    fn sweep(&mut self, term_sent: bool, now: Instant, acts: &mut Vec<Action>) {
        if !self.children_possible {
            let code = self.exit_status();
            let elapsed = self.shutdown_elapsed(now);
            self.note(
                Level::Info,
                format!("all processes reaped after {elapsed:?}; exiting with status {code}"),
            );
            self.exited = true;
            acts.push(Action::Exit(code));
            return;
        }
        if !term_sent {
            acts.push(Action::SignalAll(signal::SIGTERM));
            if let Some(sd) = self.shutdown.as_mut() {
                sd.stage = Stage::Sweep { term_sent: true };
            }
        }
    }

    /// SPEC section 6, first rule that applies.
    pub(super) fn exit_status(&self) -> i32 {
        if let Some(s) = self.main_status {
            return s.as_code();
        }
        if let Some(c) = self.critical_status {
            return c;
        }
        if self.killed_any {
            return 1;
        }
        match self.shutdown.as_ref().map(|s| s.cause) {
            Some(Cause::AllEnded) => self.first_failed.unwrap_or(0),
            _ => 0,
        }
    }
}

fn describe(cause: Cause) -> String {
    match cause {
        Cause::Signal(s) => format!("received {}", signal::name(s)),
        Cause::MainExited => "main command exited".into(),
        Cause::CriticalFailed => "a critical service failed".into(),
        Cause::AllEnded => "no service left to run".into(),
    }
}
