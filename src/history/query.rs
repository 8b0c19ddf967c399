//! The reads behind `/api/v1` and `healthd report`: a check's buckets as points, its
//! status changes, and the time healthd was not running. Bounded: every read takes a
//! limit and says where the next page starts.

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::{Bucket, EventRecord, Resolution, from_ms};
use super::store::{Reader, StoreError};

/// Most points or events in one answer.
pub const PAGE: usize = 1440;

/// A bucket as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    #[serde(serialize_with = "ser_ms")]
    pub start: u64,
    pub runs: u32,
    pub ok: u32,
    pub degraded: u32,
    pub failed: u32,
    pub unknown: u32,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_by_reason: BTreeMap<String, u32>,
    /// Good ÷ valid runs (degraded runs good); `null` when every run was unknown.
    pub availability: Option<f64>,
    pub latency_ms: Latency,
}

/// Latency figures of a bucket, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub avg: Option<f64>,
    pub max: f64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Latency {
    pub fn of(b: &Bucket) -> Latency {
        let runs = b.runs();
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        Latency {
            avg: (runs > 0).then(|| round(b.latency_sum_us as f64 / runs as f64 / 1000.0)),
            max: round(b.latency_max_us as f64 / 1000.0),
            p50: b.latency_quantile_ms(0.5).map(round),
            p95: b.latency_quantile_ms(0.95).map(round),
            p99: b.latency_quantile_ms(0.99).map(round),
        }
    }
}

impl Point {
    pub fn of(res: Resolution, index: u32, b: &Bucket) -> Point {
        Point {
            start: res.start_ms(index),
            runs: b.runs(),
            ok: b.ok,
            degraded: b.degraded,
            failed: b.failed_total(),
            unknown: b.unknown,
            failed_by_reason: b.failed.iter().cloned().collect(),
            availability: {
                let (good, valid) = b.good_valid(false);
                (valid > 0).then(|| good as f64 / valid as f64)
            },
            latency_ms: Latency::of(b),
        }
    }
}

/// An RFC 3339 time (milliseconds) for a time stored as ms.
pub fn ser_ms<S: serde::Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_millis(from_ms(*ms)).to_string())
}

/// A check's buckets of `res` starting in `from_ms..to_ms`, at most `limit` of them; and
/// the start of the next page when there is more.
pub fn points(
    reader: &Reader,
    id: u32,
    res: Resolution,
    from_ms: u64,
    to_ms: u64,
    limit: usize,
) -> Result<(Vec<Point>, Option<u64>), StoreError> {
    let first = res.index(from_ms.div_ceil(res.seconds() * 1000) * res.seconds() * 1000);
    let last = res.index(to_ms.saturating_sub(1));
    if to_ms == 0 || first > last {
        return Ok((vec![], None));
    }
    let rows = reader.buckets_complete(id, res, first, last)?;
    let next = rows.get(limit).map(|(i, _)| res.start_ms(*i));
    Ok((
        rows.iter()
            .take(limit)
            .map(|(i, b)| Point::of(res, *i, b))
            .collect(),
        next,
    ))
}

/// A status change as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    #[serde(serialize_with = "ser_ms")]
    pub at: u64,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub message: String,
}

impl From<EventRecord> for Event {
    fn from(e: EventRecord) -> Self {
        Event {
            at: e.at_ms,
            from: e.from,
            to: e.to,
            reason: e.reason,
            message: e.message,
        }
    }
}

/// A check's status changes in `from_ms..to_ms`, oldest first, at most `limit`; and the
/// time the next page starts at.
pub fn events(
    reader: &Reader,
    id: u32,
    from_ms: u64,
    to_ms: u64,
    limit: usize,
) -> Result<(Vec<Event>, Option<u64>), StoreError> {
    let mut rows = reader.events(id, from_ms, to_ms, limit + 1)?;
    let next = (rows.len() > limit).then(|| rows[limit].at_ms);
    rows.truncate(limit);
    Ok((rows.into_iter().map(Event::from).collect(), next))
}

/// Milliseconds of `from_ms..to_ms` when healthd was not running (outside every session).
pub fn no_data_ms(sessions: &[(u64, u64)], from_ms: u64, to_ms: u64) -> u64 {
    let mut covered = 0;
    let mut cursor = from_ms;
    let mut spans: Vec<(u64, u64)> = sessions.to_vec();
    spans.sort_unstable();
    for (start, end) in spans {
        let (s, e) = (start.max(cursor), end.min(to_ms));
        if e > s {
            covered += e - s;
            cursor = e;
        }
    }
    to_ms.saturating_sub(from_ms).saturating_sub(covered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_data_is_the_time_outside_sessions() {
        // Running 0–10 s and 20–25 s (overlapping session rows merge), asked about 5–30 s.
        let s = [(0, 10_000), (20_000, 25_000), (21_000, 24_000)];
        assert_eq!(no_data_ms(&s, 5_000, 30_000), 10_000 + 5_000);
        assert_eq!(no_data_ms(&[], 0, 1000), 1000);
    }
}
