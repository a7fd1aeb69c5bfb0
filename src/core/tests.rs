//! Scripted runs of the supervisor: events in, actions checked, no
//! processes. One test per rule of the contract.

use std::time::{Duration, Instant};

use super::signal::{SIGCONT, SIGINT, SIGKILL, SIGTERM};
use super::snapshot::Phase;
use super::types::*;
use super::Supervisor;

pub(super) const SIGHUP: i32 = 1;
pub(super) const SIGUSR1: i32 = 10;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn run_policy(has_main: bool, waves: Vec<Vec<usize>>) -> RunPolicy {
    RunPolicy {
        drain: Duration::ZERO,
        timeout: Duration::from_secs(9),
        has_main,
        main_stop_timeout: if waves.is_empty() {
            Duration::from_secs(9)
        } else {
            Duration::from_secs(5)
        },
        waves,
    }
}

/// A service policy with dependencies.
pub(super) fn svc(name: &str, deps: &[usize]) -> ServicePolicy {
    let mut p = ServicePolicy::new(name);
    p.depends_on = deps.to_vec();
    p
}

pub(super) struct Run {
    pub(super) sup: Supervisor,
    pub(super) t0: Instant,
    pub(super) next_pid: i32,
    /// Answer every `WatchGroup` with `GroupGone` at once, as the shell
    /// does for a group with nothing left in it.
    pub(super) empty_groups: bool,
}

impl Run {
    pub(super) fn new(policies: Vec<ServicePolicy>, run: RunPolicy) -> Self {
        Run {
            sup: Supervisor::new(policies, run),
            t0: Instant::now(),
            next_pid: 100,
            empty_groups: true,
        }
    }

    pub(super) fn at(&self, t: u64) -> Instant {
        self.t0 + ms(t)
    }

    pub(super) fn ev(&mut self, t: u64, e: Event) -> Vec<Action> {
        self.sup.on_event(self.at(t), e)
    }

    /// Feeds an event and reports every spawn as successful, the way the
    /// shell does; returns all actions with spawns resolved to pids.
    pub(super) fn step(&mut self, t: u64, e: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let mut queue = vec![e];
        while let Some(e) = queue.pop() {
            for a in self.ev(t, e) {
                match a {
                    Action::Spawn(who) => {
                        self.next_pid += 1;
                        queue.push(Event::Spawned {
                            who,
                            pid: self.next_pid,
                        });
                    }
                    Action::WatchGroup { pgid } if self.empty_groups => {
                        queue.push(Event::GroupGone { pgid });
                    }
                    _ => {}
                }
                out.push(a);
            }
        }
        out
    }

    pub(super) fn pid(&self, i: usize) -> i32 {
        self.sup.snapshot().services[i]
            .pid
            .expect("service has a pid")
    }

    pub(super) fn main_pid(&self) -> i32 {
        self.sup.snapshot().main_pid.expect("main runs")
    }

    pub(super) fn phase(&self, i: usize) -> Phase {
        self.sup.snapshot().services[i].phase
    }

    pub(super) fn exit(&mut self, t: u64, pid: i32, status: ExitStatus) -> Vec<Action> {
        self.step(t, Event::Exited { pid, status })
    }
}

pub(super) fn spawns(acts: &[Action]) -> Vec<Who> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Spawn(w) => Some(*w),
            _ => None,
        })
        .collect()
}

/// The group signals, without the SIGCONT that follows every stop signal
/// (`conts` checks those).
pub(super) fn signals(acts: &[Action]) -> Vec<(i32, i32)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::SignalGroup { pgid, signal } if *signal != SIGCONT => Some((*pgid, *signal)),
            _ => None,
        })
        .collect()
}

/// Groups that got SIGCONT.
pub(super) fn conts(acts: &[Action]) -> Vec<i32> {
    acts.iter()
        .filter_map(|a| match a {
            Action::SignalGroup { pgid, signal } if *signal == SIGCONT => Some(*pgid),
            _ => None,
        })
        .collect()
}

/// Signals to what is left of drained groups.
pub(super) fn leftover_signals(acts: &[Action]) -> Vec<(i32, i32)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::SignalLeftovers { pgid, signal } => Some((*pgid, *signal)),
            _ => None,
        })
        .collect()
}

pub(super) fn exit_code(acts: &[Action]) -> Option<i32> {
    acts.iter().find_map(|a| match a {
        Action::Exit(c) => Some(*c),
        _ => None,
    })
}

#[test]
fn single_command_exit_sweeps_then_exits_with_its_status() {
    let mut r = Run::new(vec![], run_policy(true, vec![]));
    assert_eq!(spawns(&r.step(0, Event::Tick)), vec![Who::Main]);
    let pid = r.main_pid();
    let acts = r.exit(10, pid, ExitStatus::Code(3));
    assert!(acts.contains(&Action::SignalAll(SIGTERM)), "{acts:?}");
    assert_eq!(exit_code(&acts), None, "leftovers may still run");
    assert_eq!(exit_code(&r.step(11, Event::NoChildren)), Some(3));
}

#[test]
fn exit_is_immediate_when_nothing_is_left() {
    let mut r = Run::new(vec![], run_policy(true, vec![]));
    r.step(0, Event::Tick);
    let pid = r.main_pid();
    r.ev(
        1,
        Event::Exited {
            pid,
            status: ExitStatus::Signal(15),
        },
    );
    assert!(r.sup.next_deadline().is_some(), "only the cap, as a bound");
    assert_eq!(
        exit_code(&r.step(1, Event::NoChildren)),
        Some(143),
        "no timer waited out"
    );
}

#[test]
fn sigterm_is_forwarded_then_sigkill_at_the_grace_end() {
    let mut r = Run::new(vec![], run_policy(true, vec![]));
    r.step(0, Event::Tick);
    let pid = r.main_pid();
    assert_eq!(
        signals(&r.step(5, Event::Signal(SIGTERM))),
        vec![(pid, SIGTERM)]
    );
    assert_eq!(
        r.sup.next_deadline(),
        Some(r.at(5) + Duration::from_secs(9))
    );
    assert!(signals(&r.step(5000, Event::Tick)).is_empty());
    let acts = r.step(9005, Event::Tick);
    assert!(signals(&acts).contains(&(pid, SIGKILL)), "{acts:?}");
    r.exit(9006, pid, ExitStatus::Signal(SIGKILL));
    assert_eq!(exit_code(&r.step(9006, Event::NoChildren)), Some(137));
}

#[test]
fn second_sigterm_skips_to_sigkill() {
    let mut r = Run::new(vec![], run_policy(true, vec![]));
    r.step(0, Event::Tick);
    let pid = r.main_pid();
    r.step(1, Event::Signal(SIGINT));
    let acts = r.step(2, Event::Signal(SIGTERM));
    assert!(signals(&acts).contains(&(pid, SIGKILL)));
    assert!(acts.contains(&Action::SignalAll(SIGKILL)));
}

#[test]
fn other_signals_go_to_every_group() {
    let mut r = Run::new(
        vec![svc("a", &[]), svc("b", &[])],
        run_policy(true, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let (a, b, m) = (r.pid(0), r.pid(1), r.main_pid());
    let mut got = signals(&r.step(1, Event::Signal(SIGHUP)));
    got.sort();
    let mut want = vec![(m, SIGHUP), (a, SIGHUP), (b, SIGHUP)];
    want.sort();
    assert_eq!(got, want);
    assert!(r.sup.snapshot().shutting_down.eq(&false));
}

#[test]
fn waves_start_in_dependency_order() {
    let mut r = Run::new(
        vec![svc("db", &[]), svc("web", &[0]), svc("cache", &[])],
        run_policy(false, vec![vec![0, 2], vec![1]]),
    );
    let acts = r.ev(0, Event::Tick);
    assert_eq!(spawns(&acts), vec![Who::Service(0), Who::Service(2)]);
    assert_eq!(
        spawns(&r.ev(
            0,
            Event::Spawned {
                who: Who::Service(0),
                pid: 10
            }
        )),
        vec![Who::Service(1)]
    );
}

pub(super) fn probed(name: &str, deps: &[usize], kind: ProbeKind) -> ServicePolicy {
    let mut p = svc(name, deps);
    p.probe = Some(ProbePolicy {
        kind,
        interval: ms(100),
        timeout: ms(50),
    });
    p
}

#[test]
fn a_dependent_waits_for_the_probe_to_pass() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Network), svc("web", &[0])],
        run_policy(true, vec![vec![0], vec![1]]),
    );
    let acts = r.step(0, Event::Tick);
    assert_eq!(spawns(&acts), vec![Who::Service(0)]);
    assert!(acts.contains(&Action::Probe {
        service: 0,
        generation: 1,
        attempt: 1,
        liveness: false
    }));
    assert_eq!(r.phase(0), Phase::Starting);
    assert!(spawns(&r.step(
        5,
        Event::ProbeResult {
            service: 0,
            generation: 1,
            attempt: 1,
            ok: false
        }
    ))
    .is_empty());
    // The first retry comes 10 ms after the first attempt (then 20, 40...).
    assert_eq!(r.sup.next_deadline(), Some(r.at(10)));
    assert!(r.step(10, Event::Tick).contains(&Action::Probe {
        service: 0,
        generation: 1,
        attempt: 2,
        liveness: false
    }));
    // A late answer of the first attempt is not credited to the second.
    let late = r.step(
        105,
        Event::ProbeResult {
            service: 0,
            generation: 1,
            attempt: 1,
            ok: true,
        },
    );
    assert!(spawns(&late).is_empty());
    assert_eq!(r.phase(0), Phase::Starting);
    let acts = r.step(
        110,
        Event::ProbeResult {
            service: 0,
            generation: 1,
            attempt: 2,
            ok: true,
        },
    );
    assert_eq!(
        spawns(&acts),
        vec![Who::Service(1), Who::Main],
        "main once web is ready too"
    );
    assert_eq!(r.phase(0), Phase::Running);
    assert!(r
        .sup
        .snapshot()
        .services
        .iter()
        .all(|s| s.phase == Phase::Running));
}

#[test]
fn a_stale_probe_result_is_ignored() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Network)],
        run_policy(false, vec![vec![0]]),
    );
    r.step(0, Event::Tick);
    let pid = r.pid(0);
    r.exit(10, pid, ExitStatus::Code(1));
    r.step(110, Event::Tick); // restarted: generation 2
    r.step(
        111,
        Event::ProbeResult {
            service: 0,
            generation: 1,
            attempt: 1,
            ok: true,
        },
    );
    assert_eq!(r.phase(0), Phase::Starting);
}

#[test]
fn exec_probe_is_a_tracked_child_and_times_out() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Exec)],
        run_policy(false, vec![vec![0]]),
    );
    let acts = r.step(0, Event::Tick);
    assert_eq!(spawns(&acts), vec![Who::Service(0), Who::Probe(0)]);
    let probe_pid = r.next_pid;
    // Times out at 50 ms: the probe's group is killed, a new one at 100 ms.
    assert!(signals(&r.step(50, Event::Tick)).contains(&(probe_pid, SIGKILL)));
    assert_eq!(spawns(&r.step(100, Event::Tick)), vec![Who::Probe(0)]);
    let probe_pid = r.next_pid;
    r.exit(120, probe_pid, ExitStatus::Code(0));
    assert_eq!(r.phase(0), Phase::Running);
    assert_eq!(r.sup.snapshot().orphans_reaped, 0);
}

#[test]
fn oneshot_gates_its_dependents_on_success() {
    let mut mig = svc("migrate", &[]);
    mig.oneshot = true;
    mig.restart = RestartPolicy::Never;
    let mut r = Run::new(
        vec![mig, svc("web", &[0])],
        run_policy(false, vec![vec![0], vec![1]]),
    );
    assert_eq!(spawns(&r.step(0, Event::Tick)), vec![Who::Service(0)]);
    assert_eq!(
        r.phase(0),
        Phase::Starting,
        "spawned and exec'd, not yet done"
    );
    let pid = r.pid(0);
    assert_eq!(
        spawns(&r.exit(5, pid, ExitStatus::Code(0))),
        vec![Who::Service(1)]
    );
    assert_eq!(r.phase(0), Phase::Done);
}

#[test]
fn failed_critical_oneshot_shuts_down_with_its_status() {
    let mut mig = svc("migrate", &[]);
    mig.oneshot = true;
    mig.restart = RestartPolicy::Never;
    let mut r = Run::new(
        vec![mig, svc("web", &[0])],
        run_policy(false, vec![vec![0], vec![1]]),
    );
    r.step(0, Event::Tick);
    let pid = r.pid(0);
    let acts = r.exit(5, pid, ExitStatus::Code(4));
    assert!(spawns(&acts).is_empty());
    assert!(r.sup.snapshot().shutting_down);
    assert_eq!(exit_code(&r.step(6, Event::NoChildren)), Some(4));
}

#[test]
fn restart_after_backoff_then_crash_loop_fails_and_shuts_down() {
    let mut p = svc("web", &[]);
    p.max_restarts = 2;
    let mut r = Run::new(
        vec![p, svc("other", &[])],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let pid = r.pid(0);
    r.exit(10, pid, ExitStatus::Code(1));
    assert_eq!(r.phase(0), Phase::Backoff);
    assert_eq!(r.sup.next_deadline(), Some(r.at(110)));
    assert!(spawns(&r.step(109, Event::Tick)).is_empty());
    assert_eq!(spawns(&r.step(110, Event::Tick)), vec![Who::Service(0)]);
    let pid = r.pid(0);
    r.exit(120, pid, ExitStatus::Code(1));
    assert_eq!(
        r.sup.next_deadline(),
        Some(r.at(320)),
        "second restart waits 200 ms"
    );
    r.step(320, Event::Tick);
    let pid = r.pid(0);
    let other = r.pid(1);
    let acts = r.exit(330, pid, ExitStatus::Signal(SIGKILL));
    assert_eq!(r.phase(0), Phase::Failed);
    assert_eq!(
        signals(&acts),
        vec![(other, SIGTERM)],
        "critical failure stops the rest"
    );
    r.exit(331, other, ExitStatus::Signal(SIGTERM));
    assert_eq!(exit_code(&r.step(331, Event::NoChildren)), Some(137));
}

#[test]
fn non_critical_failure_leaves_the_rest_running() {
    let mut p = svc("flaky", &[]);
    p.critical = false;
    p.restart = RestartPolicy::Never;
    let mut r = Run::new(
        vec![p, svc("web", &[])],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let pid = r.pid(0);
    let acts = r.exit(10, pid, ExitStatus::Code(2));
    assert!(signals(&acts).is_empty());
    let snap = r.sup.snapshot();
    assert!(!snap.shutting_down && !snap.healthy());
    assert_eq!(r.phase(1), Phase::Running);
}

#[test]
fn when_nothing_can_run_any_more_the_first_failure_is_the_status() {
    let mut a = svc("a", &[]);
    a.critical = false;
    a.restart = RestartPolicy::Never;
    let mut b = svc("b", &[]);
    b.restart = RestartPolicy::OnFailure;
    let mut r = Run::new(vec![a, b], run_policy(false, vec![vec![0, 1]]));
    r.step(0, Event::Tick);
    let (pa, pb) = (r.pid(0), r.pid(1));
    r.exit(5, pa, ExitStatus::Code(6));
    assert!(!r.sup.snapshot().shutting_down, "b still runs");
    r.exit(6, pb, ExitStatus::Code(0));
    assert_eq!(r.phase(1), Phase::Stopped);
    assert!(r.sup.snapshot().shutting_down);
    assert_eq!(exit_code(&r.step(7, Event::NoChildren)), Some(6));
}

#[test]
fn all_stopped_exits_zero_and_blocked_dependents_count_as_ended() {
    let mut a = svc("a", &[]);
    a.oneshot = true;
    a.restart = RestartPolicy::Never;
    a.critical = false;
    let mut r = Run::new(
        vec![a, svc("b", &[0])],
        run_policy(false, vec![vec![0], vec![1]]),
    );
    r.step(0, Event::Tick);
    let pa = r.pid(0);
    r.exit(5, pa, ExitStatus::Code(9));
    assert!(r.sup.snapshot().shutting_down, "b can never start");
    assert_eq!(exit_code(&r.step(6, Event::NoChildren)), Some(9));
}

#[test]
fn main_command_starts_after_services_and_its_status_wins() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Network)],
        run_policy(true, vec![vec![0]]),
    );
    assert_eq!(spawns(&r.step(0, Event::Tick)), vec![Who::Service(0)]);
    assert_eq!(
        spawns(&r.step(
            5,
            Event::ProbeResult {
                service: 0,
                generation: 1,
                attempt: 1,
                ok: true
            }
        )),
        vec![Who::Main]
    );
    let (m, db) = (r.main_pid(), r.pid(0));
    let acts = r.exit(10, m, ExitStatus::Code(0));
    assert_eq!(signals(&acts), vec![(db, SIGTERM)]);
    // db ignores SIGTERM: SIGKILL at its stop timeout (5 s), main's 0 wins.
    let acts = r.step(5010, Event::Tick);
    assert_eq!(signals(&acts), vec![(db, SIGKILL)]);
    r.exit(5011, db, ExitStatus::Signal(SIGKILL));
    assert_eq!(exit_code(&r.step(5011, Event::NoChildren)), Some(0));
}

#[test]
fn shutdown_stops_waves_in_reverse_order_then_exits_at_once() {
    let mut r = Run::new(
        vec![svc("db", &[]), svc("api", &[0]), svc("web", &[1])],
        run_policy(false, vec![vec![0], vec![1], vec![2]]),
    );
    r.step(0, Event::Tick);
    let (db, api, web) = (r.pid(0), r.pid(1), r.pid(2));
    assert_eq!(
        signals(&r.step(10, Event::Signal(SIGTERM))),
        vec![(web, SIGTERM)]
    );
    assert_eq!(r.phase(2), Phase::Stopping);
    assert_eq!(
        signals(&r.exit(20, web, ExitStatus::Signal(SIGTERM))),
        vec![(api, SIGTERM)]
    );
    assert_eq!(
        signals(&r.exit(30, api, ExitStatus::Code(0))),
        vec![(db, SIGTERM)]
    );
    let acts = r.exit(40, db, ExitStatus::Code(0));
    assert!(
        acts.contains(&Action::SignalAll(SIGTERM)),
        "sweep of leftovers"
    );
    assert_eq!(exit_code(&r.step(41, Event::NoChildren)), Some(0));
}

#[test]
fn custom_stop_signal_and_sigkill_after_stop_timeout_means_status_1() {
    let mut p = svc("db", &[]);
    p.stop_signal = SIGINT;
    p.stop_timeout = ms(300);
    let mut r = Run::new(vec![p], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let db = r.pid(0);
    assert_eq!(
        signals(&r.step(10, Event::Signal(SIGTERM))),
        vec![(db, SIGINT)]
    );
    assert_eq!(r.sup.next_deadline(), Some(r.at(310)));
    assert_eq!(signals(&r.step(310, Event::Tick)), vec![(db, SIGKILL)]);
    r.exit(311, db, ExitStatus::Signal(SIGKILL));
    assert_eq!(exit_code(&r.step(311, Event::NoChildren)), Some(1));
}

#[test]
fn the_shutdown_cap_bounds_every_stop_timeout() {
    let mut p = svc("db", &[]);
    p.stop_timeout = Duration::from_secs(60);
    let mut run = run_policy(false, vec![vec![0]]);
    run.timeout = ms(500);
    let mut r = Run::new(vec![p], run);
    r.step(0, Event::Tick);
    let db = r.pid(0);
    r.step(0, Event::Signal(SIGTERM));
    assert_eq!(r.sup.next_deadline(), Some(r.at(500)));
    let acts = r.step(500, Event::Tick);
    assert!(signals(&acts).contains(&(db, SIGKILL)));
    assert!(acts.contains(&Action::SignalAll(SIGKILL)));
}

#[test]
fn drain_delays_every_stop_signal_but_readyz_turns_at_once() {
    let mut run = run_policy(false, vec![vec![0]]);
    run.drain = ms(1000);
    let mut r = Run::new(vec![svc("web", &[])], run);
    r.step(0, Event::Tick);
    let web = r.pid(0);
    assert!(r.sup.snapshot().ready());
    assert!(signals(&r.step(0, Event::Signal(SIGTERM))).is_empty());
    let snap = r.sup.snapshot();
    assert!(!snap.ready() && !snap.healthy());
    assert_eq!(r.sup.next_deadline(), Some(r.at(1000)));
    assert!(signals(&r.step(999, Event::Tick)).is_empty());
    assert_eq!(signals(&r.step(1000, Event::Tick)), vec![(web, SIGTERM)]);
}

#[test]
fn sigterm_while_starting_stops_the_starting_service() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Network), svc("web", &[0])],
        run_policy(false, vec![vec![0], vec![1]]),
    );
    r.step(0, Event::Tick);
    let db = r.pid(0);
    let acts = r.step(1, Event::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(db, SIGTERM)]);
    assert_eq!(r.phase(1), Phase::Stopped, "web never started");
    r.exit(2, db, ExitStatus::Signal(SIGTERM));
    assert_eq!(exit_code(&r.step(2, Event::NoChildren)), Some(0));
    // A late probe result cannot resurrect it.
    assert!(r
        .ev(
            3,
            Event::ProbeResult {
                service: 0,
                generation: 1,
                attempt: 1,
                ok: true
            }
        )
        .is_empty());
}

#[test]
fn backoff_is_cancelled_by_shutdown() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let a = r.pid(0);
    r.exit(1, a, ExitStatus::Code(1));
    let acts = r.step(2, Event::Signal(SIGTERM));
    assert!(spawns(&acts).is_empty());
    assert_eq!(r.phase(0), Phase::Stopped);
    assert_eq!(exit_code(&r.step(3, Event::NoChildren)), Some(0));
}

#[test]
fn spawn_failure_counts_as_an_exit_with_its_code() {
    let mut r = Run::new(vec![], run_policy(true, vec![]));
    assert_eq!(spawns(&r.ev(0, Event::Tick)), vec![Who::Main]);
    r.ev(
        0,
        Event::SpawnFailed {
            who: Who::Main,
            pid: Some(50),
            code: 127,
        },
    );
    r.ev(
        1,
        Event::Exited {
            pid: 50,
            status: ExitStatus::Code(127),
        },
    );
    assert_eq!(exit_code(&r.ev(1, Event::NoChildren)), Some(127));
}

#[test]
fn orphans_are_counted_not_mistaken_for_services() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    r.step(
        1,
        Event::Exited {
            pid: 9999,
            status: ExitStatus::Code(0),
        },
    );
    let snap = r.sup.snapshot();
    assert_eq!((snap.reaped_total, snap.orphans_reaped), (1, 1));
    assert_eq!(r.phase(0), Phase::Running);
    r.step(2, Event::Signal(SIGUSR1));
}

#[test]
fn no_deadline_when_idle() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(true, vec![vec![0]]));
    r.step(0, Event::Tick);
    assert_eq!(r.sup.next_deadline(), None);
}

/// 60 layers of two services, each depending on both of the layer below:
/// 2^59 dependency paths from the top. The check for "blocked for good"
/// must not walk them (it used to: this test never finished). The top
/// layer comes first in the file, so it is the first one checked.
#[test]
fn a_layered_diamond_of_60_layers_is_checked_in_linear_time() {
    let layers = 60;
    // Layer L holds services 2(59-L) and 2(59-L)+1.
    let index = |layer: usize, k: usize| 2 * (layers - 1 - layer) + k;
    let mut policies = Vec::new();
    for i in 0..2 * layers {
        let layer = layers - 1 - i / 2;
        let name = format!("s{layer}-{}", i % 2);
        // The bottom layer waits for a probe: nothing above it starts.
        let mut p = match layer {
            0 => probed(&name, &[], ProbeKind::Network),
            _ => svc(&name, &[index(layer - 1, 0), index(layer - 1, 1)]),
        };
        if layer == 0 {
            p.restart = RestartPolicy::Never;
            p.critical = false;
        }
        policies.push(p);
    }
    let waves = (0..layers)
        .map(|l| vec![index(l, 0), index(l, 1)])
        .collect();
    let mut r = Run::new(policies, run_policy(false, waves));
    let bottom = [index(0, 0), index(0, 1)];
    let started = spawns(&r.step(0, Event::Tick));
    assert_eq!(started, bottom.map(Who::Service));
    assert!(!r.sup.snapshot().shutting_down);
    let (p0, p1) = (r.pid(bottom[0]), r.pid(bottom[1]));
    r.exit(5, p0, ExitStatus::Code(1));
    assert!(!r.sup.snapshot().shutting_down, "s0-1 may still get ready");
    r.exit(6, p1, ExitStatus::Code(1));
    assert!(
        r.sup.snapshot().shutting_down,
        "every other service is blocked for good"
    );
}
