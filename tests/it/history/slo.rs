//! Uptime and SLO figures from the store for a scripted hour, against hand-computed values.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use healthd::config::{HistoryConfig, SloConfig};
use healthd::history::Store;
use healthd::history::record::{RawResult, RunLevel};
use healthd::history::slo::AlertState;
use healthd::history::view::{self, CheckHistory};
use healthd::history::writer::{Batch, Writer};

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;
/// Half a minute after an hour of runs: the 1h window is 60 minute buckets, the current
/// one included, from T0 + 1 min.
const NOW: u64 = T0 + 3_630_000;

fn slo(degraded_is_bad: bool) -> SloConfig {
    SloConfig {
        objective: 99.9,
        window: Duration::from_secs(30 * 86_400),
        degraded_is_bad,
        degrade_on: None,
        min_runs: 5,
    }
}

/// 100 runs 36 s apart from T0 + 1 min: run 10 fails, run 20 is degraded.
fn scripted(check: &str, with_slo: Option<SloConfig>) -> CheckHistory {
    let store = Arc::new(Store::memory());
    let mut w = Writer::new(store.clone(), &HistoryConfig::default(), T0).expect("writer");
    let runs = (0..100u64)
        .map(|i| RawResult {
            at_ms: T0 + 60_000 + i * 36_000,
            level: match i {
                10 => RunLevel::Failed,
                20 => RunLevel::Degraded,
                _ => RunLevel::Ok,
            },
            reason: (i == 10).then(|| "timeout".into()),
            latency_us: 5_000,
            message: String::new(),
        })
        .map(|r| (check, "tcp", r))
        .collect::<Batch>();
    w.commit(&runs, NOW).expect("commit");
    // The next commit, a minute on, rolls the last minute into the hour and day buckets.
    w.commit(&Batch::default(), NOW + 60_000)
        .expect("heartbeat commit");
    let reader = store.read().expect("read");
    let id = reader.checks().expect("checks")[check].id;
    let hours: u32 = reader
        .buckets(id, healthd::history::record::Resolution::Hour, 0, u32::MAX)
        .expect("hours")
        .iter()
        .map(|(_, b)| b.runs())
        .sum();
    assert_eq!(hours, 100, "every run rolled up into the hour buckets");
    let v = view::compute(
        &reader,
        &[(check.into(), with_slo.map(Box::new))],
        UNIX_EPOCH + Duration::from_millis(NOW),
    )
    .expect("view");
    v.get(check).expect("the check's figures").clone()
}

fn get(pairs: &[(&str, Option<f64>)], key: &str) -> Option<f64> {
    pairs.iter().find(|(k, _)| *k == key).and_then(|(_, v)| *v)
}

/// A check's availability over the window labelled `key`.
fn uptime(h: &CheckHistory, key: &str) -> Option<f64> {
    let i = view::UPTIME_WINDOWS.iter().position(|(k, _)| *k == key)?;
    h.uptime[i]
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn one_failure_in_a_hundred_runs_over_an_hour() {
    let h = scripted("api", Some(slo(false)));
    // 99 good of 100 (the degraded run is good).
    assert!(close(uptime(&h, "1h"), 0.99), "{:?}", h.uptime);
    assert!(close(uptime(&h, "30d"), 0.99), "{:?}", h.uptime);
    let s = h.slo.expect("slo");
    assert_eq!(s.objective, 0.999);
    assert!(close(s.availability, 0.99));
    // 1 − 0.01 ÷ 0.001 = −9, and −9 × 43m12s of budget.
    assert!(close(s.error_budget_remaining, -9.0), "{s:?}");
    assert!(
        close(s.error_budget_remaining_seconds, -9.0 * 2592.0),
        "{s:?}"
    );
    // The last 5 minutes hold runs 92–99, the last 30 minutes runs 50–99: no failure.
    let burn = |w| get(&s.burn_rates, w);
    assert!(
        close(burn("5m"), 0.0) && close(burn("30m"), 0.0),
        "{:?}",
        s.burn_rates
    );
    // 1 % errors against 0.1 % allowed, over the 1h, 6h, 1d and 3d windows.
    for w in ["1h", "6h", "1d", "3d"] {
        assert!(close(burn(w), 10.0), "{w}: {:?}", s.burn_rates);
    }
    // Page needs 14.4 over 1h (10 is not) or 6 over 30m (0 is not); the tickets burn
    // 3 over 1d and 2h, and 1 over 3d and 6h.
    assert_eq!(
        s.alert,
        AlertState {
            page: false,
            ticket: true
        }
    );
}

#[test]
fn degraded_runs_count_as_bad_when_asked() {
    let h = scripted("api", Some(slo(true)));
    assert!(close(uptime(&h, "1h"), 0.98), "{:?}", h.uptime);
    let s = h.slo.expect("slo");
    assert!(close(get(&s.burn_rates, "1h"), 20.0), "{:?}", s.burn_rates);
}

#[test]
fn a_check_without_results_has_no_uptime() {
    let store = Store::memory();
    let reader = store.read().expect("read");
    let v = view::compute(
        &reader,
        &[("new".into(), Some(Box::new(slo(false))))],
        UNIX_EPOCH + Duration::from_millis(NOW),
    )
    .expect("view");
    let h = v.get("new").expect("the check's figures");
    assert!(
        h.uptime.iter().all(|v| v.is_none()),
        "no data is not up: {:?}",
        h.uptime
    );
    let s = h.slo.as_ref().expect("slo");
    assert_eq!(s.availability, None);
    assert_eq!(s.alert, AlertState::default());
}
