//! `healthd report`: per check, availability, SLO and error budget, latency percentiles,
//! incidents with durations and the time without data, over a period ending now; as text
//! (for a postmortem), JSON or CSV.

use std::time::Duration;

use serde::Serialize;

use super::query::{Latency, no_data_ms, ser_ms};
use super::record::{Bucket, EventRecord, Resolution};
use super::store::{Reader, StoreError};
use super::view::{self, SloView};
use crate::config::SloConfig;
use crate::model::fmt_latency;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(serialize_with = "ser_ms")]
    pub from: u64,
    #[serde(serialize_with = "ser_ms")]
    pub to: u64,
    /// Time in the period when healthd was not running (no data for any check), seconds.
    pub healthd_not_running_seconds: f64,
    pub checks: Vec<CheckReport>,
}

/// One check's part.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub kind: String,
    /// In the current configuration (a removed check keeps its history for a while).
    pub configured: bool,
    pub runs: u64,
    pub failed: u64,
    /// Good ÷ valid runs over the period (degraded runs good unless its SLO says
    /// otherwise); `null` without data.
    pub availability: Option<f64>,
    pub latency_ms: Option<Latency>,
    /// Time in the period without data for this check (healthd not running), seconds.
    pub no_data_seconds: f64,
    /// The SLO's state now, over its own window.
    pub slo: Option<SloView>,
    pub incidents: Vec<Incident>,
}

/// A stretch of time a check was not healthy.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    #[serde(serialize_with = "ser_ms")]
    pub start: u64,
    /// `null` while it lasts.
    pub end: Option<u64>,
    pub duration_seconds: f64,
    /// The worst status seen during it.
    pub status: String,
    pub reason: Option<String>,
    pub message: String,
}

/// The resolution a period is summed at: the finest whose retention covers it.
fn resolution(period: Duration) -> Resolution {
    if period <= Duration::from_secs(47 * 3600) {
        Resolution::Minute
    } else if period <= Duration::from_secs(34 * 86_400) {
        Resolution::Hour
    } else {
        Resolution::Day
    }
}

fn severity(status: &str) -> u8 {
    match status {
        "healthy" => 0,
        "degraded" => 1,
        "unknown" => 2,
        _ => 3,
    }
}

/// Incidents from the status changes of a period; `before` is the last change before it.
pub fn incidents(
    before: Option<EventRecord>,
    events: &[EventRecord],
    from: u64,
    to: u64,
) -> Vec<Incident> {
    let mut out: Vec<Incident> = Vec::new();
    let mut open: Option<Incident> = before
        .filter(|e| e.to != "healthy" && e.to != "unknown")
        .map(|e| Incident {
            start: from,
            end: None,
            duration_seconds: 0.0,
            status: e.to,
            reason: e.reason,
            message: e.message,
        });
    for e in events {
        match (&mut open, e.to.as_str()) {
            (Some(i), "healthy") => {
                i.end = Some(e.at_ms);
                out.extend(open.take());
            }
            (Some(i), to) => {
                if severity(to) > severity(&i.status) {
                    i.status = to.to_string();
                    i.reason.clone_from(&e.reason);
                    i.message.clone_from(&e.message);
                }
            }
            // Unknown from the start (no result yet) is not an incident; turning unknown
            // from a verdict (a stale result) or failing is.
            (None, "healthy") => {}
            (None, "unknown") if e.from == "unknown" => {}
            (None, to) => {
                open = Some(Incident {
                    start: e.at_ms,
                    end: None,
                    duration_seconds: 0.0,
                    status: to.to_string(),
                    reason: e.reason.clone(),
                    message: e.message.clone(),
                })
            }
        }
    }
    out.extend(open);
    for i in &mut out {
        i.duration_seconds = (i.end.unwrap_or(to).saturating_sub(i.start)) as f64 / 1000.0;
    }
    out
}

/// Build the report of `from..to` for every check the store knows (`configured` with
/// their SLOs first, in config order).
pub fn build(
    reader: &Reader,
    configured: &[(String, Option<SloConfig>)],
    from: u64,
    to: u64,
) -> Result<Report, StoreError> {
    let known = reader.checks()?;
    let sessions = reader.sessions()?;
    let res = resolution(Duration::from_millis(to.saturating_sub(from)));
    let mut names: Vec<(String, Option<SloConfig>, bool)> = configured
        .iter()
        .map(|(n, s)| (n.clone(), s.clone(), true))
        .collect();
    for name in known.keys() {
        if !configured.iter().any(|(n, _)| n == name) {
            names.push((name.clone(), None, false));
        }
    }
    let mut checks = Vec::new();
    for (name, slo, is_configured) in names {
        let Some(info) = known.get(&name) else {
            continue;
        };
        let mut total = Bucket::default();
        for (_, b) in reader.buckets_complete(info.id, res, res.index(from), res.index(to))? {
            total.merge(&b);
        }
        let bad_degraded = slo.as_ref().is_some_and(|s| s.degraded_is_bad);
        let (good, valid) = total.good_valid(bad_degraded);
        let events = reader.events(info.id, from, to, 100_000)?;
        let before = reader.event_before(info.id, from)?;
        let series = view::series(
            reader,
            info.id,
            to,
            slo.as_ref().map(|s| s.window).unwrap_or_default(),
        )?;
        checks.push(CheckReport {
            kind: info.kind.clone(),
            configured: is_configured,
            runs: total.runs() as u64,
            failed: total.failed_total() as u64,
            availability: (valid > 0).then(|| good as f64 / valid as f64),
            latency_ms: (total.runs() > 0).then(|| Latency::of(&total)),
            no_data_seconds: no_data_ms(&sessions, from.max(info.first_ms), to) as f64 / 1000.0,
            slo: view::check_history(&series, slo.as_ref()).slo.map(|s| *s),
            incidents: incidents(before, &events, from, to),
            name,
        });
    }
    Ok(Report {
        from,
        to,
        healthd_not_running_seconds: no_data_ms(&sessions, from, to) as f64 / 1000.0,
        checks,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.3} %", v * 100.0))
        .unwrap_or_else(|| "no data".into())
}

fn dur(secs: f64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0.0).round() as u64)).to_string()
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| fmt_latency(Duration::from_secs_f64(v / 1000.0)))
        .unwrap_or_else(|| "-".into())
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(super::record::from_ms(ms)).to_string()
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0; rows.first().map(Vec::len).unwrap_or(0)];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The report for people.
pub fn text(r: &Report) -> String {
    let period = (r.to - r.from) as f64 / 1000.0;
    let mut out = format!(
        "healthd report {} – {} ({})\nhealthd not running: {} ({:.2} % of the period)\n\n",
        time(r.from),
        time(r.to),
        dur(period),
        dur(r.healthd_not_running_seconds),
        r.healthd_not_running_seconds / period.max(1.0) * 100.0
    );
    let mut rows = vec![
        [
            "CHECK",
            "AVAILABILITY",
            "RUNS",
            "FAILED",
            "P50",
            "P95",
            "P99",
            "NO DATA",
            "SLO",
            "BUDGET LEFT",
            "ALERT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for c in &r.checks {
        let l = c.latency_ms.as_ref();
        let (objective, budget, alert) = match &c.slo {
            Some(s) => (
                format!(
                    "{} % / {}",
                    s.objective * 100.0,
                    super::rules::prom_duration(Duration::from_secs(s.window_seconds))
                ),
                match (s.error_budget_remaining, s.error_budget_remaining_seconds) {
                    (Some(r), Some(t)) => format!(
                        "{:.1} % ({})",
                        r * 100.0,
                        if t < 0.0 {
                            format!("-{}", dur(-t))
                        } else {
                            dur(t)
                        }
                    ),
                    _ => "no data".into(),
                },
                match (s.alert.page, s.alert.ticket) {
                    (true, _) => "page",
                    (false, true) => "ticket",
                    _ => "-",
                }
                .to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        rows.push(vec![
            if c.configured {
                c.name.clone()
            } else {
                format!("{} (removed)", c.name)
            },
            pct(c.availability),
            c.runs.to_string(),
            c.failed.to_string(),
            ms(l.and_then(|l| l.p50)),
            ms(l.and_then(|l| l.p95)),
            ms(l.and_then(|l| l.p99)),
            dur(c.no_data_seconds),
            objective,
            budget,
            alert,
        ]);
    }
    out.push_str(&table(&rows));
    let mut rows = vec![
        [
            "CHECK", "START", "END", "DURATION", "STATUS", "REASON", "MESSAGE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for c in &r.checks {
        for i in &c.incidents {
            rows.push(vec![
                c.name.clone(),
                time(i.start),
                i.end.map(time).unwrap_or_else(|| "ongoing".into()),
                dur(i.duration_seconds),
                i.status.clone(),
                i.reason.clone().unwrap_or_else(|| "-".into()),
                i.message.clone(),
            ]);
        }
    }
    out.push_str(&format!("\nIncidents: {}\n", rows.len() - 1));
    if rows.len() > 1 {
        out.push_str(&table(&rows));
    }
    out
}

/// One CSV line per check (RFC 4180 quoting).
pub fn csv(r: &Report) -> String {
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = String::from(
        "check,kind,configured,from,to,runs,failed,availability,p50_ms,p95_ms,p99_ms,no_data_seconds,slo_objective,error_budget_remaining,incidents,incident_seconds\n",
    );
    for c in &r.checks {
        let l = c.latency_ms.as_ref();
        let row = [
            q(&c.name),
            q(&c.kind),
            c.configured.to_string(),
            time(r.from),
            time(r.to),
            c.runs.to_string(),
            c.failed.to_string(),
            num(c.availability),
            num(l.and_then(|l| l.p50)),
            num(l.and_then(|l| l.p95)),
            num(l.and_then(|l| l.p99)),
            c.no_data_seconds.to_string(),
            num(c.slo.as_ref().map(|s| s.objective)),
            num(c.slo.as_ref().and_then(|s| s.error_budget_remaining)),
            c.incidents.len().to_string(),
            c.incidents
                .iter()
                .fold(0.0, |a, i| a + i.duration_seconds)
                .to_string(),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_ms: u64, from: &str, to: &str) -> EventRecord {
        EventRecord {
            at_ms,
            from: from.into(),
            to: to.into(),
            reason: (to != "healthy").then(|| "connect".into()),
            message: String::new(),
        }
    }

    #[test]
    fn incidents_open_on_failure_and_close_on_recovery() {
        let events = [
            ev(1_000, "unknown", "healthy"),
            ev(5_000, "healthy", "degraded"),
            ev(6_000, "degraded", "unhealthy"),
            ev(9_000, "unhealthy", "healthy"),
            ev(20_000, "healthy", "unhealthy"),
        ];
        let got = incidents(None, &events, 0, 30_000);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].start, got[0].end, got[0].duration_seconds),
            (5_000, Some(9_000), 4.0)
        );
        assert_eq!(got[0].status, "unhealthy", "the worst status seen");
        assert_eq!(
            (got[1].end, got[1].duration_seconds),
            (None, 10.0),
            "still open"
        );
        // A period that starts inside an incident counts it from its start.
        let carried = incidents(
            Some(ev(0, "healthy", "unhealthy")),
            &events[3..4],
            2_000,
            30_000,
        );
        assert_eq!(
            (carried[0].start, carried[0].duration_seconds),
            (2_000, 7.0)
        );
    }
}
