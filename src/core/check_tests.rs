//! Liveness checks and `start_timeout` (SPEC section 12), scripted: a
//! service that stops answering is stopped with its own rules and handled
//! as a failed exit; a passing check resets the count; `/healthz` (the
//! snapshot's `healthy`) is false from the moment it is unhealthy until it
//! is ready again.

use super::signal::SIGTERM;
use super::snapshot::{LivenessView, Phase};
use super::tests::{conts, ms, probed, run_policy, signals, spawns, svc, Run};
use super::types::*;

/// A service with a network liveness check every 100 ms, 3 failures.
fn live(name: &str) -> ServicePolicy {
    let mut p = svc(name, &[]);
    p.liveness = Some(LivenessPolicy {
        probe: ProbePolicy {
            kind: ProbeKind::Network,
            interval: ms(100),
            timeout: ms(50),
        },
        failures: 3,
    });
    p
}

/// The liveness attempt a step asked for, if any.
fn liveness_attempt(acts: &[Action]) -> Option<(u64, u64)> {
    acts.iter().find_map(|a| match a {
        Action::Probe {
            generation,
            attempt,
            liveness: true,
            ..
        } => Some((*generation, *attempt)),
        _ => None,
    })
}

fn answer(r: &mut Run, t: u64, (generation, attempt): (u64, u64), ok: bool) -> Vec<Action> {
    r.step(
        t,
        Event::ProbeResult {
            service: 0,
            generation,
            attempt,
            ok,
        },
    )
}

#[test]
fn consecutive_liveness_failures_stop_the_service_and_restart_it_as_a_failure() {
    let mut r = Run::new(vec![live("web")], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let pid = r.pid(0);
    assert_eq!(
        r.phase(0),
        Phase::Running,
        "ready without a readiness probe"
    );
    assert!(
        liveness_attempt(&r.step(50, Event::Tick)).is_none(),
        "first check one interval after ready"
    );
    for (n, t) in [(1, 100), (2, 200)] {
        let attempt = liveness_attempt(&r.step(t, Event::Tick)).expect("a check is due");
        assert!(signals(&answer(&mut r, t + 10, attempt, false)).is_empty());
        let view = &r.sup.snapshot().services[0];
        assert_eq!(view.liveness, LivenessView::Failing(n));
        assert!(r.sup.snapshot().healthy(), "failing is still healthy");
    }
    let attempt = liveness_attempt(&r.step(300, Event::Tick)).expect("third check");
    let acts = answer(&mut r, 310, attempt, false);
    assert_eq!(signals(&acts), vec![(pid, SIGTERM)], "its own stop signal");
    assert_eq!(conts(&acts), vec![pid], "SIGCONT, for a stopped process");
    assert!(!r.sup.snapshot().healthy(), "unhealthy from this moment");
    assert_eq!(r.sup.snapshot().services[0].liveness_failures_total, 3);
    // It exits 0 on SIGTERM, yet the exit counts as a failure: restart.
    r.exit(320, pid, ExitStatus::Code(0));
    assert_eq!(r.phase(0), Phase::Backoff);
    assert_eq!(r.sup.snapshot().services[0].restarts, 1);
    assert!(!r.sup.snapshot().healthy());
    let acts = r.step(420, Event::Tick);
    assert_eq!(spawns(&acts), vec![Who::Service(0)]);
    let view = &r.sup.snapshot().services[0];
    assert_eq!(view.phase, Phase::Running);
    assert_eq!(view.liveness, LivenessView::Passing, "ready again");
    assert!(r.sup.snapshot().healthy());
}

#[test]
fn a_passing_check_resets_the_count() {
    let mut r = Run::new(vec![live("web")], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    for (t, ok) in [
        (100, false),
        (200, false),
        (300, true),
        (400, false),
        (500, false),
    ] {
        let attempt = liveness_attempt(&r.step(t, Event::Tick)).expect("a check is due");
        assert!(
            signals(&answer(&mut r, t + 10, attempt, ok)).is_empty(),
            "at {t}"
        );
    }
    assert_eq!(
        r.sup.snapshot().services[0].liveness,
        LivenessView::Failing(2)
    );
    assert_eq!(r.sup.snapshot().services[0].liveness_failures_total, 4);
}

#[test]
fn a_check_past_its_timeout_is_a_failure_and_late_answers_do_not_count() {
    let mut r = Run::new(vec![live("web")], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let first = liveness_attempt(&r.step(100, Event::Tick)).expect("check");
    // Network checks get their timeout plus the prober's slack.
    r.step(700, Event::Tick);
    assert_eq!(
        r.sup.snapshot().services[0].liveness,
        LivenessView::Failing(1)
    );
    answer(&mut r, 705, first, true);
    assert_eq!(
        r.sup.snapshot().services[0].liveness,
        LivenessView::Failing(1),
        "the late answer of a timed-out check is ignored"
    );
}

#[test]
fn an_exec_liveness_check_is_spawned_and_killed_when_it_hangs() {
    let mut p = live("web");
    if let Some(l) = &mut p.liveness {
        l.probe.kind = ProbeKind::Exec;
    }
    let mut r = Run::new(vec![p], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let acts = r.step(100, Event::Tick);
    assert_eq!(spawns(&acts), vec![Who::Liveness(0)]);
    let check_pid = r.next_pid;
    let acts = r.step(150, Event::Tick);
    assert!(
        acts.contains(&Action::SignalGroup {
            pgid: check_pid,
            signal: super::signal::SIGKILL
        }),
        "{acts:?}"
    );
    assert_eq!(
        r.sup.snapshot().services[0].liveness,
        LivenessView::Failing(1)
    );
}

#[test]
fn start_timeout_stops_a_service_that_never_becomes_ready_and_counts_a_failure() {
    let mut p = probed("db", &[], ProbeKind::Network);
    p.start_timeout = Some(ms(1000));
    p.restart = RestartPolicy::OnFailure;
    let mut r = Run::new(vec![p], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let pid = r.pid(0);
    assert_eq!(r.sup.next_deadline().map(|d| d <= r.at(1000)), Some(true));
    assert!(signals(&r.step(999, Event::Tick)).is_empty());
    let acts = r.step(1000, Event::Tick);
    assert_eq!(signals(&acts), vec![(pid, SIGTERM)]);
    assert!(!r.sup.snapshot().healthy());
    // A clean exit after the stop is still the failure of the attempt:
    // `on-failure` restarts it.
    r.exit(1010, pid, ExitStatus::Code(0));
    assert_eq!(r.phase(0), Phase::Backoff);
    assert_eq!(r.sup.snapshot().services[0].restarts, 1);
}

#[test]
fn a_critical_service_that_never_becomes_ready_ends_failed_and_sets_the_status() {
    let mut p = probed("db", &[], ProbeKind::Network);
    p.start_timeout = Some(ms(1000));
    p.max_restarts = 0;
    let mut r = Run::new(vec![p], run_policy(false, vec![vec![0]]));
    r.step(0, Event::Tick);
    let pid = r.pid(0);
    r.step(1000, Event::Tick);
    r.exit(1010, pid, ExitStatus::Signal(SIGTERM));
    assert_eq!(r.phase(0), Phase::Failed);
    assert!(
        r.sup.snapshot().shutting_down,
        "critical: the container ends"
    );
    assert!(!r.sup.snapshot().started(), "/startupz: never started");
}

#[test]
fn startup_is_reported_once_every_wanted_service_was_ready() {
    let mut r = Run::new(
        vec![probed("db", &[], ProbeKind::Network), svc("web", &[0])],
        run_policy(false, vec![vec![0], vec![1]]),
    );
    r.step(0, Event::Tick);
    assert!(!r.sup.snapshot().started());
    answer(&mut r, 20, (1, 1), true);
    assert!(r.sup.snapshot().started());
}
