//! What the renderers read on every request: uptime and SLO figures per check, computed
//! from the store by a background refresh every [`REFRESH_EVERY`] and published as one
//! immutable [`HistoryView`] (an `ArcSwap`), so a scrape costs a pointer load.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::record::{Resolution, unix_ms};
use super::slo::{self, AlertState, Counts, Series, Tally};
use super::store::{Reader, StoreError};
use crate::config::SloConfig;

/// How often the view is recomputed (its figures are at most this old).
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// The availability windows shown for every check, `(label, window)`.
pub const UPTIME_WINDOWS: [(&str, Duration); 4] = [
    ("1h", Duration::from_secs(3600)),
    ("24h", Duration::from_secs(86_400)),
    ("7d", Duration::from_secs(7 * 86_400)),
    ("30d", Duration::from_secs(30 * 86_400)),
];

/// The burn-rate windows shown for a check with an SLO, `(label, window)`.
pub const BURN_WINDOWS: [(&str, Duration); 6] = [
    ("5m", Duration::from_secs(300)),
    ("30m", Duration::from_secs(1800)),
    ("1h", Duration::from_secs(3600)),
    ("6h", Duration::from_secs(6 * 3600)),
    ("1d", Duration::from_secs(86_400)),
    ("3d", Duration::from_secs(3 * 86_400)),
];

/// One check's figures (kept for every check, refreshed as a whole: compact).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckHistory {
    /// Availability (good ÷ valid runs) per window of [`UPTIME_WINDOWS`], in that order;
    /// `null` without data.
    #[serde(serialize_with = "uptime_map")]
    pub uptime: [Option<f64>; UPTIME_WINDOWS.len()],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<Box<SloView>>,
}

/// A check's SLO figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloView {
    /// The objective as a ratio (0.999).
    pub objective: f64,
    pub window_seconds: u64,
    /// Availability over the SLO window.
    pub availability: Option<f64>,
    /// 1 − error rate ÷ (1 − objective): 1 untouched, 0 spent, negative overspent.
    pub error_budget_remaining: Option<f64>,
    /// The same as time: the remaining share of (1 − objective) × window.
    pub error_budget_remaining_seconds: Option<f64>,
    /// Burn rate per window of [`BURN_WINDOWS`]; `null` below `min_runs` runs.
    #[serde(serialize_with = "as_map")]
    pub burn_rates: [(&'static str, Option<f64>); BURN_WINDOWS.len()],
    pub alert: AlertState,
    pub degraded_is_bad: bool,
}

/// The uptime figures as a JSON object labelled by window, in window order.
fn uptime_map<S: serde::Serializer>(
    values: &[Option<f64>; UPTIME_WINDOWS.len()],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(UPTIME_WINDOWS.iter().map(|(k, _)| k).zip(values))
}

/// `(label, value)` pairs as a JSON object, in window order.
fn as_map<S: serde::Serializer>(
    pairs: &[(&'static str, Option<f64>)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (*k, v)))
}

/// Everything the renderers show of history.
#[derive(Debug, Clone, Default)]
pub struct HistoryView {
    pub generated_at: Option<SystemTime>,
    /// Sorted by name (the names are shared with the targets, not copied per refresh).
    pub checks: Vec<(Arc<str>, CheckHistory)>,
}

impl HistoryView {
    /// The figures of the named check.
    pub fn get(&self, name: &str) -> Option<&CheckHistory> {
        self.checks
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| &self.checks[i].1)
    }
}

/// Read one check's series: minute buckets for 2h, hour buckets for 3d, day buckets for
/// the longest window needed.
pub fn series(reader: &Reader, id: u32, now_ms: u64, days: Duration) -> Result<Series, StoreError> {
    let read = |res: Resolution, span: Duration| -> Result<Vec<(u32, Tally)>, StoreError> {
        let to = res.index(now_ms);
        let n = span.as_secs().div_ceil(res.seconds()) as u32;
        Ok(reader
            .buckets_complete(id, res, to.saturating_sub(n), to)?
            .iter()
            .map(|(i, b)| (*i, Tally::from(b)))
            .collect())
    };
    Ok(Series {
        now_ms,
        minutes: read(Resolution::Minute, Duration::from_secs(2 * 3600))?,
        hours: read(Resolution::Hour, Duration::from_secs(3 * 86_400))?,
        days: read(Resolution::Day, days.max(Duration::from_secs(30 * 86_400)))?,
    })
}

/// A figure rounded to nine decimals, so that 1 % errors against 0.1 % allowed reads 10
/// and not 9.999999999999991 (the store's counts are exact; the ratios are not).
fn round9(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// One check's figures from its series.
pub fn check_history(s: &Series, slo: Option<&SloConfig>) -> CheckHistory {
    let bad_degraded = slo.is_some_and(|c| c.degraded_is_bad);
    let uptime = UPTIME_WINDOWS.map(|(_, w)| s.counts(w, bad_degraded).availability().map(round9));
    let slo = slo.map(|c| {
        let objective = c.ratio();
        let counts = |w: Duration| -> Counts { s.counts(w, c.degraded_is_bad) };
        let whole = counts(c.window);
        let remaining = slo::budget_remaining(whole, objective).map(round9);
        Box::new(SloView {
            objective,
            window_seconds: c.window.as_secs(),
            availability: whole.availability().map(round9),
            error_budget_remaining: remaining,
            error_budget_remaining_seconds: remaining
                .map(|r| round9(r * slo::budget_time(objective, c.window).as_secs_f64())),
            burn_rates: BURN_WINDOWS.map(|(label, w)| {
                let burn = slo::burn_rate(counts(w), objective, c.min_runs);
                (label, burn.map(round9))
            }),
            alert: slo::alert_state(counts, objective, c.window, c.min_runs),
            degraded_is_bad: c.degraded_is_bad,
        })
    });
    CheckHistory { uptime, slo }
}

/// A check the view covers, with its SLO (boxed: most checks have none, and the list
/// holds every check).
pub type Target = (Arc<str>, Option<Box<SloConfig>>);

/// The view of the named checks (each with its SLO, if any; sorted by name) at `now`.
pub fn compute(
    reader: &Reader,
    targets: &[Target],
    now: SystemTime,
) -> Result<HistoryView, StoreError> {
    // One look-up per check (not the whole table at once: with 10,000 checks that map
    // alone would be megabytes, on every refresh).
    let now_ms = unix_ms(now);
    let mut checks = Vec::with_capacity(targets.len());
    for (name, slo) in targets {
        let h = match reader.check(name)? {
            Some(info) => {
                let days = slo.as_ref().map(|c| c.window).unwrap_or_default();
                check_history(&series(reader, info.id, now_ms, days)?, slo.as_deref())
            }
            None => check_history(&Series::default(), slo.as_deref()),
        };
        checks.push((name.clone(), h));
    }
    Ok(HistoryView {
        generated_at: Some(now),
        checks,
    })
}
