//! Scripted runs of operator requests (SPEC section 10): every verb
//! against every state, waiting rules, ordering of several services,
//! requests during a shutdown, and what `down` means for exiting.

use super::signal::{SIGCONT, SIGKILL, SIGTERM};
use super::snapshot::Phase;
use super::tests::*;
use super::types::*;

const HUP: i32 = 1;

pub(super) fn request(id: u64, verb: Verb, services: &[usize]) -> Event {
    Event::Control(Request {
        id,
        verb,
        services: services.to_vec(),
        wait: true,
        timeout: ms(60_000),
    })
}

fn replies(acts: &[Action]) -> Vec<Reply> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Reply(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The one reply among the actions.
fn the_reply(acts: &[Action]) -> Reply {
    let all = replies(acts);
    assert_eq!(all.len(), 1, "one reply expected: {acts:?}");
    all.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn details(r: &Reply) -> Vec<(usize, bool, String)> {
    r.services
        .iter()
        .map(|o| (o.service, o.ok, o.detail.clone()))
        .collect()
}

fn view(r: &Run, i: usize) -> crate::core::snapshot::ServiceView {
    r.sup.snapshot().services[i].clone()
}

fn quiet(name: &str, deps: &[usize]) -> ServicePolicy {
    let mut p = svc(name, deps);
    p.critical = false;
    p
}

fn oneshot(name: &str) -> ServicePolicy {
    let mut p = svc(name, &[]);
    p.oneshot = true;
    p.restart = RestartPolicy::Never;
    p
}

/// db, and web depending on it, both running.
fn db_web() -> Run {
    let mut r = Run::new(
        vec![svc("db", &[]), svc("web", &[0])],
        run_policy(false, vec![vec![0], vec![1]]),
    );
    r.step(0, Event::Tick);
    assert_eq!((r.phase(0), r.phase(1)), (Phase::Running, Phase::Running));
    r
}

// ---- stop ----

#[test]
fn stop_of_a_running_critical_service_makes_it_down_and_names_its_dependents() {
    let mut r = db_web();
    let db = r.pid(0);
    let acts = r.step(10, request(1, Verb::Stop, &[0]));
    assert_eq!(signals(&acts), vec![(db, SIGTERM)]);
    assert_eq!(conts(&acts), vec![db]);
    assert!(replies(&acts).is_empty(), "replied when reaped");
    assert_eq!(r.phase(0), Phase::Stopping);
    assert!(!view(&r, 0).wanted_up);
    let acts = r.exit(20, db, ExitStatus::Signal(SIGTERM));
    let reply = the_reply(&acts);
    assert!(reply.ok && reply.refused.is_none());
    assert_eq!(
        details(&reply),
        vec![(
            0,
            true,
            "down; still running and depending on it: web".to_string()
        )]
    );
    assert!(spawns(&acts).is_empty(), "not restarted");
    assert_eq!((r.phase(0), r.phase(1)), (Phase::Down, Phase::Running));
    let snap = r.sup.snapshot();
    assert!(!snap.shutting_down, "critical, but stopped on request");
    assert!(snap.healthy() && snap.ready());
    assert_eq!(view(&r, 0).restarts, 0);
    assert_eq!(view(&r, 0).last_exit, Some(ExitStatus::Signal(SIGTERM)));
    assert_eq!(r.sup.next_deadline(), None, "nothing timed while down");
    assert!(r.step(99_000, Event::Tick).is_empty());
}

#[test]
fn stop_kills_after_the_stop_timeout_and_waits_for_the_group() {
    let mut p = svc("web", &[]);
    p.stop_signal = 3;
    p.stop_timeout = ms(300);
    let mut r = Run::new(vec![p], run_policy(false, vec![vec![0]]));
    r.empty_groups = false;
    r.step(0, Event::Tick);
    let web = r.pid(0);
    assert_eq!(
        signals(&r.step(10, request(1, Verb::Stop, &[0]))),
        vec![(web, 3)]
    );
    assert_eq!(r.sup.next_deadline(), Some(r.at(310)));
    assert!(signals(&r.step(309, Event::Tick)).is_empty());
    assert_eq!(signals(&r.step(310, Event::Tick)), vec![(web, SIGKILL)]);
    let acts = r.exit(320, web, ExitStatus::Signal(SIGKILL));
    assert!(replies(&acts).is_empty(), "its group is not empty yet");
    assert_eq!(r.phase(0), Phase::Stopping);
    let acts = r.step(330, Event::GroupGone { pgid: web });
    assert!(the_reply(&acts).ok);
    assert_eq!(r.phase(0), Phase::Down);
    assert!(!r.sup.snapshot().shutting_down, "all down: rinit waits");
    // An operator's SIGKILL is not the shutdown's: no status 1 later.
    r.step(400, Event::Signal(SIGTERM));
    assert_eq!(exit_code(&r.step(401, Event::NoChildren)), Some(0));
}

#[test]
fn stop_while_the_spawn_is_not_yet_reported_stops_it_when_it_is() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(false, vec![vec![0]]));
    assert_eq!(spawns(&r.ev(0, Event::Tick)), vec![Who::Service(0)]);
    let acts = r.ev(1, request(1, Verb::Stop, &[0]));
    assert!(
        acts.is_empty(),
        "nothing to signal yet, nothing done: {acts:?}"
    );
    assert_eq!(r.phase(0), Phase::Starting);
    let acts = r.ev(
        2,
        Event::Spawned {
            who: Who::Service(0),
            pid: 77,
        },
    );
    assert_eq!(signals(&acts), vec![(77, SIGTERM)], "its own stop signal");
    assert_eq!(r.phase(0), Phase::Stopping, "never reported running");
    let acts = r.exit(3, 77, ExitStatus::Signal(SIGTERM));
    assert!(the_reply(&acts).ok);
    assert_eq!(r.phase(0), Phase::Down);
}

#[test]
fn stop_while_starting_behind_a_probe_ends_the_probe() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Exec)],
        run_policy(false, vec![vec![0]]),
    );
    r.step(0, Event::Tick);
    let db = r.pid(0);
    let probe = r.next_pid;
    assert_eq!(r.phase(0), Phase::Starting);
    let acts = r.step(1, request(1, Verb::Stop, &[0]));
    assert_eq!(signals(&acts), vec![(probe, SIGKILL), (db, SIGTERM)]);
    let acts = r.exit(2, db, ExitStatus::Signal(SIGTERM));
    assert!(the_reply(&acts).ok);
    r.exit(3, probe, ExitStatus::Signal(SIGKILL));
    assert_eq!(r.sup.snapshot().orphans_reaped, 0, "the probe was expected");
}

#[test]
fn stop_of_a_service_without_a_process_is_down_at_once() {
    // backoff, failed, done, stopped, waiting, down.
    let mut never = quiet("never", &[]);
    never.restart = RestartPolicy::Never;
    let mut r = Run::new(
        vec![
            quiet("crashy", &[]),
            never.clone(),
            oneshot("job"),
            never,
            quiet("waits", &[5]),
            probed("slow", &[], ProbeKind::Network),
        ],
        run_policy(false, vec![vec![0, 1, 2, 3, 5], vec![4]]),
    );
    r.step(0, Event::Tick);
    let (crashy, fails, job, stops) = (r.pid(0), r.pid(1), r.pid(2), r.pid(3));
    r.exit(1, crashy, ExitStatus::Code(1));
    r.exit(1, fails, ExitStatus::Code(2));
    r.exit(1, job, ExitStatus::Code(0));
    r.exit(1, stops, ExitStatus::Code(0));
    let phases: Vec<Phase> = (0..5).map(|i| r.phase(i)).collect();
    assert_eq!(
        phases,
        [
            Phase::Backoff,
            Phase::Failed,
            Phase::Done,
            Phase::Stopped,
            Phase::Waiting
        ]
    );
    let acts = r.step(2, request(1, Verb::Stop, &[0, 1, 2, 3, 4]));
    let reply = the_reply(&acts);
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.services.len(), 5);
    assert!((0..5).all(|i| r.phase(i) == Phase::Down));
    assert!(signals(&acts).is_empty() && spawns(&acts).is_empty());
    assert!(
        spawns(&r.step(5000, Event::Tick)).is_empty(),
        "no backoff left"
    );
    let snap = r.sup.snapshot();
    assert!(snap.healthy(), "down is not failing");
    assert!(!snap.shutting_down);
    let again = r.step(6000, request(2, Verb::Stop, &[1]));
    assert_eq!(details(&the_reply(&again)), vec![(1, true, "down".into())]);
}

#[test]
fn stop_during_a_drain_after_a_crash_ends_down_not_restarted() {
    let mut r = Run::new(vec![svc("nginx", &[])], run_policy(false, vec![vec![0]]));
    r.empty_groups = false;
    r.step(0, Event::Tick);
    let master = r.pid(0);
    r.exit(10, master, ExitStatus::Signal(SIGKILL));
    assert_eq!(r.phase(0), Phase::Stopping);
    let acts = r.step(11, request(1, Verb::Stop, &[0]));
    assert!(replies(&acts).is_empty() && signals(&acts).is_empty());
    let acts = r.step(20, Event::GroupGone { pgid: master });
    assert!(the_reply(&acts).ok);
    assert!(spawns(&acts).is_empty());
    assert_eq!(r.phase(0), Phase::Down);
    assert_eq!(view(&r, 0).restarts, 0, "not a crash restart");
    assert!(!r.sup.snapshot().shutting_down);
}

#[test]
fn several_stops_go_dependents_first_each_after_the_previous_is_gone() {
    let mut r = db_web();
    let (db, web) = (r.pid(0), r.pid(1));
    let acts = r.step(10, request(1, Verb::Stop, &[0, 1]));
    assert_eq!(signals(&acts), vec![(web, SIGTERM)], "db waits for web");
    let acts = r.exit(20, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(db, SIGTERM)]);
    assert!(replies(&acts).is_empty());
    let acts = r.exit(30, db, ExitStatus::Signal(SIGTERM));
    let reply = the_reply(&acts);
    assert_eq!(
        details(&reply),
        vec![(1, true, "down".into()), (0, true, "down".into())],
        "in the order handled; no dependent left running"
    );
}

#[test]
fn a_stop_whose_request_timed_out_still_happens_in_order() {
    let mut r = db_web();
    let (db, web) = (r.pid(0), r.pid(1));
    let acts = r.step(
        10,
        Event::Control(Request {
            id: 1,
            verb: Verb::Stop,
            services: vec![0, 1],
            wait: true,
            timeout: ms(100),
        }),
    );
    assert_eq!(signals(&acts), vec![(web, SIGTERM)]);
    let reply = the_reply(&r.step(110, Event::Tick));
    assert_eq!(
        details(&reply),
        vec![
            (1, false, "timed out waiting for it to stop".into()),
            (0, false, "timed out waiting for it to stop".into())
        ]
    );
    assert!(r.sup.pending.is_empty());
    let acts = r.exit(200, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(
        signals(&acts),
        vec![(db, SIGTERM)],
        "still stopped, after web"
    );
    r.exit(210, db, ExitStatus::Signal(SIGTERM));
    assert_eq!((r.phase(0), r.phase(1)), (Phase::Down, Phase::Down));
}

// ---- start ----

#[test]
fn start_of_a_down_service_brings_it_up_and_replies_when_ready() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Network)],
        run_policy(false, vec![vec![0]]),
    );
    r.step(0, Event::Tick);
    let db = r.pid(0);
    r.step(1, request(1, Verb::Stop, &[0]));
    r.exit(2, db, ExitStatus::Signal(SIGTERM));
    assert_eq!(r.phase(0), Phase::Down);
    let acts = r.step(10, request(2, Verb::Start, &[0]));
    assert_eq!(spawns(&acts), vec![Who::Service(0)]);
    assert!(replies(&acts).is_empty(), "waits for the probe");
    assert!(view(&r, 0).wanted_up);
    let generation = r.sup.snapshot().services.len() as u64 + 1;
    let acts = r.step(
        20,
        Event::ProbeResult {
            service: 0,
            generation,
            attempt: 1,
            ok: true,
        },
    );
    assert_eq!(details(&the_reply(&acts)), vec![(0, true, "ready".into())]);
    assert_eq!(r.phase(0), Phase::Running);
}

#[test]
fn start_brings_its_down_dependencies_up_first_gated_on_readiness() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Network), svc("web", &[0])],
        run_policy(false, vec![vec![0], vec![1]]),
    );
    r.step(0, Event::Tick);
    r.step(
        1,
        Event::ProbeResult {
            service: 0,
            generation: 1,
            attempt: 1,
            ok: true,
        },
    );
    let (db, web) = (r.pid(0), r.pid(1));
    r.step(2, request(1, Verb::Stop, &[1, 0]));
    r.exit(3, web, ExitStatus::Signal(SIGTERM));
    r.exit(4, db, ExitStatus::Signal(SIGTERM));
    assert_eq!((r.phase(0), r.phase(1)), (Phase::Down, Phase::Down));
    let acts = r.step(10, request(2, Verb::Start, &[1]));
    assert_eq!(spawns(&acts), vec![Who::Service(0)], "db first, alone");
    assert_eq!(r.phase(1), Phase::Waiting);
    let acts = r.step(
        20,
        Event::ProbeResult {
            service: 0,
            generation: 2,
            attempt: 1,
            ok: true,
        },
    );
    assert_eq!(spawns(&acts), vec![Who::Service(1)], "web once db is ready");
    assert_eq!(details(&the_reply(&acts)), vec![(1, true, "ready".into())]);
}

#[test]
fn start_of_a_failed_service_gets_a_fresh_window_and_backoff() {
    let mut p = quiet("a", &[]);
    p.max_restarts = 1;
    let mut r = Run::new(
        vec![p, svc("company", &[])],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let a = r.pid(0);
    r.exit(10, a, ExitStatus::Code(1));
    r.step(110, Event::Tick);
    let a = r.pid(0);
    r.exit(120, a, ExitStatus::Code(1));
    assert_eq!(r.phase(0), Phase::Failed);
    assert!(!r.sup.snapshot().shutting_down, "not critical");
    let acts = r.step(130, request(1, Verb::Start, &[0]));
    assert_eq!(spawns(&acts), vec![Who::Service(0)], "no backoff first");
    assert!(the_reply(&acts).ok, "ready at once without a probe");
    let a = r.pid(0);
    r.exit(140, a, ExitStatus::Code(1));
    assert_eq!(r.phase(0), Phase::Backoff, "a fresh window: restarted");
    assert_eq!(
        r.sup.next_deadline(),
        Some(r.at(240)),
        "and the backoff starts over at its initial delay"
    );
    assert_eq!(view(&r, 0).restarts, 2);
}

#[test]
fn start_of_what_is_up_or_coming_up() {
    let mut r = Run::new(
        vec![
            svc("up", &[]),
            probed("starting", &[], ProbeKind::Network),
            svc("waiting", &[1]),
            quiet("backoff", &[]),
        ],
        run_policy(false, vec![vec![0, 1, 3], vec![2]]),
    );
    r.step(0, Event::Tick);
    let b = r.pid(3);
    r.exit(1, b, ExitStatus::Code(1));
    let phases: Vec<Phase> = (0..4).map(|i| r.phase(i)).collect();
    assert_eq!(
        phases,
        [
            Phase::Running,
            Phase::Starting,
            Phase::Waiting,
            Phase::Backoff
        ]
    );
    let acts = r.step(2, request(1, Verb::Start, &[0]));
    assert_eq!(
        details(&the_reply(&acts)),
        vec![(0, true, "already up".into())]
    );
    assert!(spawns(&acts).is_empty());
    let acts = r.step(3, request(2, Verb::Start, &[1, 2, 3]));
    assert!(replies(&acts).is_empty() && spawns(&acts).is_empty());
    let acts = r.step(101, Event::Tick);
    assert_eq!(
        spawns(&acts),
        vec![Who::Service(3)],
        "backoff runs its course"
    );
    let acts = r.step(
        102,
        Event::ProbeResult {
            service: 1,
            generation: 1,
            attempt: 1,
            ok: true,
        },
    );
    assert_eq!(spawns(&acts), vec![Who::Service(2)]);
    let reply = the_reply(&acts);
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        reply.services.iter().map(|o| o.service).collect::<Vec<_>>(),
        vec![1, 3, 2],
        "dependencies first"
    );
}

#[test]
fn start_of_a_done_oneshot_runs_it_again_and_replies_when_done() {
    // With company: a lone oneshot's end would end rinit.
    let mut r = Run::new(
        vec![oneshot("job"), svc("web", &[])],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let job = r.pid(0);
    r.exit(5, job, ExitStatus::Code(0));
    assert_eq!(r.phase(0), Phase::Done);
    let acts = r.step(10, request(1, Verb::Start, &[0]));
    assert_eq!(spawns(&acts), vec![Who::Service(0)]);
    assert!(replies(&acts).is_empty());
    assert!(!view(&r, 0).ready);
    let job = r.pid(0);
    let acts = r.exit(20, job, ExitStatus::Code(0));
    assert_eq!(details(&the_reply(&acts)), vec![(0, true, "done".into())]);
    assert!(view(&r, 0).ready);
}

#[test]
fn start_that_ends_in_failure_or_a_timeout_says_so() {
    let mut bad = probed("bad", &[], ProbeKind::Network);
    bad.critical = false;
    bad.restart = RestartPolicy::Never;
    let mut r = Run::new(
        vec![bad, probed("slow", &[], ProbeKind::Network)],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let (bad, slow) = (r.pid(0), r.pid(1));
    r.step(1, request(1, Verb::Stop, &[0, 1]));
    r.exit(2, bad, ExitStatus::Signal(SIGTERM));
    r.exit(2, slow, ExitStatus::Signal(SIGTERM));
    let acts = r.step(
        10,
        Event::Control(Request {
            id: 2,
            verb: Verb::Start,
            services: vec![0, 1],
            wait: true,
            timeout: ms(1000),
        }),
    );
    assert_eq!(spawns(&acts).len(), 2);
    let bad = r.pid(0);
    assert!(replies(&r.exit(20, bad, ExitStatus::Code(3))).is_empty());
    assert_eq!(r.phase(0), Phase::Failed);
    assert_eq!(r.sup.next_deadline().map(|d| d <= r.at(1010)), Some(true));
    let acts = r.step(1010, Event::Tick);
    let reply = the_reply(&acts);
    assert!(!reply.ok);
    assert_eq!(
        details(&reply),
        vec![
            (0, false, "failed (exit code 3)".into()),
            (1, false, "timed out waiting for ready".into())
        ]
    );
}

// ---- restart ----

#[test]
fn restart_is_not_a_crash_restart_and_leaves_the_backoff_alone() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let a = r.pid(0);
    r.exit(10, a, ExitStatus::Code(1));
    r.step(110, Event::Tick);
    assert_eq!((r.phase(0), view(&r, 0).restarts), (Phase::Running, 1));
    let a = r.pid(0);
    let acts = r.step(200, request(1, Verb::Restart, &[0]));
    assert_eq!(signals(&acts), vec![(a, SIGTERM)]);
    assert!(replies(&acts).is_empty());
    let acts = r.exit(210, a, ExitStatus::Signal(SIGTERM));
    assert_eq!(spawns(&acts), vec![Who::Service(0)], "at once, no backoff");
    assert_eq!(details(&the_reply(&acts)), vec![(0, true, "ready".into())]);
    let v = view(&r, 0);
    assert_eq!((v.restarts, v.restarts_operator), (1, 1));
    // The next crash continues the backoff where it was: the second delay.
    let a = r.pid(0);
    r.exit(220, a, ExitStatus::Code(1));
    assert_eq!(r.sup.next_deadline(), Some(r.at(420)));
    assert_eq!(view(&r, 0).restarts, 2);
}

#[test]
fn restart_of_dependency_and_dependent_stops_top_down_and_starts_bottom_up() {
    let mut r = db_web();
    let (db, web) = (r.pid(0), r.pid(1));
    let acts = r.step(10, request(1, Verb::Restart, &[0, 1]));
    assert_eq!(signals(&acts), vec![(web, SIGTERM)]);
    let acts = r.exit(20, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(db, SIGTERM)], "db after web is gone");
    assert!(spawns(&acts).is_empty(), "web waits for db to come back");
    let acts = r.exit(30, db, ExitStatus::Signal(SIGTERM));
    assert_eq!(spawns(&acts), vec![Who::Service(0), Who::Service(1)]);
    let reply = the_reply(&acts);
    assert!(reply.ok);
    assert_eq!((r.phase(0), r.phase(1)), (Phase::Running, Phase::Running));
}

#[test]
fn restart_of_services_without_a_process_starts_them() {
    let mut r = Run::new(
        vec![quiet("crashy", &[]), svc("b", &[])],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let (crashy, b) = (r.pid(0), r.pid(1));
    r.exit(1, crashy, ExitStatus::Code(1));
    r.step(2, request(1, Verb::Stop, &[1]));
    r.exit(3, b, ExitStatus::Signal(SIGTERM));
    assert_eq!((r.phase(0), r.phase(1)), (Phase::Backoff, Phase::Down));
    let acts = r.step(4, request(2, Verb::Restart, &[0, 1]));
    assert_eq!(spawns(&acts), vec![Who::Service(0), Who::Service(1)]);
    assert!(the_reply(&acts).ok);
    assert_eq!(view(&r, 0).restarts_operator, 1);
}

#[test]
fn restart_while_the_spawn_is_not_yet_reported() {
    let mut r = Run::new(vec![svc("a", &[])], run_policy(false, vec![vec![0]]));
    r.ev(0, Event::Tick);
    r.ev(1, request(1, Verb::Restart, &[0]));
    let acts = r.step(
        2,
        Event::Spawned {
            who: Who::Service(0),
            pid: 77,
        },
    );
    assert_eq!(signals(&acts), vec![(77, SIGTERM)]);
    let acts = r.exit(3, 77, ExitStatus::Signal(SIGTERM));
    assert_eq!(spawns(&acts), vec![Who::Service(0)]);
    assert!(the_reply(&acts).ok);
}

#[test]
fn start_during_a_requested_stop_brings_it_back_once_gone() {
    let mut r = db_web();
    let db = r.pid(0);
    r.step(10, request(1, Verb::Stop, &[0]));
    let acts = r.step(11, request(2, Verb::Start, &[0]));
    assert!(spawns(&acts).is_empty(), "not while the old one runs");
    let stop = the_reply(&acts);
    assert_eq!(
        (stop.id, details(&stop)),
        (
            1,
            vec![(0, false, "started again before it was down".into())]
        )
    );
    let acts = r.exit(20, db, ExitStatus::Signal(SIGTERM));
    assert_eq!(spawns(&acts), vec![Who::Service(0)]);
    let start = the_reply(&acts);
    assert!(start.id == 2 && start.ok);
    assert_eq!(view(&r, 0).restarts, 0);
}

// ---- signal ----

#[test]
fn signal_reaches_only_live_groups_whatever_their_forward() {
    let mut a = svc("a", &[]);
    a.forward = Forward::Only(vec![]);
    let mut r = Run::new(
        vec![a, quiet("b", &[]), svc("c", &[])],
        run_policy(false, vec![vec![0, 1, 2]]),
    );
    r.empty_groups = false;
    r.step(0, Event::Tick);
    let (a, b, c) = (r.pid(0), r.pid(1), r.pid(2));
    r.exit(1, b, ExitStatus::Code(1));
    r.exit(1, c, ExitStatus::Code(1));
    r.step(2, Event::GroupGone { pgid: b });
    assert_eq!((r.phase(1), r.phase(2)), (Phase::Backoff, Phase::Stopping));
    let acts = r.step(3, request(1, Verb::Signal(HUP), &[0, 1, 2]));
    assert_eq!(signals(&acts), vec![(a, HUP)], "no pid of a reaped leader");
    let reply = the_reply(&acts);
    assert!(!reply.ok);
    assert_eq!(
        details(&reply),
        vec![
            (0, true, "sent SIGHUP".into()),
            (1, false, "not running".into()),
            (2, false, "not running".into())
        ]
    );
    let _ = c;
}

// ---- no wait, shutdown ----

#[test]
fn no_wait_replies_when_accepted_and_still_does_the_work() {
    let mut r = db_web();
    let db = r.pid(0);
    let acts = r.step(
        10,
        Event::Control(Request {
            id: 7,
            verb: Verb::Stop,
            services: vec![0],
            wait: false,
            timeout: ms(1000),
        }),
    );
    let reply = the_reply(&acts);
    assert_eq!(details(&reply), vec![(0, true, "accepted".into())]);
    assert_eq!(signals(&acts), vec![(db, SIGTERM)]);
    let acts = r.exit(20, db, ExitStatus::Signal(SIGTERM));
    assert!(replies(&acts).is_empty(), "answered once only");
    assert_eq!(r.phase(0), Phase::Down);
    assert_eq!(r.sup.next_deadline(), None);
}

#[test]
fn every_verb_is_refused_during_a_shutdown() {
    let mut r = db_web();
    r.step(10, Event::Signal(SIGTERM));
    for (id, verb) in [
        (1, Verb::Start),
        (2, Verb::Stop),
        (3, Verb::Restart),
        (4, Verb::Signal(HUP)),
    ] {
        let acts = r.step(11, request(id, verb, &[0]));
        let reply = the_reply(&acts);
        assert_eq!(reply.id, id);
        assert!(!reply.ok);
        assert_eq!(reply.refused.as_deref(), Some("rinit is shutting down"));
        assert!(signals(&acts).is_empty() && spawns(&acts).is_empty());
    }
}

#[test]
fn requests_still_waiting_are_answered_when_a_shutdown_begins() {
    let mut r = Run::new(
        vec![svc("a", &[]), probed("slow", &[], ProbeKind::Network)],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    r.step(1, request(1, Verb::Start, &[0, 1]));
    let acts = r.step(2, Event::Signal(SIGTERM));
    let reply = the_reply(&acts);
    assert!(!reply.ok && reply.refused.is_none());
    assert_eq!(
        details(&reply),
        vec![
            (0, true, "already up".into()),
            (1, false, "interrupted: rinit is shutting down".into())
        ]
    );
}

// ---- exiting with down services ----

#[test]
fn with_every_service_down_rinit_waits() {
    let mut r = db_web();
    let (db, web) = (r.pid(0), r.pid(1));
    r.step(10, request(1, Verb::Stop, &[0, 1]));
    r.exit(20, web, ExitStatus::Signal(SIGTERM));
    r.exit(30, db, ExitStatus::Signal(SIGTERM));
    r.step(31, Event::NoChildren);
    assert!((0..2).all(|i| r.phase(i) == Phase::Down));
    assert!(!r.sup.snapshot().shutting_down);
    assert_eq!(r.sup.next_deadline(), None);
    assert_eq!(spawns(&r.step(40, request(2, Verb::Start, &[1]))).len(), 2);
}

#[test]
fn stopping_the_last_running_service_does_not_end_rinit() {
    let mut done = quiet("once", &[]);
    done.restart = RestartPolicy::Never;
    let mut r = Run::new(
        vec![done, svc("web", &[])],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let (once, web) = (r.pid(0), r.pid(1));
    r.exit(1, once, ExitStatus::Code(0));
    assert_eq!(r.phase(0), Phase::Stopped);
    r.step(2, request(1, Verb::Stop, &[1]));
    r.exit(3, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(r.phase(1), Phase::Down);
    assert!(
        !r.sup.snapshot().shutting_down,
        "an operator's stop, not an end"
    );
}

#[test]
fn a_down_service_keeps_rinit_up_when_the_rest_ended_on_its_own() {
    let mut once = quiet("once", &[]);
    once.restart = RestartPolicy::Never;
    let mut r = Run::new(
        vec![svc("web", &[]), once],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let (web, once) = (r.pid(0), r.pid(1));
    r.step(1, request(1, Verb::Stop, &[0]));
    r.exit(2, web, ExitStatus::Signal(SIGTERM));
    r.exit(3, once, ExitStatus::Code(4));
    assert_eq!((r.phase(0), r.phase(1)), (Phase::Down, Phase::Failed));
    assert!(
        !r.sup.snapshot().shutting_down,
        "web can still be started: rinit waits"
    );
}

#[test]
fn once_the_down_service_is_started_and_ends_on_its_own_rinit_exits() {
    let mut p = quiet("web", &[]);
    p.restart = RestartPolicy::Never;
    let mut once = quiet("once", &[]);
    once.restart = RestartPolicy::Never;
    let mut r = Run::new(vec![p, once], run_policy(false, vec![vec![0, 1]]));
    r.step(0, Event::Tick);
    let (web, once) = (r.pid(0), r.pid(1));
    r.step(1, request(1, Verb::Stop, &[0]));
    r.exit(2, web, ExitStatus::Signal(SIGTERM));
    r.exit(3, once, ExitStatus::Code(4));
    assert!(!r.sup.snapshot().shutting_down);
    r.step(10, request(2, Verb::Start, &[0]));
    let web = r.pid(0);
    r.exit(20, web, ExitStatus::Code(0));
    assert_eq!(r.phase(0), Phase::Stopped);
    assert!(r.sup.snapshot().shutting_down, "nothing can run any more");
    assert_eq!(exit_code(&r.step(21, Event::NoChildren)), Some(4));
}

#[test]
fn a_main_command_does_not_wait_for_a_service_stopped_during_boot() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Network)],
        run_policy(true, vec![vec![0]]),
    );
    r.step(0, Event::Tick);
    let acts = r.step(1, request(1, Verb::Stop, &[0]));
    assert_eq!(spawns(&acts), vec![Who::Main], "db is no longer wanted");
}

#[test]
fn sigcont_follows_every_requested_stop_signal() {
    let mut r = db_web();
    let web = r.pid(1);
    let acts = r.step(1, request(1, Verb::Stop, &[1]));
    assert!(acts.contains(&Action::SignalGroup {
        pgid: web,
        signal: SIGCONT
    }));
}

// ---- the matrix: every verb against every state ----

const STATES: [Phase; 9] = [
    Phase::Waiting,
    Phase::Starting,
    Phase::Running,
    Phase::Backoff,
    Phase::Failed,
    Phase::Stopping,
    Phase::Stopped,
    Phase::Done,
    Phase::Down,
];

/// Service k is in `STATES[k]` (stopping: what is left of its group after
/// a crash is draining); 9 is a dependency of 0 that never gets ready.
fn every_state() -> Run {
    let mut never = quiet("failed", &[]);
    never.restart = RestartPolicy::Never;
    let mut stopped = never.clone();
    stopped.name = "stopped".to_string();
    let mut r = Run::new(
        vec![
            quiet("waiting", &[9]),
            probed("starting", &[], ProbeKind::Network),
            svc("running", &[]),
            quiet("backoff", &[]),
            never,
            quiet("stopping", &[]),
            stopped,
            oneshot("done"),
            svc("down", &[]),
            probed("slow", &[], ProbeKind::Network),
        ],
        run_policy(false, vec![vec![1, 2, 3, 4, 5, 6, 7, 8, 9], vec![0]]),
    );
    r.empty_groups = false;
    r.step(0, Event::Tick);
    let pids: Vec<i32> = (1..9).map(|i| r.pid(i)).collect();
    let settle = |r: &mut Run, k: usize, status: ExitStatus| {
        r.exit(1, pids[k - 1], status);
        r.step(1, Event::GroupGone { pgid: pids[k - 1] });
    };
    settle(&mut r, 3, ExitStatus::Code(1));
    settle(&mut r, 4, ExitStatus::Code(3));
    r.exit(1, pids[4], ExitStatus::Code(1));
    settle(&mut r, 6, ExitStatus::Code(0));
    settle(&mut r, 7, ExitStatus::Code(0));
    r.step(1, request(99, Verb::Stop, &[8]));
    settle(&mut r, 8, ExitStatus::Signal(SIGTERM));
    let phases: Vec<Phase> = (0..9).map(|i| r.phase(i)).collect();
    assert_eq!(phases, STATES);
    r
}

/// What one verb did at once to the service in state `STATES[k]`.
#[derive(Debug, PartialEq)]
struct Seen {
    reply: Option<(bool, String)>,
    phase: Phase,
    signalled: bool,
    spawned: bool,
}

fn apply(verb: Verb, k: usize) -> (Run, Seen) {
    let mut r = every_state();
    let acts = r.step(2, request(1, verb, &[k]));
    let reply = replies(&acts)
        .first()
        .and_then(|r| r.services.first().map(|o| (o.ok, o.detail.clone())));
    let seen = Seen {
        reply,
        phase: r.phase(k),
        signalled: !signals(&acts).is_empty(),
        spawned: spawns(&acts).contains(&Who::Service(k)),
    };
    (r, seen)
}

fn draining_group(r: &Run, k: usize) -> i32 {
    let group = r.sup.services[k].draining().map(|(pgid, _)| pgid);
    group.unwrap_or_else(|| panic!("service {k} is not draining"))
}

fn seen(reply: Option<(bool, &str)>, phase: Phase, signalled: bool, spawned: bool) -> Seen {
    Seen {
        reply: reply.map(|(ok, d)| (ok, d.to_string())),
        phase,
        signalled,
        spawned,
    }
}

#[test]
fn stop_against_every_state() {
    let down = Some((true, "down"));
    let expect = [
        seen(down, Phase::Down, false, false),
        seen(None, Phase::Stopping, true, false),
        seen(None, Phase::Stopping, true, false),
        seen(down, Phase::Down, false, false),
        seen(down, Phase::Down, false, false),
        seen(None, Phase::Stopping, false, false),
        seen(down, Phase::Down, false, false),
        seen(down, Phase::Down, false, false),
        seen(down, Phase::Down, false, false),
    ];
    for (k, want) in expect.into_iter().enumerate() {
        let (_, got) = apply(Verb::Stop, k);
        assert_eq!(got, want, "stop of a {:?} service", STATES[k]);
    }
    // The drain ends down, not in a restart.
    let (mut r, _) = apply(Verb::Stop, 5);
    let pgid = draining_group(&r, 5);
    let acts = r.step(3, Event::GroupGone { pgid });
    assert!(the_reply(&acts).ok);
    assert_eq!(r.phase(5), Phase::Down);
}

#[test]
fn start_against_every_state() {
    let ready = Some((true, "ready"));
    let expect = [
        seen(None, Phase::Waiting, false, false),
        seen(None, Phase::Starting, false, false),
        seen(Some((true, "already up")), Phase::Running, false, false),
        seen(None, Phase::Backoff, false, false),
        seen(ready, Phase::Running, false, true),
        seen(None, Phase::Stopping, false, false),
        seen(ready, Phase::Running, false, true),
        seen(None, Phase::Starting, false, true),
        seen(ready, Phase::Running, false, true),
    ];
    for (k, want) in expect.into_iter().enumerate() {
        let (_, got) = apply(Verb::Start, k);
        assert_eq!(got, want, "start of a {:?} service", STATES[k]);
    }
}

#[test]
fn restart_against_every_state() {
    let ready = Some((true, "ready"));
    let expect = [
        seen(None, Phase::Waiting, false, false),
        seen(None, Phase::Stopping, true, false),
        seen(None, Phase::Stopping, true, false),
        seen(ready, Phase::Running, false, true),
        seen(ready, Phase::Running, false, true),
        seen(None, Phase::Stopping, false, false),
        seen(ready, Phase::Running, false, true),
        seen(None, Phase::Starting, false, true),
        seen(ready, Phase::Running, false, true),
    ];
    for (k, want) in expect.into_iter().enumerate() {
        let (r, got) = apply(Verb::Restart, k);
        assert_eq!(got, want, "restart of a {:?} service", STATES[k]);
        assert_eq!(view(&r, k).restarts_operator, 1);
    }
    // The crash being drained is absorbed by the restart: not counted.
    let (mut r, _) = apply(Verb::Restart, 5);
    let pgid = draining_group(&r, 5);
    let acts = r.step(3, Event::GroupGone { pgid });
    assert_eq!(spawns(&acts), vec![Who::Service(5)]);
    assert!(the_reply(&acts).ok);
    assert_eq!(view(&r, 5).restarts, 0);
}

#[test]
fn signal_against_every_state() {
    for (k, phase) in STATES.into_iter().enumerate() {
        let (_, got) = apply(Verb::Signal(HUP), k);
        let live = matches!(phase, Phase::Starting | Phase::Running);
        let want = if live {
            seen(Some((true, "sent SIGHUP")), phase, true, false)
        } else {
            seen(Some((false, "not running")), phase, false, false)
        };
        assert_eq!(got, want, "signal to a {phase:?} service");
    }
}

#[test]
fn a_critical_service_in_backoff_stopped_stays_down_without_a_shutdown() {
    let mut r = Run::new(
        vec![svc("web", &[]), svc("db", &[])],
        run_policy(false, vec![vec![0, 1]]),
    );
    r.step(0, Event::Tick);
    let web = r.pid(0);
    r.exit(1, web, ExitStatus::Code(1));
    assert_eq!(r.phase(0), Phase::Backoff);
    assert!(the_reply(&r.step(2, request(1, Verb::Stop, &[0]))).ok);
    assert!(spawns(&r.step(500, Event::Tick)).is_empty());
    assert_eq!(r.phase(0), Phase::Down);
    assert!(!r.sup.snapshot().shutting_down);
}

#[test]
fn a_shutdown_takes_over_a_requested_stop_under_way() {
    let mut r = db_web();
    let (db, web) = (r.pid(0), r.pid(1));
    r.step(10, request(1, Verb::Stop, &[1]));
    let acts = r.step(20, Event::Signal(SIGTERM));
    assert_eq!(
        details(&the_reply(&acts)),
        vec![(1, false, "interrupted: rinit is shutting down".into())]
    );
    assert!(signals(&acts).is_empty(), "web already has its stop signal");
    let acts = r.exit(30, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(db, SIGTERM)], "then the next wave");
    r.exit(40, db, ExitStatus::Signal(SIGTERM));
    assert_eq!(exit_code(&r.step(41, Event::NoChildren)), Some(0));
}

#[test]
fn start_of_a_down_service_revives_a_failed_dependency_with_a_fresh_window() {
    let mut db = quiet("db", &[]);
    db.max_restarts = 0;
    let mut r = Run::new(
        vec![db, svc("web", &[0]), svc("other", &[])],
        run_policy(false, vec![vec![0, 2], vec![1]]),
    );
    r.step(0, Event::Tick);
    let (db, web) = (r.pid(0), r.pid(1));
    r.step(1, request(1, Verb::Stop, &[1]));
    r.exit(2, web, ExitStatus::Signal(SIGTERM));
    r.exit(3, db, ExitStatus::Code(1));
    assert_eq!((r.phase(0), r.phase(1)), (Phase::Failed, Phase::Down));
    let acts = r.step(4, request(2, Verb::Start, &[1]));
    assert_eq!(spawns(&acts), vec![Who::Service(0), Who::Service(1)]);
    assert_eq!(details(&the_reply(&acts)), vec![(1, true, "ready".into())]);
}
