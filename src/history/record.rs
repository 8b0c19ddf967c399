//! What the store keeps, as compact serde values (encoded with postcard): a raw result, a
//! bucket of results (minute, hour or day), a status change, and the time resolutions.
//!
//! Reasons and statuses are stored by name, not by enum position, so that a reason added
//! to the vocabulary later cannot change the meaning of what is already on disk.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::model::{Level, Reason};

/// Upper bounds of the latency histogram kept in every bucket, in milliseconds; a last,
/// open bucket holds the slower ones. Fixed: changing it would misread old buckets.
pub const LATENCY_BOUNDS_MS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];

/// Longest message kept with a raw result or a status change, in characters.
pub const MESSAGE_CHARS: usize = 200;

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch.
pub fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// How a run ended, as stored (append-only: the position is the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunLevel {
    Ok,
    Degraded,
    Failed,
    Unknown,
}

impl From<Level> for RunLevel {
    fn from(l: Level) -> Self {
        match l {
            Level::Ok => RunLevel::Ok,
            Level::Degraded => RunLevel::Degraded,
            Level::Failed => RunLevel::Failed,
            Level::Unknown => RunLevel::Unknown,
        }
    }
}

impl From<RunLevel> for Level {
    fn from(l: RunLevel) -> Self {
        match l {
            RunLevel::Ok => Level::Ok,
            RunLevel::Degraded => Level::Degraded,
            RunLevel::Failed => Level::Failed,
            RunLevel::Unknown => Level::Unknown,
        }
    }
}

/// One probe run as kept in the raw ring of its check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawResult {
    pub at_ms: u64,
    pub level: RunLevel,
    /// The reason's name (`timeout`, `connect`, …) when the run was not ok.
    pub reason: Option<String>,
    pub latency_us: u64,
    pub message: String,
}

/// A status change of a check: one line of the incident log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub at_ms: u64,
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
    pub message: String,
}

/// Cut a message to [`MESSAGE_CHARS`] characters.
pub fn short(message: &str) -> String {
    message.chars().take(MESSAGE_CHARS).collect()
}

/// The name a reason is stored under.
pub fn reason_name(r: Reason) -> String {
    r.as_str().to_string()
}

/// Results of one check over one minute, hour or day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub ok: u32,
    pub degraded: u32,
    /// Runs that could not tell (neither good nor bad; left out of availability).
    pub unknown: u32,
    /// Failed runs by reason name.
    pub failed: Vec<(String, u32)>,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    /// Sparse latency histogram: `(index into LATENCY_BOUNDS_MS or its length, count)`.
    pub hist: Vec<(u8, u32)>,
}

impl Bucket {
    /// Count one run.
    pub fn add(&mut self, level: RunLevel, reason: Option<&str>, latency_us: u64) {
        match level {
            RunLevel::Ok => self.ok += 1,
            RunLevel::Degraded => self.degraded += 1,
            RunLevel::Unknown => self.unknown += 1,
            RunLevel::Failed => {
                let name = reason.unwrap_or("internal");
                match self.failed.iter_mut().find(|(r, _)| r == name) {
                    Some((_, n)) => *n += 1,
                    None => self.failed.push((name.to_string(), 1)),
                }
            }
        }
        self.latency_sum_us += latency_us;
        self.latency_max_us = self.latency_max_us.max(latency_us);
        let ms = latency_us as f64 / 1000.0;
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BOUNDS_MS.len()) as u8;
        match self.hist.iter_mut().find(|(j, _)| *j == i) {
            Some((_, n)) => *n += 1,
            None => {
                self.hist.push((i, 1));
                self.hist.sort_unstable();
            }
        }
    }

    /// Add another bucket's counts (a rollup).
    pub fn merge(&mut self, other: &Bucket) {
        self.ok += other.ok;
        self.degraded += other.degraded;
        self.unknown += other.unknown;
        for (r, n) in &other.failed {
            match self.failed.iter_mut().find(|(s, _)| s == r) {
                Some((_, m)) => *m += n,
                None => self.failed.push((r.clone(), *n)),
            }
        }
        self.latency_sum_us += other.latency_sum_us;
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        for (i, n) in &other.hist {
            match self.hist.iter_mut().find(|(j, _)| j == i) {
                Some((_, m)) => *m += n,
                None => self.hist.push((*i, *n)),
            }
        }
        self.hist.sort_unstable();
    }

    pub fn failed_total(&self) -> u32 {
        self.failed.iter().map(|(_, n)| n).sum()
    }

    /// Every run counted, unknown ones included.
    pub fn runs(&self) -> u32 {
        self.ok + self.degraded + self.unknown + self.failed_total()
    }

    /// `(good, valid)` runs for availability: unknown runs are not valid; degraded ones
    /// are good unless `degraded_is_bad`.
    pub fn good_valid(&self, degraded_is_bad: bool) -> (u64, u64) {
        let good = self.ok as u64
            + if degraded_is_bad {
                0
            } else {
                self.degraded as u64
            };
        let valid = (self.ok + self.degraded + self.failed_total()) as u64;
        (good, valid)
    }

    /// The `q` quantile of latency (0 < q ≤ 1) in milliseconds, interpolated inside its
    /// histogram bucket (as Prometheus' `histogram_quantile`), never above the maximum.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.hist.iter().map(|(_, n)| *n as u64).sum();
        if total == 0 {
            return None;
        }
        let max_ms = self.latency_max_us as f64 / 1000.0;
        let rank = q * total as f64;
        let mut seen = 0u64;
        for (i, n) in &self.hist {
            let before = seen;
            seen += *n as u64;
            if seen as f64 >= rank {
                let i = *i as usize;
                let lower = if i == 0 {
                    0.0
                } else {
                    LATENCY_BOUNDS_MS[i - 1]
                };
                let upper = LATENCY_BOUNDS_MS
                    .get(i)
                    .copied()
                    .unwrap_or(max_ms)
                    .min(max_ms);
                let share = (rank - before as f64) / *n as f64;
                return Some(lower.min(upper) + (upper - lower.min(upper)) * share);
            }
        }
        Some(max_ms)
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Bucket {
        postcard::from_bytes(bytes).unwrap_or_default()
    }
}

/// The time resolution of a bucket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    pub fn seconds(self) -> u64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
            Resolution::Day => 86_400,
        }
    }

    /// The index of the bucket holding time `ms` (UTC-aligned).
    pub fn index(self, ms: u64) -> u32 {
        (ms / 1000 / self.seconds()) as u32
    }

    /// When bucket `index` starts, in milliseconds.
    pub fn start_ms(self, index: u32) -> u64 {
        index as u64 * self.seconds() * 1000
    }

    /// `1m`, `1h` or `1d` (the `step` of the history API).
    pub fn step(self) -> &'static str {
        match self {
            Resolution::Minute => "1m",
            Resolution::Hour => "1h",
            Resolution::Day => "1d",
        }
    }

    pub fn parse(step: &str) -> Option<Resolution> {
        Resolution::ALL.into_iter().find(|r| r.step() == step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_and_merge() {
        let mut a = Bucket::default();
        a.add(RunLevel::Ok, None, 800);
        a.add(RunLevel::Failed, Some("timeout"), 2_000_000);
        a.add(RunLevel::Degraded, Some("threshold"), 30_000);
        let mut b = Bucket::default();
        b.add(RunLevel::Failed, Some("timeout"), 10_000);
        b.add(RunLevel::Unknown, None, 5_000);
        b.merge(&a);
        assert_eq!(b.failed, vec![("timeout".to_string(), 2)]);
        assert_eq!(b.runs(), 5);
        assert_eq!(b.good_valid(false), (2, 4));
        assert_eq!(b.good_valid(true), (1, 4));
        assert_eq!(b.latency_max_us, 2_000_000);
        assert_eq!(Bucket::decode(&b.encode()), b);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let mut b = Bucket::default();
        // 100 runs between 10 and 25 ms: the bucket (10, 25].
        for _ in 0..100 {
            b.add(RunLevel::Ok, None, 20_000);
        }
        // p50 is half-way through (10, 20] (capped at the 20 ms maximum).
        assert_eq!(b.latency_quantile_ms(0.5), Some(15.0));
        assert_eq!(b.latency_quantile_ms(1.0), Some(20.0));
        b.add(RunLevel::Ok, None, 9_000_000);
        // The open bucket ends at the maximum.
        assert_eq!(b.latency_quantile_ms(1.0), Some(9000.0));
        assert_eq!(Bucket::default().latency_quantile_ms(0.5), None);
    }

    #[test]
    fn resolutions_align_to_utc() {
        let ms = 1_700_000_123_456;
        assert_eq!(
            Resolution::Minute.start_ms(Resolution::Minute.index(ms)),
            1_700_000_100_000
        );
        assert_eq!(
            Resolution::Day.start_ms(Resolution::Day.index(ms)) % 86_400_000,
            0
        );
        assert_eq!(Resolution::parse("1h"), Some(Resolution::Hour));
        assert_eq!(Resolution::parse("5m"), None);
    }
}
