//! Property test of the decision core: random small service graphs driven
//! by random event sequences through a model of the OS shell, checking the
//! contract's promises about pids and shutdown (SPEC sections 3, 5 and 6).
//!
//! The model plays the shell the way `runtime.rs` does: it answers every
//! `Spawn` with `Spawned` or `SpawnFailed` through the same FIFO of pending
//! events, keeps the table of pids it handed out and which of them are
//! alive, reports `NoChildren` when the last one is reaped (as the reaper
//! does), and only ever delivers `Tick` at or after `next_deadline()`.
//! Before time passes, the children whose exec failed are reaped and
//! SIGKILL takes effect. Some service processes keep a member in their
//! group after they exit (a forking server's worker): `WatchGroup` reports
//! `GroupGone` once that member is reaped too.
//!
//! Properties, checked after every event:
//! - the core never panics;
//! - the snapshot never shows a pid that is not alive (never spawned,
//!   exited, or a child whose exec failed);
//! - every live service process is still the pid of its service (the core
//!   never forgets a process it asked for);
//! - `SignalGroup` only goes to pgids the shell handed out and whose
//!   leader's exit has not been reported (a reaped pid may be reused);
//!   `SignalLeftovers` only to groups the core asked to watch;
//! - `reaped_total` counts every exit fed, `orphans_reaped` only those of
//!   processes rinit did not spawn (not failed execs, not killed probes);
//! - `Exit` only once no child is left, and as the last action;
//! - no livelock: a deadline that a `Tick` does not move on is a busy loop;
//! - reloads (valid ones, as the shell makes them) keep all of the above,
//!   and each is answered exactly once, at the latest by the shutdown;
//! - after SIGTERM, with stubborn processes dying only on SIGKILL and the
//!   rest on their stop signal, ticking from deadline to deadline always
//!   ends in `Exit`.
//!
//! Cases: 2048 by default (about 6 s in a debug build, with one fuzzer
//! running beside it, on a 2-CPU machine); set
//! `PROPTEST_CASES` for a longer run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rinit_pid1::core::signal::{SIGINT, SIGKILL, SIGQUIT, SIGTERM};
use rinit_pid1::core::snapshot::Phase;
use rinit_pid1::core::types::{
    Action, ChangeKind, Event, ExitStatus, LivenessPolicy, ProbeKind, ProbePolicy, Reload,
    RestartPolicy, RunPolicy, ServicePolicy, SlotChange, Who,
};
use rinit_pid1::core::Supervisor;

const SIGHUP: i32 = 1;
const SIGUSR1: i32 = 10;
const DEFAULT_CASES: u32 = 2048;
/// More ticks than this at one instant is a busy loop.
const MAX_TICKS_AT_ONCE: u32 = 64;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- inputs

/// A service with index `i`: it may depend on any of the services before
/// it, so the graph is always a DAG.
fn policy(i: usize) -> impl Strategy<Value = ServicePolicy> {
    let shape = (
        0u32..(1u32 << i),
        any::<bool>(),
        0u8..3,
        any::<bool>(),
        any::<bool>(),
    );
    let timing = (
        0u64..300,
        0u64..2000,
        0u32..4,
        1u64..5000,
        0u64..3000,
        0u8..3,
    );
    let probe = prop_oneof![
        2 => Just(None),
        1 => (any::<bool>(), 1u64..1000, 1u64..1000).prop_map(|(exec, interval, timeout)| {
            Some(ProbePolicy {
                kind: if exec { ProbeKind::Exec } else { ProbeKind::Network },
                interval: ms(interval),
                timeout: ms(timeout),
            })
        }),
    ];
    // Liveness (never on a oneshot: validation refuses it) and
    // start_timeout, so hung services and their stops are in the mix.
    let checks = (
        prop_oneof![
            2 => Just(None),
            1 => (any::<bool>(), 2u64..1000, 1u32..4).prop_map(|(exec, interval, failures)| {
                Some(LivenessPolicy {
                    probe: ProbePolicy {
                        kind: if exec { ProbeKind::Exec } else { ProbeKind::Network },
                        interval: ms(interval),
                        timeout: ms(interval / 2),
                    },
                    failures,
                })
            }),
        ],
        prop_oneof![2 => Just(None), 1 => (1u64..3000).prop_map(|t| Some(ms(t)))],
    );
    (shape, timing, probe, checks).prop_map(move |(shape, timing, probe, checks)| {
        let (deps, oneshot, restart, critical, code_3_ok) = shape;
        let (initial, max, max_restarts, window, stop, stop_signal) = timing;
        let mut p = ServicePolicy::new(&format!("s{i}"));
        p.depends_on = (0..i).filter(|d| deps & (1 << d) != 0).collect();
        p.oneshot = oneshot;
        p.restart = match restart {
            0 => RestartPolicy::Always,
            1 => RestartPolicy::OnFailure,
            _ => RestartPolicy::Never,
        };
        p.critical = critical;
        if code_3_ok {
            p.success_codes = vec![0, 3];
        }
        p.backoff_initial = ms(initial);
        p.backoff_max = ms(max);
        p.max_restarts = max_restarts;
        p.restart_window = ms(window);
        p.stop_timeout = ms(stop);
        p.stop_signal = [SIGTERM, SIGINT, SIGQUIT][usize::from(stop_signal)];
        p.probe = probe;
        p.liveness = checks.0.filter(|_| !oneshot);
        p.start_timeout = checks.1;
        p
    })
}

/// Start waves from the DAG: a service's wave is one past its deepest
/// dependency's.
fn waves(policies: &[ServicePolicy]) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; policies.len()];
    for (i, p) in policies.iter().enumerate() {
        level[i] = p
            .depends_on
            .iter()
            .map(|&d| level[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let depth = level.iter().max().map_or(0, |m| m + 1);
    (0..depth)
        .map(|w| (0..policies.len()).filter(|&i| level[i] == w).collect())
        .collect()
}

fn graph() -> impl Strategy<Value = (Vec<ServicePolicy>, RunPolicy)> {
    (1usize..=5).prop_flat_map(|n| {
        let services: Vec<_> = (0..n).map(|i| policy(i).boxed()).collect();
        let run = (
            prop_oneof![Just(0u64), 1u64..1000],
            1u64..10_000,
            any::<bool>(),
            0u64..5000,
        );
        (services, run).prop_map(|(services, (drain, timeout, has_main, main_stop))| {
            let run = RunPolicy {
                drain: ms(drain),
                timeout: ms(timeout),
                has_main,
                main_stop_timeout: ms(main_stop),
                waves: waves(&services),
            };
            (services, run)
        })
    })
}

#[derive(Clone, Debug)]
enum Op {
    /// A live process exits (the `pick`-th in the table).
    Exit {
        pick: usize,
        status: ExitStatus,
    },
    /// An adopted orphan nobody spawned is reaped.
    Orphan,
    /// The reaper reports a child whose exec failed.
    Reap,
    Signal(i32),
    /// The answer to an outstanding `Action::Probe`, sometimes with a
    /// generation that is not the one asked for.
    Probe {
        pick: usize,
        ok: bool,
        stale: bool,
    },
    /// A result for a service that does not exist.
    BogusProbe,
    /// A reload: per live service, from the seed, unchanged, a policy
    /// change, a restart or a removal; sometimes one service added.
    Reload(u64),
    /// Time passes; every deadline on the way gets its Tick.
    Advance(u64),
}

fn status() -> impl Strategy<Value = ExitStatus> {
    prop_oneof![
        (0i32..4).prop_map(ExitStatus::Code),
        Just(ExitStatus::Code(127)),
        prop::sample::select(vec![SIGKILL, SIGTERM, 11]).prop_map(ExitStatus::Signal),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<usize>(), status()).prop_map(|(pick, status)| Op::Exit { pick, status }),
        1 => Just(Op::Orphan),
        1 => Just(Op::Reap),
        1 => prop::sample::select(vec![SIGTERM, SIGINT, SIGHUP, SIGUSR1]).prop_map(Op::Signal),
        4 => (any::<usize>(), any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(pick, ok, stale)| Op::Probe { pick, ok, stale }),
        1 => Just(Op::BogusProbe),
        2 => any::<u64>().prop_map(Op::Reload),
        6 => prop_oneof![0u64..50, 0u64..3000, 0u64..20_000].prop_map(Op::Advance),
    ]
}

/// How the shell answers spawns, in turn: 0 fork fails, 1 exec fails
/// (a child that exits at once), anything else starts.
fn spawn_plan() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..12, 1..16)
}

// ----------------------------------------------------------------- model

#[derive(Clone, Copy, Debug, Default)]
struct Got {
    stop: bool,
    kill: bool,
}

struct Shell {
    sup: Supervisor,
    t0: Instant,
    now: Instant,
    next_pid: i32,
    next_orphan: i32,
    /// Alive, in spawn order.
    live: Vec<i32>,
    who: HashMap<i32, Who>,
    /// Reported to the core as `Spawned` (the rest are still in the queue).
    announced: HashSet<i32>,
    /// Exit already reported to the core.
    reaped: HashSet<i32>,
    /// Children whose exec failed: exited, not yet reaped.
    zombies: VecDeque<(i32, i32)>,
    got: HashMap<i32, Got>,
    /// The reaper has said "no child" since the last fork.
    no_children_said: bool,
    /// `Action::Probe` requests not yet answered: service, generation,
    /// attempt.
    probes: Vec<(usize, u64, u64)>,
    /// Members of a group beside its leader (a forking server's workers):
    /// member pid to pgid.
    members: HashMap<i32, i32>,
    /// Groups the core asked to watch after their leader was reaped, and
    /// those reported gone.
    watched: HashSet<i32>,
    gone: HashSet<i32>,
    plan: Vec<u8>,
    planned: usize,
    stubborn: Vec<bool>,
    exited: Option<i32>,
    gave_up: bool,
    /// `Exited` events fed, and those of processes rinit did not spawn
    /// itself (adopted orphans, members of a service's group).
    exits_reported: u64,
    orphans_reported: u64,
    ticks_here: (Instant, u32),
    /// Per core slot, its policy as last given (a reload's model).
    policies: Vec<ServicePolicy>,
    reloads: u64,
    /// Replies seen, by request id: each reload is answered exactly once.
    replies: HashMap<u64, u32>,
    /// `RINIT_PROPTEST_LOG` is set: keep `log` for a failing case.
    logging: bool,
    log: Vec<String>,
}

impl Shell {
    fn new(
        (services, run): (Vec<ServicePolicy>, RunPolicy),
        plan: Vec<u8>,
        stubborn: Vec<bool>,
    ) -> Self {
        let now = Instant::now();
        Shell {
            policies: services.clone(),
            reloads: 0,
            replies: HashMap::new(),
            sup: Supervisor::new(services, run),
            t0: now,
            now,
            next_pid: 100,
            next_orphan: 900_000,
            live: Vec::new(),
            who: HashMap::new(),
            announced: HashSet::new(),
            reaped: HashSet::new(),
            zombies: VecDeque::new(),
            got: HashMap::new(),
            no_children_said: false,
            probes: Vec::new(),
            members: HashMap::new(),
            watched: HashSet::new(),
            gone: HashSet::new(),
            plan,
            planned: 0,
            stubborn,
            exited: None,
            gave_up: false,
            exits_reported: 0,
            orphans_reported: 0,
            ticks_here: (now, 0),
            logging: std::env::var_os("RINIT_PROPTEST_LOG").is_some(),
            log: Vec::new(),
        }
    }

    /// Feeds `event` and everything it causes, as the runtime's event loop
    /// does, checking the invariants after each step.
    fn feed(&mut self, event: Event) {
        let mut pending = VecDeque::from([event]);
        while let Some(event) = pending.pop_front() {
            if self.logging {
                self.log.push(format!("{:?} {event:?}", self.elapsed()));
            }
            if event == Event::NoChildren {
                assert!(self.live.is_empty() && self.zombies.is_empty());
                self.no_children_said = true;
            }
            match event {
                Event::Spawned { pid, .. } => {
                    self.announced.insert(pid);
                }
                Event::Exited { pid, .. } => {
                    self.exits_reported += 1;
                    if !self.who.contains_key(&pid) {
                        self.orphans_reported += 1;
                    }
                }
                _ => {}
            }
            let actions = self.sup.on_event(self.now, event);
            if self.exited.is_some() {
                assert!(actions.is_empty(), "actions after Exit: {actions:?}");
            }
            let n = actions.len();
            for (k, action) in actions.into_iter().enumerate() {
                if self.logging {
                    self.log.push(format!("  -> {action:?}"));
                }
                if matches!(action, Action::Exit(_)) {
                    assert_eq!(k + 1, n, "Exit is not the last action");
                }
                self.act(action, &mut pending);
            }
            self.check_snapshot();
        }
    }

    fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.t0)
    }

    fn act(&mut self, action: Action, pending: &mut VecDeque<Event>) {
        match action {
            Action::Spawn(who) => pending.push_back(self.spawn(who)),
            Action::Probe {
                service,
                generation,
                attempt,
                ..
            } => self.probes.push((service, generation, attempt)),
            Action::WatchGroup { pgid } => self.watch(pgid, pending),
            Action::SignalLeftovers { pgid, signal } => self.signal_leftovers(pgid, signal),
            Action::SignalGroup { pgid, signal } => self.signal_group(pgid, signal),
            Action::SignalAll(sig) => {
                for &pid in &self.live {
                    mark(self.got.entry(pid).or_default(), sig);
                }
            }
            Action::LogLeftovers => self.gave_up = true,
            Action::Reply(r) => *self.replies.entry(r.id).or_default() += 1,
            Action::Exit(code) => {
                // The one documented exception: processes that survived
                // SIGKILL for KILL_WAIT (uninterruptible sleep) are logged
                // and left behind.
                let all_killed = self.live.iter().all(|p| self.got(*p).kill);
                assert!(
                    (self.live.is_empty() || (self.gave_up && all_killed))
                        && self.zombies.is_empty(),
                    "Exit({code}) while alive: {:?}, unreaped: {:?}",
                    self.live,
                    self.zombies
                );
                self.exited = Some(code);
            }
            // New actions of a newer core: the lead adapts the model.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn spawn(&mut self, who: Who) -> Event {
        let choice = self.plan[self.planned % self.plan.len()];
        self.planned += 1;
        if choice == 0 {
            return Event::SpawnFailed {
                who,
                pid: None,
                code: 127,
            };
        }
        self.next_pid += 1;
        let pid = self.next_pid;
        self.who.insert(pid, who);
        self.no_children_said = false;
        if choice == 1 {
            self.zombies.push_back((pid, 126));
            return Event::SpawnFailed {
                who,
                pid: Some(pid),
                code: 126,
            };
        }
        self.live.push(pid);
        if choice >= 9 && matches!(who, Who::Service(_)) {
            self.next_pid += 1;
            self.members.insert(self.next_pid, pid);
            self.live.push(self.next_pid);
        }
        Event::Spawned { who, pid }
    }

    fn got(&self, pid: i32) -> Got {
        self.got.get(&pid).copied().unwrap_or_default()
    }

    /// Live members of group `pgid`, leader excluded.
    fn members_of(&self, pgid: i32) -> Vec<i32> {
        self.live
            .iter()
            .copied()
            .filter(|p| self.members.get(p) == Some(&pgid))
            .collect()
    }

    fn watch(&mut self, pgid: i32, pending: &mut VecDeque<Event>) {
        assert!(
            self.reaped.contains(&pgid) && self.who.contains_key(&pgid),
            "WatchGroup({pgid}) for a group whose leader was not reaped"
        );
        self.watched.insert(pgid);
        if self.members_of(pgid).is_empty() && self.gone.insert(pgid) {
            pending.push_back(Event::GroupGone { pgid });
        }
    }

    fn signal_leftovers(&mut self, pgid: i32, signal: i32) {
        assert!(
            self.watched.contains(&pgid),
            "SignalLeftovers({signal}) to group {pgid} that is not watched"
        );
        for pid in self.members_of(pgid) {
            mark(self.got.entry(pid).or_default(), signal);
        }
    }

    fn signal_group(&mut self, pgid: i32, signal: i32) {
        assert!(
            self.who.contains_key(&pgid),
            "SignalGroup to pgid {pgid} that the shell never handed out"
        );
        assert!(
            !self.reaped.contains(&pgid),
            "SignalGroup({}) to pgid {pgid} ({:?}) whose exit was already reported",
            signal,
            self.who[&pgid]
        );
        if self.live.contains(&pgid) {
            mark(self.got.entry(pgid).or_default(), signal);
            for pid in self.members_of(pgid) {
                mark(self.got.entry(pid).or_default(), signal);
            }
        }
    }

    fn check_snapshot(&self) {
        let snap = self.sup.snapshot();
        for s in &snap.services {
            let i = s.id;
            if let Some(pid) = s.pid {
                assert!(
                    self.live.contains(&pid),
                    "{} is {:?} with pid {pid}, which is not alive",
                    s.name,
                    s.phase
                );
                assert!(
                    matches!(s.phase, Phase::Starting | Phase::Running | Phase::Stopping),
                    "{} has a pid in phase {:?}",
                    s.name,
                    s.phase
                );
                assert_eq!(self.who.get(&pid), Some(&Who::Service(i)), "pid of another");
            }
        }
        assert_eq!(snap.reaped_total, self.exits_reported, "reaped_total");
        assert_eq!(
            snap.orphans_reaped, self.orphans_reported,
            "orphans_reaped counts only processes rinit did not spawn"
        );
        if let Some(pid) = snap.main_pid {
            assert!(self.live.contains(&pid), "main pid {pid} is not alive");
        }
        for pid in self.live.iter().filter(|p| self.announced.contains(p)) {
            if let Some(&Who::Service(i)) = self.who.get(pid) {
                let view = snap.services.iter().find(|s| s.id == i);
                assert_eq!(
                    view.and_then(|v| v.pid),
                    Some(*pid),
                    "service {i}'s live process {pid} is forgotten ({:?})",
                    view.map(|v| v.phase)
                );
            }
        }
    }

    /// The reaper reports `pid` exited; `NoChildren` once none is left.
    fn reap(&mut self, pid: i32, status: ExitStatus) {
        self.live.retain(|&p| p != pid);
        self.reaped.insert(pid);
        self.feed(Event::Exited { pid, status });
        if let Some(&pgid) = self.members.get(&pid) {
            let empty = self.members_of(pgid).is_empty() && self.reaped.contains(&pgid);
            if empty && self.watched.contains(&pgid) && self.gone.insert(pgid) {
                self.feed(Event::GroupGone { pgid });
            }
        }
        if self.live.is_empty() && self.zombies.is_empty() {
            self.feed(Event::NoChildren);
        }
    }

    /// Before any time passes, the reaper reports the children whose exec
    /// failed, and SIGKILL takes effect.
    fn settle(&mut self) {
        while self.exited.is_none() {
            if let Some((pid, code)) = self.zombies.pop_front() {
                self.reap(pid, ExitStatus::Code(code));
            } else if let Some(pid) = self.live.iter().copied().find(|&p| self.got(p).kill) {
                self.reap(pid, ExitStatus::Signal(SIGKILL));
            } else {
                return;
            }
        }
    }

    fn tick_at(&mut self, at: Instant) {
        self.now = self.now.max(at);
        if self.ticks_here.0 == self.now {
            self.ticks_here.1 += 1;
            assert!(
                self.ticks_here.1 <= MAX_TICKS_AT_ONCE,
                "busy loop: deadline {:?} stays due\n{:#?}",
                self.sup.next_deadline(),
                self.sup.snapshot()
            );
        } else {
            self.ticks_here = (self.now, 1);
        }
        self.feed(Event::Tick);
    }

    /// Moves the clock on by `d`, ticking at every deadline on the way.
    fn advance(&mut self, d: Duration) {
        self.settle();
        let target = self.now + d;
        while let Some(deadline) = self.sup.next_deadline() {
            if deadline > target || self.exited.is_some() {
                break;
            }
            self.tick_at(deadline);
            self.settle();
        }
        self.now = self.now.max(target);
    }

    fn run(&mut self, op: Op) {
        if self.exited.is_some() {
            return;
        }
        match op {
            Op::Exit { pick, status } => {
                if !self.live.is_empty() {
                    let pid = self.live[pick % self.live.len()];
                    self.reap(pid, status);
                }
            }
            Op::Orphan => {
                self.next_orphan += 1;
                let pid = self.next_orphan;
                self.reaped.insert(pid);
                self.feed(Event::Exited {
                    pid,
                    status: ExitStatus::Code(0),
                });
            }
            Op::Reap => {
                if let Some((pid, code)) = self.zombies.pop_front() {
                    self.reap(pid, ExitStatus::Code(code));
                }
            }
            Op::Signal(sig) => self.feed(Event::Signal(sig)),
            Op::Probe { pick, ok, stale } => {
                if !self.probes.is_empty() {
                    let (service, generation, attempt) =
                        self.probes.remove(pick % self.probes.len());
                    // Stale: a result for an attempt, or a process (generation),
                    // other than the one asked about.
                    let (generation, attempt) = match (stale, pick % 2) {
                        (false, _) => (generation, attempt),
                        (true, 0) => (generation, attempt.wrapping_add(1)),
                        (true, _) => (generation.wrapping_sub(1), attempt),
                    };
                    self.feed(Event::ProbeResult {
                        service,
                        generation,
                        attempt,
                        ok,
                    });
                }
            }
            Op::BogusProbe => self.feed(Event::ProbeResult {
                service: 99,
                generation: 1,
                attempt: 1,
                ok: true,
            }),
            Op::Advance(n) => self.advance(ms(n)),
            Op::Reload(seed) => {
                let event = self.reload(seed);
                self.feed(event);
            }
        }
    }

    /// A valid reload, as the shell would make it from an edited file: a
    /// removed service's dependents drop it from `depends_on`, an added one
    /// depends only on services that stay.
    fn reload(&mut self, mut seed: u64) -> Event {
        let mut take = |n: u64| {
            let v = seed % n;
            seed /= n;
            v
        };
        let snap = self.sup.snapshot();
        let live: Vec<usize> = snap
            .services
            .iter()
            .filter(|s| !s.removed)
            .map(|s| s.id)
            .collect();
        let kinds: Vec<u64> = live.iter().map(|_| take(5)).collect();
        let removed: HashSet<usize> = live
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k == 4)
            .map(|(i, _)| *i)
            .collect();
        let mut changes = Vec::new();
        for (&slot, &k) in live.iter().zip(&kinds) {
            if removed.contains(&slot) {
                changes.push(SlotChange {
                    slot,
                    kind: ChangeKind::Stop,
                    why: "removed".into(),
                    policy: None,
                });
                continue;
            }
            let mut p = self.policies[slot].clone();
            let before = p.depends_on.len();
            p.depends_on.retain(|d| !removed.contains(d));
            let kind = match k {
                2 => {
                    p.backoff_initial = ms(take(500));
                    p.stop_timeout = ms(take(3000));
                    ChangeKind::InPlace
                }
                3 => ChangeKind::Restart,
                _ if p.depends_on.len() != before => ChangeKind::InPlace,
                _ => ChangeKind::Unchanged,
            };
            self.policies[slot] = p.clone();
            changes.push(SlotChange {
                slot,
                kind,
                why: String::new(),
                policy: Some(p),
            });
        }
        if take(2) == 0 {
            let slot = self.policies.len();
            let mut p = ServicePolicy::new(&format!("added{slot}"));
            let keep: Vec<usize> = live
                .iter()
                .copied()
                .filter(|i| !removed.contains(i))
                .collect();
            if !keep.is_empty() && take(2) == 0 {
                p.depends_on = vec![keep[take(keep.len() as u64) as usize]];
            }
            p.oneshot = take(4) == 0;
            p.critical = take(2) == 0;
            self.policies.push(p.clone());
            changes.push(SlotChange {
                slot,
                kind: ChangeKind::Start,
                why: "added".into(),
                policy: Some(p),
            });
        }
        self.reloads += 1;
        Event::Reload(Box::new(Reload {
            id: 1_000 + self.reloads,
            changes,
            drain: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(9),
            timeout: ms(take(20_000)),
        }))
    }

    fn stubborn(&self, pid: i32) -> bool {
        self.stubborn[pid as usize % self.stubborn.len()]
    }

    /// SIGTERM, then every process dies of what it was sent (stubborn ones
    /// only of SIGKILL), network probes answer, and time runs from deadline
    /// to deadline: rinit must end with Exit.
    fn shut_down(&mut self) {
        if self.exited.is_none() {
            self.feed(Event::Signal(SIGTERM));
        }
        for _ in 0..10_000 {
            if self.exited.is_some() {
                return;
            }
            if let Some((pid, code)) = self.zombies.pop_front() {
                self.reap(pid, ExitStatus::Code(code));
                continue;
            }
            let dying = self.live.iter().copied().find_map(|pid| {
                let got = self.got(pid);
                if got.kill {
                    Some((pid, ExitStatus::Signal(SIGKILL)))
                } else if got.stop && !self.stubborn(pid) {
                    Some((pid, ExitStatus::Signal(SIGTERM)))
                } else {
                    None
                }
            });
            if let Some((pid, status)) = dying {
                self.reap(pid, status);
                continue;
            }
            if self.live.is_empty() && !self.no_children_said {
                // The reaper parks on ECHILD and says so (at start, too).
                self.feed(Event::NoChildren);
                continue;
            }
            if let Some((service, generation, attempt)) = self.probes.pop() {
                self.feed(Event::ProbeResult {
                    service,
                    generation,
                    attempt,
                    ok: false,
                });
                continue;
            }
            match self.sup.next_deadline() {
                Some(deadline) => self.tick_at(deadline),
                None => panic!(
                    "stuck in shutdown: no deadline, alive {:?}, sent {:?}",
                    self.live, self.got
                ),
            }
        }
        panic!("shutdown never ended: alive {:?}", self.live);
    }
}

/// With `RINIT_PROPTEST_LOG` set, a failing case prints its events and
/// actions (every shrinking step does, so expect a lot).
impl Drop for Shell {
    fn drop(&mut self) {
        if std::thread::panicking() && self.logging {
            eprintln!("---- events and actions of the failing case:");
            for line in &self.log {
                eprintln!("{line}");
            }
        }
    }
}

fn mark(got: &mut Got, sig: i32) {
    match sig {
        SIGKILL => got.kill = true,
        SIGTERM | SIGINT | SIGQUIT => got.stop = true,
        _ => {}
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_runs_keep_the_contract_and_always_end(
        graph in graph(),
        plan in spawn_plan(),
        stubborn in prop::collection::vec(prop::bool::weighted(0.3), 1..8),
        early_no_children in any::<bool>(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let mut shell = Shell::new(graph, plan, stubborn);
        if early_no_children {
            // The reaper may find no child before the first spawn.
            shell.feed(Event::NoChildren);
        }
        shell.feed(Event::Tick);
        for op in ops {
            shell.run(op);
        }
        shell.shut_down();
        prop_assert!(shell.exited.is_some());
        for id in 1_001..=1_000 + shell.reloads {
            prop_assert_eq!(shell.replies.get(&id).copied(), Some(1), "reload {} answered once", id);
        }
    }
}
