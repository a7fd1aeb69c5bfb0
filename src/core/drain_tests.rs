//! Scripted runs for the rules about what is left of a process group
//! (SPEC section 5), SIGCONT after stop signals, spawns a shutdown must
//! not skip, the bounded wait after SIGKILL, orphan accounting and the
//! `forward` filter.

use super::shutdown::KILL_WAIT;
use super::signal::{SIGCONT, SIGINT, SIGKILL, SIGTERM};
use super::snapshot::Phase;
use super::tests::*;
use super::types::*;

/// A run whose groups keep members until the test says `GroupGone`.
fn leftovers_run(policies: Vec<ServicePolicy>, waves: Vec<Vec<usize>>) -> Run {
    let mut r = Run::new(policies, run_policy(false, waves));
    r.empty_groups = false;
    r
}

fn watches(acts: &[Action]) -> Vec<i32> {
    acts.iter()
        .filter_map(|a| match a {
            Action::WatchGroup { pgid } => Some(*pgid),
            _ => None,
        })
        .collect()
}

fn gone(r: &mut Run, t: u64, pgid: i32) -> Vec<Action> {
    r.step(t, Event::GroupGone { pgid })
}

#[test]
fn a_restart_waits_until_the_old_group_is_empty() {
    let mut p = svc("nginx", &[]);
    p.stop_signal = 3;
    p.stop_timeout = ms(500);
    let mut r = leftovers_run(vec![p], vec![vec![0]]);
    r.step(0, Event::Tick);
    let master = r.pid(0);
    let acts = r.exit(10, master, ExitStatus::Signal(SIGKILL));
    assert_eq!(watches(&acts), vec![master]);
    assert_eq!(
        leftover_signals(&acts),
        vec![(master, 3), (master, SIGCONT)],
        "the rest of the group gets the stop signal, then SIGCONT"
    );
    assert!(
        spawns(&acts).is_empty(),
        "no restart while workers are left"
    );
    assert_eq!(r.phase(0), Phase::Stopping);
    assert_eq!(r.sup.snapshot().services[0].pid, None, "the leader is dead");
    assert_eq!(r.sup.snapshot().services[0].restarts, 0);
    // Forwarded signals never reach a group whose leader is reaped.
    assert!(signals(&r.step(20, Event::Signal(SIGHUP))).is_empty());
    assert_eq!(r.sup.next_deadline(), Some(r.at(510)));
    assert_eq!(
        leftover_signals(&r.step(510, Event::Tick)),
        vec![(master, SIGKILL)]
    );
    assert!(
        r.sup.next_deadline().is_none(),
        "nothing timed until reaped"
    );
    let acts = gone(&mut r, 520, master);
    assert!(spawns(&acts).is_empty(), "the backoff starts now");
    assert_eq!(r.phase(0), Phase::Backoff);
    assert_eq!(r.sup.snapshot().services[0].restarts, 1);
    assert_eq!(spawns(&r.step(620, Event::Tick)), vec![Who::Service(0)]);
}

#[test]
fn an_empty_group_is_settled_at_once_and_a_stray_report_is_ignored() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let a = r.pid(0);
    r.exit(10, a, ExitStatus::Code(1));
    assert_eq!(r.phase(0), Phase::Backoff);
    gone(&mut r, 11, a);
    gone(&mut r, 11, 4242);
    assert_eq!(r.phase(0), Phase::Backoff);
    assert_eq!(r.sup.snapshot().services[0].restarts, 1);
}

#[test]
fn a_oneshot_is_done_only_once_its_group_is_empty() {
    let mut job = svc("migrate", &[]);
    job.oneshot = true;
    job.restart = RestartPolicy::Never;
    let mut r = leftovers_run(vec![job, svc("web", &[0])], vec![vec![0], vec![1]]);
    r.step(0, Event::Tick);
    let m = r.pid(0);
    let acts = r.exit(10, m, ExitStatus::Code(0));
    assert!(
        spawns(&acts).is_empty(),
        "dependents wait for the leftovers"
    );
    assert_eq!(r.phase(0), Phase::Stopping);
    let acts = gone(&mut r, 20, m);
    assert_eq!(r.phase(0), Phase::Done);
    assert_eq!(spawns(&acts), vec![Who::Service(1)]);
}

#[test]
fn rinit_does_not_exit_while_a_group_drains() {
    let mut p = svc("a", &[]);
    p.restart = RestartPolicy::Never;
    let mut r = leftovers_run(vec![p], vec![vec![0]]);
    r.step(0, Event::Tick);
    let a = r.pid(0);
    let acts = r.exit(10, a, ExitStatus::Code(0));
    assert!(!acts.contains(&Action::SignalAll(SIGTERM)), "{acts:?}");
    assert!(!r.sup.snapshot().shutting_down);
    gone(&mut r, 20, a);
    assert_eq!(r.phase(0), Phase::Stopped);
    assert!(r.sup.snapshot().shutting_down, "now nothing can run");
}

#[test]
fn a_stop_wave_waits_for_the_group_not_just_the_leader() {
    let mut r = leftovers_run(
        vec![svc("db", &[]), svc("web", &[0])],
        vec![vec![0], vec![1]],
    );
    r.step(0, Event::Tick);
    r.step(0, Event::Tick);
    let (db, web) = (r.pid(0), r.pid(1));
    let acts = r.step(10, Event::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(web, SIGTERM)]);
    assert_eq!(conts(&acts), vec![web], "SIGCONT follows the stop signal");
    let acts = r.exit(20, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(watches(&acts), vec![web]);
    assert_eq!(
        leftover_signals(&acts),
        vec![(web, SIGTERM), (web, SIGCONT)],
        "again, for what started after the first or missed it"
    );
    assert!(signals(&acts).is_empty(), "db waits for web's leftovers");
    let acts = gone(&mut r, 30, web);
    assert_eq!(signals(&acts), vec![(db, SIGTERM)]);
    assert_eq!(r.phase(1), Phase::Stopped);
}

#[test]
fn leftovers_past_the_stop_timeout_in_a_shutdown_are_killed_and_count() {
    let mut p = svc("web", &[]);
    p.stop_timeout = ms(300);
    let mut r = leftovers_run(vec![p], vec![vec![0]]);
    r.step(0, Event::Tick);
    let web = r.pid(0);
    r.step(10, Event::Signal(SIGTERM));
    r.exit(20, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(r.sup.next_deadline(), Some(r.at(310)));
    assert_eq!(
        leftover_signals(&r.step(310, Event::Tick)),
        vec![(web, SIGKILL)]
    );
    gone(&mut r, 320, web);
    assert_eq!(exit_code(&r.step(321, Event::NoChildren)), Some(1));
}

#[test]
fn sigcont_follows_the_main_commands_signal() {
    let mut r = Run::new(vec![], run_policy(true, vec![]));
    r.step(0, Event::Tick);
    let m = r.main_pid();
    let acts = r.step(5, Event::Signal(SIGINT));
    assert_eq!(signals(&acts), vec![(m, SIGINT)]);
    assert_eq!(conts(&acts), vec![m]);
    let acts = r.step(9005, Event::Tick);
    assert_eq!(signals(&acts), vec![(m, SIGKILL)]);
    assert!(conts(&acts).is_empty(), "SIGKILL needs no SIGCONT");
}

#[test]
fn a_spawn_reported_after_the_shutdown_began_gets_its_stop_signal() {
    // A failing critical oneshot starts the shutdown while its sibling's
    // spawn has been requested but not yet reported.
    let mut job = svc("typo", &[]);
    job.oneshot = true;
    job.restart = RestartPolicy::Never;
    let mut db = svc("db", &[]);
    db.stop_signal = SIGINT;
    let mut r = Run::new(vec![job, db], run_policy(false, vec![vec![0, 1]]));
    assert_eq!(
        spawns(&r.ev(0, Event::Tick)),
        vec![Who::Service(0), Who::Service(1)]
    );
    let failed = Event::SpawnFailed {
        who: Who::Service(0),
        pid: None,
        code: 127,
    };
    r.ev(1, failed);
    assert!(r.sup.snapshot().shutting_down);
    let acts = r.ev(
        1,
        Event::Spawned {
            who: Who::Service(1),
            pid: 77,
        },
    );
    assert_eq!(signals(&acts), vec![(77, SIGINT)], "its own stop signal");
    assert!(!acts.contains(&Action::SignalAll(SIGTERM)), "not the sweep");
    r.exit(2, 77, ExitStatus::Signal(SIGINT));
    assert_eq!(exit_code(&r.step(3, Event::NoChildren)), Some(127));
}

#[test]
fn a_spawn_reported_after_the_final_sigkill_is_killed() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(false, vec![vec![0]]));
    r.ev(0, Event::Tick);
    r.ev(1, Event::Signal(SIGTERM));
    r.ev(2, Event::Signal(SIGTERM));
    let acts = r.ev(
        3,
        Event::Spawned {
            who: Who::Service(0),
            pid: 55,
        },
    );
    assert!(signals(&acts).contains(&(55, SIGKILL)), "{acts:?}");
}

#[test]
fn survivors_of_sigkill_are_logged_and_rinit_exits_1_after_the_wait() {
    let mut r = Run::new(vec![], run_policy(true, vec![]));
    r.step(0, Event::Tick);
    let m = r.main_pid();
    r.step(10, Event::Signal(SIGTERM));
    let acts = r.step(9010, Event::Tick);
    assert!(signals(&acts).contains(&(m, SIGKILL)));
    let give_up = 9010 + KILL_WAIT.as_millis() as u64;
    assert_eq!(r.sup.next_deadline(), Some(r.at(give_up)));
    assert_eq!(exit_code(&r.step(give_up - 1, Event::Tick)), None);
    let acts = r.step(give_up, Event::Tick);
    assert!(acts.contains(&Action::LogLeftovers), "{acts:?}");
    assert_eq!(exit_code(&acts), Some(1));
    assert_eq!(r.sup.next_deadline(), None);
}

#[test]
fn the_wait_after_a_second_sigterm_is_bounded_too() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    r.step(1, Event::Signal(SIGTERM));
    r.step(2, Event::Signal(SIGTERM));
    let give_up = 2 + KILL_WAIT.as_millis() as u64;
    assert_eq!(r.sup.next_deadline(), Some(r.at(give_up)));
    assert_eq!(exit_code(&r.step(give_up, Event::Tick)), Some(1));
}

#[test]
fn exec_failures_and_killed_probes_are_not_orphans() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Exec), svc("bad", &[])],
        run_policy(false, vec![vec![0, 1]]),
    );
    let acts = r.ev(0, Event::Tick);
    assert_eq!(
        spawns(&acts),
        vec![Who::Service(0), Who::Service(1)],
        "{acts:?}"
    );
    let acts = r.ev(
        0,
        Event::Spawned {
            who: Who::Service(0),
            pid: 10,
        },
    );
    assert_eq!(spawns(&acts), vec![Who::Probe(0)]);
    r.ev(
        0,
        Event::SpawnFailed {
            who: Who::Service(1),
            pid: Some(11),
            code: 126,
        },
    );
    r.ev(
        0,
        Event::Spawned {
            who: Who::Probe(0),
            pid: 12,
        },
    );
    // The probe times out (50 ms) and is killed; both are reaped later.
    assert!(signals(&r.ev(50, Event::Tick)).contains(&(12, SIGKILL)));
    for pid in [11, 12] {
        r.ev(
            60,
            Event::Exited {
                pid,
                status: ExitStatus::Signal(SIGKILL),
            },
        );
    }
    let snap = r.sup.snapshot();
    assert_eq!((snap.reaped_total, snap.orphans_reaped), (2, 0));
    r.ev(
        61,
        Event::Exited {
            pid: 999,
            status: ExitStatus::Code(0),
        },
    );
    assert_eq!(
        r.sup.snapshot().orphans_reaped,
        1,
        "a real orphan still counts"
    );
}

#[test]
fn a_reaped_failed_probe_is_not_signalled() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Exec)],
        run_policy(false, vec![vec![0]]),
    );
    r.step(0, Event::Tick);
    let probe = r.next_pid;
    let acts = r.exit(10, probe, ExitStatus::Code(1));
    assert!(signals(&acts).is_empty(), "{acts:?}");
    assert_eq!(r.sup.snapshot().orphans_reaped, 0);
}

#[test]
fn forward_filters_per_service_and_says_who_got_it() {
    let mut nginx = svc("nginx", &[]);
    nginx.forward = Forward::Only(vec![SIGHUP]);
    let mut initdb = svc("initdb", &[]);
    initdb.forward = Forward::Only(vec![]);
    let mut r = Run::new(
        vec![nginx, svc("app", &[]), initdb],
        run_policy(false, vec![vec![0, 1, 2]]),
    );
    r.step(0, Event::Tick);
    r.sup.take_notes();
    let (n, a) = (r.pid(0), r.pid(1));
    assert_eq!(
        signals(&r.step(1, Event::Signal(SIGHUP))),
        vec![(n, SIGHUP), (a, SIGHUP)]
    );
    let notes: Vec<String> = r.sup.take_notes().into_iter().map(|n| n.text).collect();
    assert!(
        notes.contains(&"forwarded SIGHUP to nginx, app (not: initdb)".to_string()),
        "{notes:?}"
    );
    assert_eq!(
        signals(&r.step(2, Event::Signal(SIGUSR1))),
        vec![(a, SIGUSR1)]
    );
    let notes: Vec<String> = r.sup.take_notes().into_iter().map(|n| n.text).collect();
    assert!(
        notes.contains(&"forwarded SIGUSR1 to app (not: nginx, initdb)".to_string()),
        "{notes:?}"
    );
    // The shutdown signals are not filtered: every service is stopped.
    r.step(3, Event::Signal(SIGTERM));
    assert_eq!(r.phase(2), Phase::Stopping);
}
