//! The writer is off the probe path: a burst of results larger than the broadcast's bound
//! never blocks the sender; what the writer could not take is counted as dropped, and
//! everything else is committed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use healthd::config::HistoryConfig;
use healthd::health::{HealthLoop, RunRecord};
use healthd::history::Store;
use healthd::history::writer::{self, WriterStats};
use healthd::model::Level;
use tokio_util::sync::CancellationToken;

use crate::support::eventually_async;

fn record(i: usize) -> RunRecord {
    RunRecord {
        check: format!("c{}", i % 10),
        kind: "tcp",
        latency: Duration::from_millis(3),
        failure: None,
        at: SystemTime::now(),
        level: Level::Ok,
        reason: None,
        message: "ok".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_dropped_and_counted_never_waited_for() {
    let (_loop, health) = HealthLoop::new(16);
    let store = Arc::new(Store::memory());
    let stats = Arc::new(WriterStats::default());
    let cancel = CancellationToken::new();
    let (task, _jobs) = writer::spawn(
        store.clone(),
        HistoryConfig::default(),
        &health,
        stats.clone(),
        cancel.clone(),
    );
    // Let the writer subscribe before the burst.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = 50_000;
    for i in 0..sent {
        // `send` is not async: it cannot wait for the writer; a full queue loses the record.
        health.runs.send(std::sync::Arc::new(record(i)));
    }
    let total = eventually_async(
        "every record written or dropped",
        Duration::from_secs(20),
        || {
            let s = stats.clone();
            async move {
                let w = s.written.load(Ordering::Relaxed);
                let d = s.dropped.load(Ordering::Relaxed);
                (w + d == sent as u64).then_some((w, d))
            }
        },
    )
    .await;
    assert!(
        total.1 > 0,
        "a burst beyond the queue's bound drops some: {total:?}"
    );
    assert!(total.0 > 0, "and writes the rest: {total:?}");
    // What was written is in the store.
    let reader = store.read().expect("read");
    let checks = reader.checks().expect("checks");
    let kept: u64 = checks
        .values()
        .map(|i| {
            reader
                .buckets(
                    i.id,
                    healthd::history::record::Resolution::Minute,
                    0,
                    u32::MAX,
                )
                .expect("days")
                .iter()
                .map(|(_, b)| b.ok as u64)
                .sum::<u64>()
        })
        .sum();
    assert_eq!(kept, total.0);
    // A view of the in-memory store holds its read lock: the last commit waits for it.
    drop(reader);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the writer stops")
        .expect("no panic");
}
