//! The per-check state machine's unit tests (`state.rs` stays about the machine).

use super::*;
use crate::model::GroupSummary;

fn meta(critical: bool, failure_threshold: u32, success_threshold: u32) -> CheckMeta {
    CheckMeta {
        name: "c".into(),
        kind: "tcp",
        critical,
        groups: vec![Group::Readiness],
        failure_threshold,
        success_threshold,
        generation: 1,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        resilience: Resilience::default(),
    }
}

fn obs(level: Level) -> Observation {
    let outcome = match level {
        Level::Ok => Outcome::ok("fine"),
        Level::Degraded => Outcome::degraded(Reason::Timeout, "slow"),
        Level::Failed => Outcome::failed(Reason::Connect, "refused"),
        Level::Unknown => Outcome::unknown(Some(Reason::Config), "cannot tell"),
    };
    Observation {
        check: "c".into(),
        generation: 1,
        outcome,
        latency: Duration::from_millis(3),
        lateness: Duration::ZERO,
        at: SystemTime::now(),
        breaker: BreakerState::Closed,
        next_delay: Duration::from_secs(10),
    }
}

fn run(s: &mut CheckState, levels: &[Level]) -> Vec<Status> {
    levels
        .iter()
        .map(|l| {
            s.apply(obs(*l));
            s.view.status
        })
        .collect()
}

use Level::{Degraded as D, Failed as F, Ok as O};
use Status::{Degraded as SD, Healthy as SH, Unhealthy as SU};

#[test]
fn failure_threshold_damps_and_success_threshold_recovers() {
    let mut s = CheckState::new(meta(true, 3, 2));
    assert_eq!(
        run(&mut s, &[O, F, F, F, O, O, F]),
        vec![SH, SH, SH, SU, SU, SH, SH]
    );
    assert_eq!(s.view.consecutive_failures, 1);
}

#[test]
fn first_result_decides_from_unknown() {
    let mut s = CheckState::new(meta(true, 3, 3));
    assert_eq!(run(&mut s, &[F]), vec![SU]);
    let mut s = CheckState::new(meta(true, 3, 3));
    assert_eq!(run(&mut s, &[O]), vec![SH]);
}

#[test]
fn an_unknown_result_is_unknown_at_once_and_counts_as_neither() {
    let mut s = CheckState::new(meta(true, 3, 3));
    assert_eq!(run(&mut s, &[O, F]), vec![SH, SH]);
    s.apply(obs(Level::Unknown));
    assert_eq!(s.view.status, Status::Unknown);
    assert_eq!(s.view.reason, Some(Reason::Config));
    assert_eq!(
        (s.view.consecutive_failures, s.view.consecutive_successes),
        (0, 0)
    );
    assert_eq!(run(&mut s, &[O]), vec![SH]);
}

#[test]
fn non_critical_failures_only_degrade() {
    let mut s = CheckState::new(meta(false, 1, 1));
    assert_eq!(run(&mut s, &[O, F, O]), vec![SH, SD, SH]);
}

#[test]
fn degraded_results_are_not_failures() {
    let mut s = CheckState::new(meta(true, 2, 1));
    assert_eq!(run(&mut s, &[O, D, O, F, D]), vec![SH, SD, SH, SH, SD]);
    assert_eq!(s.view.stats.count(None), 4);
    assert_eq!(s.view.stats.count(Some(Reason::Connect)), 1);
}

#[test]
fn a_changed_check_keeps_its_verdict_until_the_new_definition_reports() {
    let mut old = CheckState::new(meta(true, 3, 1));
    old.apply(obs(O));
    let now = Instant::now();
    let mut new = CheckState::changed(meta(true, 3, 1), old, now);
    assert_eq!((new.view.status, new.view.pending), (SH, false));
    // Not stale within the old result's freshness; unknown once the bound has passed.
    assert_eq!(new.expire(now, SystemTime::now()), None);
    let bound = CheckState::first_result_bound(&new.meta);
    let mut first = CheckState::new(meta(true, 3, 1));
    first.apply(obs(O));
    let twice = CheckState::changed(meta(true, 3, 1), first, now);
    let mut carried = CheckState::changed(meta(true, 3, 1), twice, now + bound / 2);
    assert_eq!(
        carried.expire(now + bound * 2, SystemTime::now()),
        Some(SH),
        "a verdict carried over several reloads must still go stale"
    );
    // The new definition's first result decides at once, despite failure_threshold 3.
    assert_eq!(run(&mut new, &[F]), vec![SU]);
}

#[test]
fn an_added_check_is_left_out_of_its_groups_until_it_reports_or_is_overdue() {
    let now = Instant::now();
    let mut s = CheckState::added(meta(true, 1, 1), now);
    assert_eq!(s.view.counted(), None);
    let bound = CheckState::first_result_bound(&s.meta);
    s.expire(now + bound / 2, SystemTime::now());
    assert_eq!(s.view.counted(), None);
    s.expire(now + bound * 2, SystemTime::now());
    assert_eq!(s.view.counted(), Some(Status::Unknown));
    let mut s = CheckState::added(meta(true, 1, 1), now);
    s.apply(obs(O));
    assert_eq!(s.view.counted(), Some(SH));
}

#[test]
fn group_is_worst_of_members() {
    let mut a = CheckState::new(meta(true, 1, 1));
    let mut b = CheckState::new(meta(false, 1, 1));
    a.apply(obs(O));
    b.apply(obs(F));
    let g = GroupSummary::of([a.view.status, b.view.status].into_iter());
    assert_eq!((g.status, g.healthy, g.degraded), (SD, 1, 1));
    let c = CheckState::new(meta(true, 1, 1));
    let g = GroupSummary::of([a.view.status, b.view.status, c.view.status].into_iter());
    assert_eq!(g.status, Status::Unknown);
    a.apply(obs(F));
    let g = GroupSummary::of([a.view.status, b.view.status, c.view.status].into_iter());
    assert_eq!(g.status, SU);
}

#[test]
fn resumed_counters_carry_the_thresholds_over_a_restart_but_not_the_status() {
    // Healthy, then two failures of three: the first failure after the restart is the third.
    let mut s = CheckState::new(meta(true, 3, 2));
    s.resume(&[O, O, F, F]);
    assert_eq!((s.view.status, s.view.reported), (Status::Unknown, false));
    assert_eq!(s.view.consecutive_failures, 2);
    assert_eq!(run(&mut s, &[F]), vec![SU]);
    assert_eq!(s.view.consecutive_failures, 3);
    // Healthy with one failure: a second one stays below the threshold (without history
    // the first result would decide at once).
    let mut s = CheckState::new(meta(true, 3, 2));
    s.resume(&[O, O, F]);
    assert_eq!(run(&mut s, &[F, F]), vec![SH, SU]);
    // Failing: one success of two needed does not recover it.
    let mut s = CheckState::new(meta(true, 3, 2));
    s.resume(&[F, F, F]);
    assert_eq!(run(&mut s, &[O, O]), vec![SU, SH]);
    // Nothing (or only unknown results) to resume from: the first result decides.
    for past in [&[][..], &[F, Level::Unknown][..]] {
        let mut s = CheckState::new(meta(true, 3, 2));
        s.resume(past);
        assert_eq!(run(&mut s, &[F]), vec![SU]);
    }
}
