//! Reloads applied by the core (SPEC section 11), without processes: which
//! pids survive, the order of stops and starts, what is forgotten, and
//! when a reload is refused.

use super::signal::SIGTERM;
use super::snapshot::{Phase, ServiceView};
use super::tests::*;
use super::types::*;

fn reload(id: u64, changes: Vec<SlotChange>) -> Event {
    Event::Reload(Box::new(Reload {
        id,
        changes,
        drain: ms(0),
        shutdown_timeout: ms(9_000),
        timeout: ms(60_000),
    }))
}

fn change(slot: usize, kind: ChangeKind, why: &str, policy: Option<ServicePolicy>) -> SlotChange {
    SlotChange {
        slot,
        kind,
        why: why.into(),
        policy,
    }
}

fn keep(slot: usize, p: ServicePolicy) -> SlotChange {
    change(slot, ChangeKind::Unchanged, "", Some(p))
}

fn by_name(r: &Run, name: &str) -> Option<ServiceView> {
    r.sup
        .snapshot()
        .services
        .into_iter()
        .find(|s| s.name == name)
}

fn pid_of(r: &Run, name: &str) -> Option<i32> {
    by_name(r, name).and_then(|s| s.pid)
}

fn reply_lines(acts: &[Action]) -> Option<(bool, Vec<String>)> {
    acts.iter().find_map(|a| match a {
        Action::Reply(r) => Some((r.ok, r.lines.clone())),
        _ => None,
    })
}

fn refusal(acts: &[Action]) -> Option<String> {
    acts.iter().find_map(|a| match a {
        Action::Reply(r) => r.refused.clone(),
        _ => None,
    })
}

/// db of `three()` with a new command.
fn restart_db() -> SlotChange {
    change(
        0,
        ChangeKind::Restart,
        "command changed",
        Some(svc("db", &[])),
    )
}

/// The three of `three()` as they are.
fn keep_all() -> Vec<SlotChange> {
    vec![
        keep(0, svc("db", &[])),
        keep(1, svc("web", &[0])),
        keep(2, svc("worker", &[])),
    ]
}

/// db, web (depends on db), worker: all running.
fn three() -> Run {
    let mut r = Run::new(
        vec![svc("db", &[]), svc("web", &[0]), svc("worker", &[])],
        run_policy(false, vec![vec![0, 2], vec![1]]),
    );
    r.step(0, Event::Tick);
    for n in ["db", "web", "worker"] {
        assert_eq!(by_name(&r, n).map(|s| s.phase), Some(Phase::Running));
    }
    r
}

#[test]
fn a_mixed_reload_touches_only_what_changed() {
    let mut r = three();
    let (db, web, worker) = (r.pid(0), r.pid(1), r.pid(2));
    let mut web_p = svc("web", &[0]);
    web_p.backoff_initial = ms(5);
    let jobs = svc("jobs", &[0]);
    let acts = r.step(
        10,
        reload(
            1,
            vec![
                restart_db(),
                change(1, ChangeKind::InPlace, "backoff changed", Some(web_p)),
                change(2, ChangeKind::Stop, "removed", None),
                change(3, ChangeKind::Start, "added", Some(jobs)),
            ],
        ),
    );
    // The removed worker and the restarted db get their stop signal; web,
    // whose backoff alone changed, keeps running on the db being restarted
    // (a changed service's unchanged dependents are not restarted).
    assert_eq!(signals(&acts), vec![(db, SIGTERM), (worker, SIGTERM)]);
    assert!(spawns(&acts).is_empty(), "jobs waits for db: {acts:?}");
    assert!(reply_lines(&acts).is_none(), "answered once done");
    let acts = r.exit(20, worker, ExitStatus::Signal(SIGTERM));
    assert!(by_name(&r, "worker").is_none(), "forgotten once reaped");
    assert!(reply_lines(&acts).is_none());
    let acts = r.exit(30, db, ExitStatus::Signal(SIGTERM));
    // db comes back, and jobs starts only once db is ready again.
    assert_eq!(spawns(&acts), vec![Who::Service(0), Who::Service(3)]);
    let (ok, lines) = reply_lines(&acts).expect("answered");
    assert!(ok, "{lines:?}");
    assert_eq!(
        lines,
        vec![
            "db: restarted (command changed): ready",
            "web: updated in place (backoff changed): kept running",
            "worker: removed: stopped",
            "jobs: started (added): ready",
            "reload applied",
        ]
    );
    assert_eq!(pid_of(&r, "web"), Some(web));
    assert_ne!(pid_of(&r, "db"), Some(db));
    assert_eq!(by_name(&r, "web").map(|s| s.restarts), Some(0));
    assert_eq!(by_name(&r, "db").map(|s| s.restarts_operator), Some(0));
    let jobs = by_name(&r, "jobs").expect("jobs");
    assert_eq!((jobs.id, jobs.phase), (3, Phase::Running));
}

#[test]
fn a_policy_change_applies_to_the_running_process() {
    let mut r = three();
    let web = r.pid(1);
    let mut p = svc("web", &[0]);
    p.restart = RestartPolicy::Never;
    p.critical = false;
    let acts = r.step(
        10,
        reload(
            1,
            vec![
                keep(0, svc("db", &[])),
                change(1, ChangeKind::InPlace, "restart, critical changed", Some(p)),
                keep(2, svc("worker", &[])),
            ],
        ),
    );
    assert_eq!(reply_lines(&acts).map(|(ok, _)| ok), Some(true));
    assert!(signals(&acts).is_empty());
    // The new `restart: never` decides this exit.
    let acts = r.exit(20, web, ExitStatus::Code(1));
    assert!(spawns(&acts).is_empty(), "not restarted: {acts:?}");
    assert_eq!(by_name(&r, "web").map(|s| s.phase), Some(Phase::Failed));
    assert!(!r.sup.snapshot().shutting_down, "no longer critical");
}

#[test]
fn a_no_op_reload_restarts_nothing_and_answers_at_once() {
    let mut r = three();
    let pids = (r.pid(0), r.pid(1), r.pid(2));
    for id in 1..=100 {
        let acts = r.step(id * 10, reload(id, keep_all()));
        assert!(signals(&acts).is_empty() && spawns(&acts).is_empty());
        assert_eq!(reply_lines(&acts).map(|(ok, _)| ok), Some(true));
    }
    assert_eq!(pids, (r.pid(0), r.pid(1), r.pid(2)));
    assert_eq!(r.sup.snapshot().services.len(), 3);
    assert_eq!(r.sup.next_deadline(), None, "nothing left timed");
}

#[test]
fn changed_dependency_and_dependent_stop_dependents_first_and_start_gated() {
    let mut db = probed("db", &[], ProbeKind::Network);
    db.critical = false;
    let mut r = Run::new(
        vec![db.clone(), svc("web", &[0])],
        run_policy(false, vec![vec![0], vec![1]]),
    );
    r.step(0, Event::Tick);
    let db_pid = r.pid(0);
    let generation = 1;
    r.step(
        5,
        Event::ProbeResult {
            service: 0,
            generation,
            attempt: 1,
            ok: true,
        },
    );
    let web = r.pid(1);
    let acts = r.step(
        10,
        reload(
            1,
            vec![
                change(0, ChangeKind::Restart, "env changed", Some(db)),
                change(
                    1,
                    ChangeKind::Restart,
                    "command changed",
                    Some(svc("web", &[0])),
                ),
            ],
        ),
    );
    assert_eq!(signals(&acts), vec![(web, SIGTERM)], "web first");
    let acts = r.exit(20, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(db_pid, SIGTERM)], "then db");
    assert!(spawns(&acts).is_empty());
    let acts = r.exit(30, db_pid, ExitStatus::Signal(SIGTERM));
    assert_eq!(
        spawns(&acts),
        vec![Who::Service(0)],
        "web waits for db ready"
    );
    let acts = r.step(
        40,
        Event::ProbeResult {
            service: 0,
            generation: 2,
            attempt: 1,
            ok: true,
        },
    );
    assert_eq!(spawns(&acts), vec![Who::Service(1)]);
    let (ok, lines) = reply_lines(&acts).expect("answered");
    assert!(ok);
    assert_eq!(lines[1], "web: restarted (command changed): ready");
}

#[test]
fn removed_services_stop_dependents_first_and_are_forgotten() {
    let mut r = three();
    let (db, web) = (r.pid(0), r.pid(1));
    let acts = r.step(
        10,
        reload(
            1,
            vec![
                change(0, ChangeKind::Stop, "removed", None),
                change(1, ChangeKind::Stop, "removed", None),
                keep(2, svc("worker", &[])),
            ],
        ),
    );
    assert_eq!(signals(&acts), vec![(web, SIGTERM)]);
    // Still shown, as stopping, and no longer resolvable by name.
    let view = by_name(&r, "web").expect("still shown");
    assert!(view.removed && view.phase == Phase::Stopping);
    let snap = r.sup.snapshot();
    assert!(snap.ready() && snap.healthy(), "a removal is not an outage");
    let acts = r.exit(20, web, ExitStatus::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(db, SIGTERM)]);
    let acts = r.exit(30, db, ExitStatus::Signal(SIGTERM));
    let (ok, _) = reply_lines(&acts).expect("answered");
    assert!(ok);
    let names: Vec<String> = r
        .sup
        .snapshot()
        .services
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["worker"]);
    // A request for a forgotten slot is answered, never applied.
    let acts = r.step(40, super::control_tests::request(2, Verb::Start, &[0]));
    assert!(spawns(&acts).is_empty());
    // A shutdown stops only what is left.
    let worker = r.pid(0);
    let acts = r.step(50, Event::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(worker, SIGTERM)]);
}

#[test]
fn a_down_service_stays_down_and_starts_later_with_its_new_policy() {
    let mut r = three();
    let worker = r.pid(2);
    r.step(
        5,
        Event::Control(Request {
            id: 1,
            verb: Verb::Stop,
            services: vec![2],
            wait: false,
            timeout: ms(1000),
        }),
    );
    r.exit(6, worker, ExitStatus::Signal(SIGTERM));
    let mut p = svc("worker", &[]);
    p.stop_signal = 3;
    let acts = r.step(
        10,
        reload(
            2,
            vec![
                keep(0, svc("db", &[])),
                keep(1, svc("web", &[0])),
                change(2, ChangeKind::Restart, "command changed", Some(p)),
            ],
        ),
    );
    assert!(spawns(&acts).is_empty());
    let (ok, lines) = reply_lines(&acts).expect("answered at once");
    assert!(ok);
    assert_eq!(
        lines[2],
        "worker: not restarted (command changed): down; the new config applies at its next start"
    );
    let acts = r.step(20, super::control_tests::request(3, Verb::Start, &[2]));
    assert_eq!(spawns(&acts), vec![Who::Service(2)]);
    let acts = r.step(30, super::control_tests::request(4, Verb::Stop, &[2]));
    let new = r.pid(2);
    assert_eq!(signals(&acts), vec![(new, 3)], "its new stop_signal");
}

#[test]
fn a_crash_looping_service_with_a_new_command_starts_at_once_afresh() {
    let mut p = svc("flaky", &[]);
    p.critical = false;
    p.max_restarts = 2;
    let mut r = Run::new(vec![p.clone()], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    r.exit(1, r.pid(0), ExitStatus::Code(1));
    assert_eq!(r.phase(0), Phase::Backoff);
    // Its command unchanged: answered at once, still in backoff.
    let acts = r.step(2, reload(1, vec![keep(0, p.clone())]));
    assert_eq!(reply_lines(&acts).map(|(ok, _)| ok), Some(true));
    assert_eq!(r.phase(0), Phase::Backoff);
    let acts = r.step(
        3,
        reload(
            2,
            vec![change(0, ChangeKind::Restart, "command changed", Some(p))],
        ),
    );
    assert_eq!(spawns(&acts), vec![Who::Service(0)], "no backoff wait");
    let (ok, _) = reply_lines(&acts).expect("ready at once");
    assert!(ok);
}

#[test]
fn reloads_are_refused_during_a_shutdown_and_while_one_is_applied() {
    let mut r = three();
    let acts = r.step(
        10,
        reload(
            1,
            vec![
                restart_db(),
                keep(1, svc("web", &[0])),
                keep(2, svc("worker", &[])),
            ],
        ),
    );
    assert!(reply_lines(&acts).is_none(), "under way");
    assert!(r.sup.reload_under_way());
    let acts = r.step(11, reload(2, vec![]));
    assert_eq!(
        refusal(&acts).as_deref(),
        Some(super::reload::RELOAD_UNDER_WAY)
    );
    // A shutdown answers the one under way and refuses the next.
    let acts = r.step(12, Event::Signal(SIGTERM));
    let (ok, lines) = reply_lines(&acts).expect("interrupted");
    assert!(!ok);
    assert!(
        lines[0].ends_with("interrupted: rinit is shutting down"),
        "{lines:?}"
    );
    let acts = r.step(13, reload(3, vec![]));
    assert_eq!(refusal(&acts).as_deref(), Some("rinit is shutting down"));
}

#[test]
fn the_next_shutdown_uses_the_new_graph_and_timeout() {
    let mut r = three();
    let (db, web, worker) = (r.pid(0), r.pid(1), r.pid(2));
    // worker now depends on web: it is stopped first.
    let mut ev = reload(
        1,
        vec![
            keep(0, svc("db", &[])),
            keep(1, svc("web", &[0])),
            change(
                2,
                ChangeKind::InPlace,
                "depends_on changed",
                Some(svc("worker", &[1])),
            ),
        ],
    );
    if let Event::Reload(r) = &mut ev {
        r.shutdown_timeout = ms(2_000);
    }
    r.step(10, ev);
    assert_eq!(pid_of(&r, "worker"), Some(worker));
    let acts = r.step(20, Event::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(worker, SIGTERM)]);
    let acts = r.exit(30, worker, ExitStatus::Signal(SIGTERM));
    assert_eq!(signals(&acts), vec![(web, SIGTERM)]);
    r.exit(40, web, ExitStatus::Signal(SIGTERM));
    assert!(pid_of(&r, "db").is_some());
    assert_eq!(r.sup.next_deadline(), Some(r.at(20 + 2_000)), "the new cap");
    let _ = db;
}

#[test]
fn a_restart_stops_the_old_process_by_its_old_rules() {
    let mut r = three();
    let worker = r.pid(2);
    let mut p = svc("worker", &[]);
    p.stop_signal = 3;
    let mut changes = keep_all();
    changes[2] = change(
        2,
        ChangeKind::Restart,
        "command, stop_signal changed",
        Some(p),
    );
    let acts = r.step(10, reload(1, changes));
    assert_eq!(
        signals(&acts),
        vec![(worker, SIGTERM)],
        "its old stop_signal"
    );
    r.exit(20, worker, ExitStatus::Signal(SIGTERM));
    let new = r.pid(2);
    assert_ne!(new, worker);
    let acts = r.step(30, super::control_tests::request(2, Verb::Stop, &[2]));
    assert_eq!(signals(&acts), vec![(new, 3)], "the new one's");
}
