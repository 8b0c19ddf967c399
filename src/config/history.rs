//! `[history]` (where results are kept and for how long) and a check's `slo` table. Plain
//! data; the history module builds the store and the SLO arithmetic from it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::model::{de_duration, de_opt_duration, de_opt_size};

/// A day, the unit of the longer retention defaults.
const DAY: Duration = Duration::from_secs(86_400);

/// The in-memory store's default limit: about 3,800 checks at the full in-memory retention
/// (17 KB each after 35 days), and 6,600 with the rows the uptime and SLO windows read.
const DEFAULT_MEMORY_LIMIT: u64 = 64 << 20;
/// The least `memory_limit` accepted.
const MIN_MEMORY_LIMIT: u64 = 64 << 10;

/// `[history]`: the embedded store of past results.
///
/// A retention key left out takes the default of where the store lives: the file's
/// ([`HistoryConfig::on_disk`]) or, without `path`, memory's ([`HistoryConfig::default`]),
/// which keeps what the uptime and SLO windows read and little more (docs/history.md,
/// "In memory").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "Section")]
pub struct HistoryConfig {
    /// Keep history at all. Default true; false keeps nothing (no uptime, no SLO figures,
    /// `/api/v1` answers 404).
    pub enabled: bool,
    /// The store's file (one redb file; its directory must exist and be writable). Absent:
    /// history is kept in memory only and is lost when healthd stops. The packaged config
    /// sets `/var/lib/healthd/history.db` (systemd's `StateDirectory=healthd`).
    pub path: Option<PathBuf>,
    /// Raw results kept per check (time, status, latency, reason, message). Default 1000
    /// (in memory 100).
    pub raw_results: u32,
    /// How long per-minute buckets are kept. Default `48h` (in memory `6h`).
    pub minutes: Duration,
    /// How long per-hour buckets are kept. Default `35d` (in memory `3d`).
    pub hours: Duration,
    /// How long per-day buckets are kept. Default `400d` (in memory `35d`).
    pub days: Duration,
    /// How long status changes (the incident log) are kept. Default `365d` (in memory
    /// `35d`).
    pub events: Duration,
    /// In memory only: the most the checks' rows may hold, in bytes. Each check may hold an
    /// equal share; one over it gives up its oldest rows (docs/history.md, "Memory limit").
    /// Default 64 MiB.
    pub memory_limit: u64,
}

/// `[history]` as written: what is left out takes the default of the store's place.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Section {
    enabled: Option<bool>,
    path: Option<PathBuf>,
    raw_results: Option<u32>,
    #[serde(deserialize_with = "de_opt_duration")]
    minutes: Option<Duration>,
    #[serde(deserialize_with = "de_opt_duration")]
    hours: Option<Duration>,
    #[serde(deserialize_with = "de_opt_duration")]
    days: Option<Duration>,
    #[serde(deserialize_with = "de_opt_duration")]
    events: Option<Duration>,
    #[serde(deserialize_with = "de_opt_size")]
    memory_limit: Option<u64>,
}

impl From<Section> for HistoryConfig {
    fn from(s: Section) -> Self {
        let d = match s.path {
            Some(path) => HistoryConfig::on_disk(path),
            None => HistoryConfig::default(),
        };
        HistoryConfig {
            enabled: s.enabled.unwrap_or(d.enabled),
            raw_results: s.raw_results.unwrap_or(d.raw_results),
            minutes: s.minutes.unwrap_or(d.minutes),
            hours: s.hours.unwrap_or(d.hours),
            days: s.days.unwrap_or(d.days),
            events: s.events.unwrap_or(d.events),
            memory_limit: s.memory_limit.unwrap_or(d.memory_limit),
            path: d.path,
        }
    }
}

/// In memory (no `[history]`, or no `path`): a store that dies with the process keeps
/// the recent past the views and the API read (every uptime and burn-rate window, the SLO
/// window up to 35 days), not a year of it.
impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            path: None,
            raw_results: 100,
            minutes: Duration::from_secs(6 * 3600),
            hours: 3 * DAY,
            days: 35 * DAY,
            events: 35 * DAY,
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

impl HistoryConfig {
    /// The file at `path`, with the file's retention.
    pub fn on_disk(path: PathBuf) -> Self {
        HistoryConfig {
            enabled: true,
            path: Some(path),
            raw_results: 1000,
            minutes: Duration::from_secs(48 * 3600),
            hours: 35 * DAY,
            days: 400 * DAY,
            events: 365 * DAY,
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

impl HistoryConfig {
    /// `(key, reason)` for every problem.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut need = |key: &str, ok: bool, reason: &str| {
            if !ok {
                out.push((format!("history.{key}"), reason.to_string()));
            }
        };
        need("raw_results", self.raw_results >= 1, "must be at least 1");
        need(
            "minutes",
            self.minutes >= Duration::from_secs(2 * 3600),
            "must be at least 2h (the shortest burn-rate windows read minute buckets)",
        );
        need(
            "hours",
            self.hours >= 3 * DAY,
            "must be at least 3d (the burn-rate windows up to 3d read hour buckets)",
        );
        need(
            "days",
            self.days >= 30 * DAY,
            "must be at least 30d (availability over 30d reads day buckets)",
        );
        need("events", self.events >= DAY, "must be at least 1d");
        need(
            "memory_limit",
            self.memory_limit >= MIN_MEMORY_LIMIT,
            "must be at least 64KiB",
        );
        out
    }
}

/// What an SLO alert may do to the check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DegradeOn {
    /// A firing page alert shows a healthy check as degraded (reason `slo`).
    Page,
}

/// A check's `slo = { objective = 99.9, window = "30d" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// Percent of good runs the check should have over the window, above 0 and below 100.
    pub objective: f64,
    /// The SLO's window; the alert windows scale with it (a 30d window uses the SRE
    /// workbook's 1h/5m, 6h/30m, 1d/2h and 3d/6h). Default `30d`; at most `[history]
    /// days`.
    #[serde(default = "default_window", deserialize_with = "de_duration")]
    pub window: Duration,
    /// Count degraded runs as bad (default: a degraded run is good).
    #[serde(default)]
    pub degraded_is_bad: bool,
    /// Let a firing page alert degrade the check's verdict. Default off: the verdict stays
    /// about now.
    #[serde(default)]
    pub degrade_on: Option<DegradeOn>,
    /// Runs an alert window needs before its burn rate counts (so one failed probe in a
    /// short window cannot page). Default 10.
    #[serde(default = "default_min_runs")]
    pub min_runs: u32,
}

fn default_window() -> Duration {
    30 * DAY
}

fn default_min_runs() -> u32 {
    10
}

impl SloConfig {
    /// The objective as a ratio (99.9 → 0.999, without the binary fraction's 0.999…01).
    pub fn ratio(&self) -> f64 {
        (self.objective * 1e7).round() / 1e9
    }

    /// `(key under slo, reason)` for every problem; `days` is `[history] days`.
    pub fn validate(&self, days: Duration) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(self.objective > 0.0 && self.objective < 100.0) {
            out.push((
                "objective".into(),
                "must be a percentage above 0 and below 100 (e.g. 99.9)".into(),
            ));
        }
        if self.window < Duration::from_secs(3600) {
            out.push(("window".into(), "must be at least 1h".into()));
        }
        if self.window > days {
            out.push((
                "window".into(),
                format!(
                    "must not exceed [history] days ({}d)",
                    days.as_secs() / 86_400
                ),
            ));
        }
        if self.min_runs == 0 {
            out.push(("min_runs".into(), "must be at least 1".into()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> HistoryConfig {
        toml::from_str(toml).expect("parses")
    }

    #[test]
    fn left_out_retention_follows_the_store_place() {
        assert_eq!(parse(""), HistoryConfig::default());
        assert_eq!(parse("").raw_results, 100);
        let file = parse("path = \"/tmp/h.db\"");
        assert_eq!(file, HistoryConfig::on_disk("/tmp/h.db".into()));
        assert_eq!(file.days, 400 * DAY);
        // What is set is kept, in memory as on disk.
        let set = parse("raw_results = 1000\nminutes = \"48h\"\ndays = \"200d\"");
        assert_eq!((set.raw_results, set.days), (1000, 200 * DAY));
        assert_eq!(set.minutes, Duration::from_secs(48 * 3600));
        assert_eq!(set.hours, 3 * DAY);
        assert!(toml::from_str::<HistoryConfig>("raw = 1").is_err());
        assert!(HistoryConfig::default().validate().is_empty());
    }

    #[test]
    fn the_memory_limit_takes_a_size_and_has_a_floor() {
        assert_eq!(parse("").memory_limit, 64 << 20);
        assert_eq!(parse("memory_limit = \"256MiB\"").memory_limit, 256 << 20);
        assert_eq!(parse("memory_limit = 1000000").memory_limit, 1_000_000);
        let e = toml::from_str::<HistoryConfig>("memory_limit = \"lots\"").unwrap_err();
        assert!(e.to_string().contains("invalid size \"lots\""), "{e}");
        let small = parse("memory_limit = \"1KiB\"").validate();
        assert_eq!(
            small,
            [(
                "history.memory_limit".into(),
                "must be at least 64KiB".into()
            )]
        );
    }
}
