//! Publication costs O(changed checks): counted (views republished, chunks copied), not
//! timed; and the incremental group summaries agree with a recount.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::{Event, HealthLoop};
use crate::health::checks::CHUNK;
use crate::health::{CheckMeta, Observation, Snapshot};
use crate::model::{Group, GroupSummary, Outcome, Reason, Status};
use crate::resilience::Resilience;

fn meta(i: usize, interval: Duration) -> CheckMeta {
    CheckMeta {
        name: format!("c{i}"),
        kind: "tcp",
        critical: i.is_multiple_of(3),
        groups: if i.is_multiple_of(2) {
            vec![Group::Readiness, Group::Startup]
        } else {
            vec![Group::Readiness]
        },
        failure_threshold: 1,
        success_threshold: 1,
        generation: 1,
        interval,
        timeout: interval,
        resilience: Resilience::default(),
    }
}

fn obs(i: usize, outcome: Outcome, next: Duration) -> Event {
    Event::Observation(Observation::for_test(&format!("c{i}"), outcome, next))
}

fn configured(n: usize, interval: Duration) -> (HealthLoop, crate::health::HealthHandle) {
    let (mut hl, handle) = HealthLoop::new(16);
    hl.handle(Event::Reconfigure(
        (0..n).map(|i| meta(i, interval)).collect(),
    ));
    hl.publish();
    (hl, handle)
}

/// Each group's summary recounted from its members, as JSON (for comparison).
fn recount(snap: &Snapshot) -> BTreeMap<Group, serde_json::Value> {
    Group::ALL
        .iter()
        .map(|g| {
            let members = snap.members(*g).filter_map(|c| c.counted());
            (*g, serde_json::to_value(GroupSummary::of(members)).unwrap())
        })
        .collect()
}

fn summaries(snap: &Snapshot) -> BTreeMap<Group, serde_json::Value> {
    snap.groups
        .iter()
        .map(|(g, s)| (*g, serde_json::to_value(s).unwrap()))
        .collect()
}

#[test]
fn one_result_among_1000_checks_republishes_one_view_and_one_chunk() {
    let (mut hl, handle) = configured(1000, Duration::from_secs(10));
    assert_eq!(
        hl.board.rebuilt, 1000,
        "the first publish builds every view"
    );
    let before = handle.snapshot.load_full();
    assert_eq!(
        before.checks.len(),
        1000 + 2,
        "probes, the heartbeat and descriptors"
    );

    hl.handle(obs(500, Outcome::ok("fine"), Duration::from_secs(10)));
    hl.publish();
    assert_eq!(hl.board.rebuilt, 1, "views republished for one result");
    assert_eq!(hl.board.chunks_rebuilt, 1, "chunks copied for one result");

    let after = handle.snapshot.load_full();
    assert_eq!(after.checks.len(), before.checks.len());
    assert_eq!(after.checks.get(500).unwrap().status, Status::Healthy);
    assert_eq!(before.checks.get(500).unwrap().status, Status::Unknown);
    // Every other chunk is the very same memory as in the previous snapshot.
    for (c, (a, b)) in before
        .checks
        .chunks
        .iter()
        .zip(after.checks.chunks.iter())
        .enumerate()
    {
        assert_eq!(Arc::ptr_eq(a, b), c != 500 / CHUNK, "chunk {c}");
    }
    assert_eq!(summaries(&after), recount(&after));
    assert_eq!(after.groups[&Group::Readiness].healthy, 1);
}

#[test]
fn a_stale_result_is_found_by_its_deadline_not_by_a_scan() {
    // Interval and timeout 5 ms: a result stays fresh for 15 ms, or 20 s when the next run
    // is 10 s away.
    let short = Duration::from_millis(5);
    let (mut hl, handle) = configured(1000, short);
    assert_eq!(hl.due(), None, "no result, nothing can go stale");
    hl.handle(obs(7, Outcome::ok("fine"), short));
    hl.handle(obs(8, Outcome::ok("fine"), Duration::from_secs(10)));
    hl.publish();
    let due = hl.due().expect("a deadline for the fresh results");
    std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
    hl.publish();
    assert_eq!(hl.board.rebuilt, 1, "only the stale check is republished");
    let snap = handle.snapshot.load_full();
    let c7 = snap.checks.get(7).unwrap();
    assert!(c7.stale && c7.status == Status::Unknown, "{c7:?}");
    assert_eq!(snap.checks.get(8).unwrap().status, Status::Healthy);
    assert_eq!(summaries(&snap), recount(&snap));
}

#[test]
fn incremental_group_summaries_and_startup_agree_with_a_recount() {
    let (mut hl, handle) = configured(200, Duration::from_secs(10));
    let ten = Duration::from_secs(10);
    for round in 0..4usize {
        for i in (round..200).step_by(3 + round) {
            let outcome = match (i + round) % 4 {
                0 => Outcome::ok("fine"),
                1 => Outcome::degraded(Reason::Timeout, "slow"),
                2 => Outcome::failed(Reason::Connect, "refused"),
                _ => Outcome::unknown(None, "cannot tell"),
            };
            hl.handle(obs(i, outcome, ten));
        }
        let paging: BTreeSet<String> = (0..200)
            .step_by(5 + round)
            .map(|i| format!("c{i}"))
            .collect();
        hl.handle(Event::SloPaging(paging));
        hl.publish();
        let snap = handle.snapshot.load_full();
        assert_eq!(summaries(&snap), recount(&snap), "round {round}");
    }
    assert!(!handle.snapshot.load().started, "not every check reported");
    for i in 0..200 {
        hl.handle(obs(i, Outcome::ok("fine"), ten));
    }
    hl.publish();
    let snap = handle.snapshot.load_full();
    assert!(snap.started);
    assert_eq!(summaries(&snap), recount(&snap));
}

#[test]
fn blocked_by_follows_a_parent_without_touching_other_checks() {
    let (mut hl, handle) = configured(300, Duration::from_secs(10));
    let deps = BTreeMap::from([("c3".to_string(), vec!["c6".to_string()])]);
    hl.handle(Event::Dependencies(deps));
    hl.publish();
    let ten = Duration::from_secs(10);
    hl.handle(obs(3, Outcome::failed(Reason::Connect, "refused"), ten));
    hl.publish();
    hl.handle(obs(6, Outcome::failed(Reason::Connect, "refused"), ten));
    hl.publish();
    assert_eq!(hl.board.rebuilt, 2, "the parent and its blocked child");
    let snap = handle.snapshot.load_full();
    assert_eq!(
        snap.checks.get(3).unwrap().blocked_by,
        vec!["c6".to_string()]
    );
    hl.handle(obs(6, Outcome::ok("fine"), ten));
    hl.publish();
    let snap = handle.snapshot.load_full();
    assert!(snap.checks.get(3).unwrap().blocked_by.is_empty());
}

#[test]
fn a_stuck_loop_is_seen_only_while_work_waits() {
    // A loop that never runs: nothing queued, nothing due, so nothing is stuck.
    let (_hl, handle) = HealthLoop::new(16);
    let pulse = handle.snapshot.load().pulse.clone();
    assert_eq!(pulse.stuck_for(), Duration::ZERO);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(pulse.stuck_for(), Duration::ZERO);
    // An event waits and the loop does not take it: stuck from the first sighting on.
    handle
        .events
        .try_send(Event::SloPaging(BTreeSet::new()))
        .unwrap();
    // Readers share a look at the queue for a millisecond: the next one looks again.
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(pulse.stuck_for(), Duration::ZERO, "first sighting");
    std::thread::sleep(Duration::from_millis(20));
    assert!(pulse.stuck_for() >= Duration::from_millis(20));
}

#[tokio::test]
async fn an_idle_loop_publishes_nothing_and_is_not_stuck() {
    let (hl, handle) = HealthLoop::new(16);
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(hl.run(cancel.clone()));
    handle
        .events
        .send(Event::Reconfigure(
            (0..3).map(|i| meta(i, Duration::from_secs(10))).collect(),
        ))
        .await
        .unwrap();
    let pulse = handle.snapshot.load().pulse.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !(pulse.caught_up() && handle.snapshot.load().checks.len() == 5) {
        assert!(std::time::Instant::now() < deadline, "loop never caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seq = handle.snapshot.load().seq;
    let progress = pulse.progress();
    // Longer than the old 500 ms heartbeat tick, twice.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(handle.snapshot.load().seq, seq, "published while idle");
    assert_eq!(pulse.progress(), progress, "woke while idle");
    assert_eq!(pulse.stuck_for(), Duration::ZERO);
    // A result wakes it, and it publishes.
    handle
        .events
        .send(obs(1, Outcome::ok("fine"), Duration::from_secs(10)))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while handle.snapshot.load().seq == seq {
        assert!(
            std::time::Instant::now() < deadline,
            "no publish after a result"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_burst_of_results_is_published_in_bounded_batches() {
    // Every check's first result queued at once (as at start): applied as one batch, every
    // changed view would be held twice until the publish; in batches, at most MAX_BATCH are.
    let n = 2_000;
    let (mut hl, handle) = HealthLoop::new(4096);
    hl.handle(Event::Reconfigure(
        (0..n).map(|i| meta(i, Duration::from_secs(10))).collect(),
    ));
    for i in 0..n {
        handle
            .events
            .try_send(obs(i, Outcome::ok("fine"), Duration::from_secs(10)))
            .expect("room for the burst");
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(hl.run(cancel.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let snap = handle.snapshot.load();
        let reported = snap
            .checks
            .iter()
            .filter(|c| !c.builtin && c.reported)
            .count();
        if reported == n {
            // The first publish (before any event), then one per batch of at most
            // MAX_BATCH + 1 events (the one that woke the loop and those drained after it).
            let batches = n.div_ceil(super::MAX_BATCH + 1) as u64;
            assert!(
                snap.seq > batches,
                "{n} results in {} publications",
                snap.seq - 1
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{reported} of {n}");
        drop(snap);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    task.await.unwrap();
}
