//! The in-memory store's unit tests: late rows, status changes, `forget`, and the limit.

use super::*;
use crate::history::record::RunLevel;

fn run(at_ms: u64, level: RunLevel) -> RawResult {
    RawResult {
        at_ms,
        level,
        reason: (level == RunLevel::Failed).then(|| "timeout".into()),
        latency_us: 1_500,
        message: "connected".into(),
    }
}

fn change(at_ms: u64, to: &str) -> EventRecord {
    EventRecord {
        at_ms,
        from: "pending".into(),
        to: to.into(),
        reason: None,
        message: String::new(),
    }
}

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;

fn bounds(raw: usize) -> Bounds {
    Bounds {
        raw,
        bytes: u64::MAX,
    }
}

/// Ten checks run every 10 s for `hours` under `limit`, each failing every 100th run
/// (a status change each time); what the limit dropped.
fn fill(m: &Memory, hours: u64, limit: u64) -> Trimmed {
    let bounds = Bounds {
        raw: 100,
        bytes: limit,
    };
    let mut trimmed = Trimmed::default();
    for k in 0..hours * 360 {
        let at = T0 + k * 10_000;
        let mut batch = Batch::default();
        let level = if k % 100 == 99 {
            RunLevel::Failed
        } else {
            RunLevel::Ok
        };
        for c in 0..10 {
            batch.add_run(&format!("c{c}"), "tcp", run(at, level));
            if k % 100 >= 99 {
                batch.add_change(&format!("c{c}"), "tcp", change(at, "unhealthy"));
            }
        }
        trimmed += m.commit(&batch, bounds, T0, at);
    }
    trimmed
}

#[test]
fn a_check_over_its_share_gives_up_what_no_window_reads_first() {
    let m = Memory::default();
    let full = fill(&m, 8, u64::MAX);
    assert_eq!(full, Trimmed::default());
    let unlimited = m.read().checks[1].as_ref().expect("c0").tables();
    // 8 hours: 100 raw results, every minute (retention is the prune's), 8 hours.
    assert_eq!(unlimited.map(|(n, _)| n)[..4], [100, 480, 8, 1]);

    // 4 KB each: fewer raw results and minutes, nothing a window reads.
    let m = Memory::default();
    let trimmed = fill(&m, 8, 10 * 4096);
    assert!(trimmed.rows > 0 && !trimmed.deep, "{trimmed:?}");
    let t = m.read();
    for c in t.checks.iter().flatten() {
        assert!(c.bytes() <= 4096, "{} bytes", c.bytes());
        let rows = c.tables().map(|(n, _)| n);
        assert_eq!(rows[0], limit::RAW_FLOOR);
        assert!(rows[1] >= limit::MINUTE_FLOOR && rows[1] < 480, "{rows:?}");
        assert_eq!(rows[2..], unlimited.map(|(n, _)| n)[2..]);
    }
    let info = t.check("c3").expect("c3");
    let newest = t.raw(info.id, 1);
    assert_eq!(newest[0].at_ms, T0 + (8 * 360 - 1) * 10_000);
    let minutes = t.buckets(info.id, Resolution::Minute, 0, u32::MAX);
    assert_eq!(
        minutes.last().map(|(i, _)| *i),
        Some(Resolution::Minute.index(newest[0].at_ms))
    );
    drop(t);

    // 1 KB each: below the floors, the oldest of the largest table, one row left at least.
    let m = Memory::default();
    let trimmed = fill(&m, 8, 10 * 1024);
    assert!(trimmed.deep, "{trimmed:?}");
    let t = m.read();
    for c in t.checks.iter().flatten() {
        assert!(c.bytes() <= 1024, "{} bytes", c.bytes());
        assert!(c.tables().iter().all(|(n, _)| *n >= 1), "{:?}", c.tables());
    }
}

#[test]
fn late_runs_and_changes_land_in_order_and_a_check_costs_its_bytes() {
    let m = Memory::default();
    let mut batch = Batch::default();
    for c in 0..1000 {
        for k in 0..3 {
            batch.add_run(
                &format!("c{c:04}"),
                "tcp",
                run(T0 + k * 10_000, RunLevel::Ok),
            );
        }
    }
    m.commit(&batch, bounds(2), T0, T0 + 30_000);
    let mut late = Batch::default();
    late.add_run("c0000", "tcp", run(T0 + 61_000, RunLevel::Ok));
    late.add_run("c0000", "tcp", run(T0 - 61_000, RunLevel::Failed));
    late.add_change("c0000", "tcp", change(T0 + 5, "unhealthy"));
    late.add_change("c0000", "tcp", change(T0 + 1, "healthy"));
    m.commit(&late, bounds(2), T0, T0 + 62_000);

    let t = m.read();
    let info = t.check("c0000").expect("known");
    assert_eq!((info.kind.as_str(), info.first_ms), ("tcp", T0 - 61_000));
    let minutes = t.buckets(info.id, Resolution::Minute, 0, u32::MAX);
    let first = Resolution::Minute.index(T0);
    let counts: Vec<(u32, u32, u32)> = minutes
        .iter()
        .map(|(i, b)| (*i + 2 - first, b.ok, b.failed_total()))
        .collect();
    // The late run went into its own, older minute; the ring kept the newest two.
    assert_eq!(counts, [(0, 0, 1), (2, 3, 0), (3, 1, 0)]);
    let raw: Vec<u64> = t.raw(info.id, 10).iter().map(|r| r.at_ms).collect();
    assert_eq!(raw, [T0 - 61_000, T0 + 61_000]);
    let to: Vec<String> = t
        .events(info.id, 0, u64::MAX, 10)
        .into_iter()
        .map(|e| e.to)
        .collect();
    assert_eq!(to, ["healthy", "unhealthy"]);
    assert_eq!(
        t.event_before(info.id, T0 + 5).map(|e| e.to).as_deref(),
        Some("healthy")
    );
    let hours = t.buckets(info.id, Resolution::Hour, 0, u32::MAX);
    assert_eq!(
        hours.iter().map(|(_, b)| b.runs()).collect::<Vec<_>>(),
        [1, 4]
    );
    drop(t);

    // A check's entry (about 220 bytes with its name) and its rows (two raw results and
    // three buckets, about 80 bytes) with no spare room for more.
    let (used, held) = m.usage();
    assert!(
        held < 350 * 1000,
        "{used} bytes used, {held} held for 1,000 checks"
    );
    assert_eq!(m.forget(&["c0001".into(), "gone".into()]), ["c0001"]);
    assert!(m.read().check("c0001").is_none());
    assert_eq!(m.read().checks().len(), 999);
}
