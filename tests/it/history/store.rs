//! The store on a synthetic timeline: what the writer commits is rolled up exactly
//! (minutes → hours → days), raw results and buckets are cut at their retention, and a
//! simulated 400 days of history stays within the disk budget.

use std::sync::Arc;

use healthd::config::HistoryConfig;
use healthd::history::Store;
use healthd::history::record::{Bucket, EventRecord, RawResult, Resolution, RunLevel};
use healthd::history::seed::Seed;
use healthd::history::writer::{Batch, Writer};

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;
const MIN: u64 = 60_000;

fn run(at_ms: u64, failed: bool) -> RawResult {
    RawResult {
        at_ms,
        level: if failed {
            RunLevel::Failed
        } else {
            RunLevel::Ok
        },
        reason: failed.then(|| "timeout".to_string()),
        latency_us: if failed { 2_000_000 } else { 12_000 },
        message: if failed {
            "no answer within 2s"
        } else {
            "connected"
        }
        .into(),
    }
}

/// Every 7 minutes for three days; every 13th run fails.
fn timeline() -> Vec<RawResult> {
    (0..(3 * 1440 / 7))
        .map(|i| run(T0 + i * 7 * MIN + 1234, i.is_multiple_of(13)))
        .collect()
}

fn sum(rows: &[(u32, Bucket)], res: Resolution, within: (u64, u64)) -> (u32, u32) {
    rows.iter()
        .filter(|(i, _)| (within.0..within.1).contains(&res.start_ms(*i)))
        .fold((0, 0), |(ok, f), (_, b)| (ok + b.ok, f + b.failed_total()))
}

/// The same scenario on both stores: in memory, and a file.
fn each_store(mut scenario: impl FnMut(&str, Arc<Store>)) {
    scenario("memory", Arc::new(Store::memory()));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = Store::open(&dir.path().join("history.db")).expect("open");
    scenario("file", Arc::new(file));
}

#[test]
fn rollups_are_exact_and_raw_results_are_a_ring() {
    each_store(|what, store| {
        let config = HistoryConfig {
            raw_results: 50,
            ..HistoryConfig::default()
        };
        let mut writer = Writer::new(store.clone(), &config, T0).expect("writer");
        let runs = timeline();
        // Batches of a few runs, as the writer's one-second commits would have them. Halfway
        // through, the writer is dropped without a last commit (as a kill would), and a new
        // one takes over: it rolls up the minutes the first one left open.
        let (first, second) = runs.split_at(runs.len() / 2);
        for half in [first, second] {
            for chunk in half.chunks(5) {
                let batch: Batch = chunk.iter().map(|r| ("db", "tcp", r.clone())).collect();
                writer.commit(&batch, chunk[0].at_ms).expect("commit");
            }
            writer = Writer::new(store.clone(), &config, T0).expect("writer after a kill");
        }
        // Minutes roll up into hours and days once they have closed (the heartbeat commit).
        let last = runs.last().expect("runs").at_ms;
        writer
            .commit(&Batch::default(), last + MIN)
            .expect("heartbeat commit");
        let reader = store.read().expect("read");
        let id = reader.checks().expect("checks")["db"].id;
        let minutes = reader
            .buckets(id, Resolution::Minute, 0, u32::MAX)
            .expect("minutes");
        let hours = reader
            .buckets(id, Resolution::Hour, 0, u32::MAX)
            .expect("hours");
        let days = reader
            .buckets(id, Resolution::Day, 0, u32::MAX)
            .expect("days");
        let failed = runs.iter().filter(|r| r.level == RunLevel::Failed).count() as u32;
        let all = (0, u64::MAX);
        assert_eq!(
            sum(&minutes, Resolution::Minute, all),
            (runs.len() as u32 - failed, failed)
        );
        assert_eq!(
            sum(&days, Resolution::Day, all),
            (runs.len() as u32 - failed, failed)
        );
        // Every hour is the sum of its minutes, every day the sum of its hours.
        for (i, h) in &hours {
            let span = (
                Resolution::Hour.start_ms(*i),
                Resolution::Hour.start_ms(i + 1),
            );
            assert_eq!(
                sum(&minutes, Resolution::Minute, span),
                (h.ok, h.failed_total()),
                "{what}: hour {i}"
            );
        }
        for (i, d) in &days {
            let span = (
                Resolution::Day.start_ms(*i),
                Resolution::Day.start_ms(i + 1),
            );
            assert_eq!(
                sum(&hours, Resolution::Hour, span),
                (d.ok, d.failed_total()),
                "{what}: day {i}"
            );
            assert_eq!(d.latency_max_us, 2_000_000);
        }
        assert_eq!(days.len(), 3, "{what}");
        // The raw ring: the newest 50, newest first.
        let raw = reader.raw(id, 1000).expect("raw");
        let newest: Vec<RawResult> = runs.iter().rev().take(50).cloned().collect();
        assert_eq!(raw, newest, "{what}");
    });
}

/// The writer's batches split a burst where they fill up: a check's status change can be
/// committed before its run. Retention, applied right after the first commit, must not
/// take it for a check without results and forget it.
#[test]
fn a_check_first_seen_by_its_status_change_is_kept() {
    each_store(|what, store| {
        let config = HistoryConfig::default();
        let mut writer = Writer::new(store.clone(), &config, T0).expect("writer");
        let mut batch = Batch::default();
        batch.add_change(
            "db",
            "tcp",
            EventRecord {
                at_ms: T0,
                from: "pending".into(),
                to: "healthy".into(),
                reason: None,
                message: "connected".into(),
            },
        );
        writer.commit(&batch, T0 + 1000).expect("commit");
        store.prune(&config, T0 + 1000).expect("prune");
        let next: Batch = [("db", "tcp", run(T0 - 5, false))].into_iter().collect();
        writer.commit(&next, T0 + 2000).expect("commit");
        let reader = store.read().expect("read");
        let info = reader.check("db").expect("read").expect("db is known");
        assert_eq!((info.first_ms, info.last_ms), (T0 - 5, T0), "{what}");
        let changes = reader.events(info.id, 0, u64::MAX, 10).expect("events");
        assert_eq!(changes.len(), 1, "{what}: the change is kept");
        assert_eq!(reader.raw(info.id, 10).expect("raw").len(), 1, "{what}");
    });
}

#[test]
fn retention_cuts_each_resolution_at_its_age() {
    each_store(|what, store| {
        // The file's retention (prune does not look at the path).
        let config = HistoryConfig::on_disk("history.db".into());
        let now = T0 + 400 * 1440 * MIN;
        let mut seed = Seed {
            name: "web".into(),
            kind: "http".into(),
            ..Seed::default()
        };
        let mut b = Bucket::default();
        b.add(RunLevel::Ok, None, 5_000);
        // Three days of minutes, 40 days of hours, 420 days of days, 400 days of events.
        for (res, back) in [
            (Resolution::Minute, 3 * 1440),
            (Resolution::Hour, 40 * 24),
            (Resolution::Day, 420),
        ] {
            let cur = res.index(now);
            seed.buckets
                .push((res, (cur - back..=cur).map(|i| (i, b.clone())).collect()));
        }
        seed.events = (0..400)
            .map(|d| EventRecord {
                at_ms: now - d * 1440 * MIN,
                from: "healthy".into(),
                to: "unhealthy".into(),
                reason: Some("connect".into()),
                message: "refused".into(),
            })
            .collect();
        store.seed(&seed).expect("seed");
        store.prune(&config, now).expect("prune");
        let reader = store.read().expect("read");
        let id = reader.checks().expect("checks")["web"].id;
        let kept = |res: Resolution| {
            let rows = reader.buckets(id, res, 0, u32::MAX).expect("buckets");
            (rows.len(), now - res.start_ms(rows[0].0))
        };
        // The cut is at the bucket holding now − retention: 48h of minutes and a bit.
        let (n, age) = kept(Resolution::Minute);
        assert_eq!(n, 2881, "minutes kept ({what})");
        assert!(age <= 48 * 60 * MIN, "{what}: oldest minute {age} ms old");
        assert_eq!(kept(Resolution::Hour).0, 35 * 24 + 1, "hours kept ({what})");
        assert_eq!(kept(Resolution::Day).0, 401, "days kept ({what})");
        let events = reader.events(id, 0, u64::MAX, 1000).expect("events");
        assert_eq!(events.len(), 366, "a year of status changes ({what})");
    });
}

/// How many rows a check has of each kind (minute, hour and day buckets, raw results,
/// status changes).
struct Rows {
    minutes: u32,
    hours: u32,
    days: u32,
    raw: u64,
    events: u64,
}

const SEEDED: u64 = 20;

/// Lay down `SEEDED` checks of `rows` each, a check every 10 s (6 runs a minute).
fn seed_checks(store: &Store, rows: &Rows) {
    let now = T0 + 400 * 1440 * MIN;
    for c in 0..SEEDED {
        let bucket = |runs: u32, i: u32| {
            let mut b = Bucket::default();
            for k in 0..runs {
                let fail = (i + k).is_multiple_of(97);
                b.add(
                    if fail { RunLevel::Failed } else { RunLevel::Ok },
                    fail.then_some("timeout"),
                    8_000 + (k as u64 % 7) * 3_000,
                );
            }
            b
        };
        let mut seed = Seed {
            name: format!("check-{c:04}.example"),
            kind: "http".into(),
            ..Seed::default()
        };
        for (res, n, runs) in [
            (Resolution::Minute, rows.minutes, 6),
            (Resolution::Hour, rows.hours, 360),
            (Resolution::Day, rows.days, 8640),
        ] {
            let cur = res.index(now);
            seed.buckets.push((
                res,
                (cur + 1 - n..=cur).map(|i| (i, bucket(runs, i))).collect(),
            ));
        }
        seed.raw = (0..rows.raw)
            .map(|i| RawResult {
                at_ms: now - (rows.raw - i) * 10_000,
                level: RunLevel::Ok,
                reason: None,
                latency_us: 11_000 + i % 500,
                message: format!("HTTP 200 in {}.{}ms", 11 + i % 5, i % 10),
            })
            .collect();
        seed.events = (0..rows.events)
            .map(|i| EventRecord {
                at_ms: now - i * 12 * 60 * MIN,
                from: "healthy".into(),
                to: "unhealthy".into(),
                reason: Some("timeout".into()),
                message: "no answer within 2s".into(),
            })
            .collect();
        store.seed(&seed).expect("seed");
    }
}

/// Bytes per check of a real file holding checks of `rows` each; prints what redb counts
/// too.
fn file_bytes_per_check(rows: &Rows, what: &str) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.db");
    {
        let store = Store::open(&path).expect("open");
        seed_checks(&store, rows);
        let (stored, allocated) = store.usage().expect("usage");
        eprintln!(
            "history {what}: {} stored bytes/check, {} allocated bytes/check",
            stored / SEEDED,
            allocated / SEEDED
        );
    }
    let file = std::fs::metadata(&path).expect("file").len();
    // Still a valid store after it was closed.
    let reopened = Store::open_read_only(&path).expect("reopen");
    let reader = reopened.read().expect("read");
    assert_eq!(reader.checks().expect("checks").len(), SEEDED as usize);
    eprintln!(
        "history {what}: file {file} bytes for {SEEDED} checks, {} bytes/check",
        file / SEEDED
    );
    file / SEEDED
}

/// A check's history at the default retention after 400 days (48h of minute buckets, 35
/// days of hour buckets, 400 days of day buckets, 1,000 raw results, a year of status
/// changes at two a day) must keep 1,000 checks under 500 MiB; and its first day.
#[test]
fn four_hundred_days_fit_the_disk_budget() {
    let steady = file_bytes_per_check(
        &Rows {
            minutes: 2880,
            hours: 840,
            days: 400,
            raw: 1000,
            events: 730,
        },
        "after 400 days",
    );
    let budget = 500 * 1024 * 1024 / 1000;
    assert!(
        steady < budget,
        "{steady} bytes per check: 1,000 checks would exceed 500 MiB"
    );
    let first_day = file_bytes_per_check(
        &Rows {
            minutes: 1440,
            hours: 24,
            days: 1,
            raw: 1000,
            events: 2,
        },
        "after the first day",
    );
    assert!(first_day < steady);
    // In memory (no `[history] path`), the retention is shorter: 100 raw results, 6h of
    // minutes, 3 days of hours, 35 days of days and of status changes.
    let memory = HistoryConfig::default();
    let rows = Rows {
        minutes: (memory.minutes.as_secs() / 60) as u32,
        hours: (memory.hours.as_secs() / 3600) as u32,
        days: (memory.days.as_secs() / 86_400) as u32,
        raw: memory.raw_results.into(),
        events: 70,
    };
    let as_file = file_bytes_per_check(&rows, "in memory's retention, as a file");
    let store = Store::memory();
    seed_checks(&store, &rows);
    let (stored, held) = store.usage().expect("usage");
    let in_memory = held / SEEDED;
    eprintln!(
        "history in memory, steady: {} stored bytes/check, {in_memory} held bytes/check",
        stored / SEEDED
    );
    assert!(
        in_memory * 5 < steady,
        "in memory {in_memory} bytes per check, on disk {steady}"
    );
    assert!(
        in_memory < as_file,
        "in memory {in_memory} bytes per check, the same rows as a file {as_file}"
    );
    // What `[history] memory_limit` trims a check to before any window loses rows: 10 raw
    // results and 2 h of minutes. The default 64 MiB holds 3,000 full checks, and half as
    // many again trimmed to those floors.
    let floors = Store::memory();
    seed_checks(
        &floors,
        &Rows {
            minutes: 120,
            raw: 10,
            ..rows
        },
    );
    let at_floors = floors.usage().expect("usage").1 / SEEDED;
    let limit = HistoryConfig::default().memory_limit;
    eprintln!(
        "history in memory at the limit's floors: {at_floors} held bytes/check; the default \
         limit holds {} checks in full, {} at the floors",
        limit / in_memory,
        limit / at_floors
    );
    assert!(limit / in_memory >= 3_000 && 2 * (limit / at_floors) >= 3 * (limit / in_memory));
}
