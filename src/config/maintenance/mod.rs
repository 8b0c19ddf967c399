//! `[[maintenance]]`: windows during which checks still run and show, but nothing notifies.
//! A window is one-off (`from`/`to`) or weekly (`days`, `start`, `end`) in a time zone
//! (`time_zone`, default the system's). Plain data and the calendar arithmetic on it (jiff,
//! with the system's tz database); overlapping windows over a common check are refused.

use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Deserialize;

/// How far ahead overlaps of windows are looked for (a year covers every weekday pattern
/// and both daylight-saving changes).
const OVERLAP_HORIZON_DAYS: i64 = 366;

/// One `[[maintenance]]` entry as written.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceEntry {
    /// Shown in logs and `healthd maintenance status`. Default `maintenance[N]`.
    pub name: Option<String>,
    /// The checks it covers. Default: every check.
    #[serde(default)]
    pub checks: Vec<String>,
    /// One-off: start, RFC 3339 (`2026-12-01T22:00:00+01:00`) or civil time in `time_zone`
    /// (`2026-12-01T22:00`).
    pub from: Option<String>,
    /// One-off: end, written as `from`.
    pub to: Option<String>,
    /// Weekly: the days the window starts on (`mon` … `sun`, or full names).
    #[serde(default)]
    pub days: Vec<String>,
    /// Weekly: start time of day, `HH:MM`.
    pub start: Option<String>,
    /// Weekly: end time of day, `HH:MM`; at or before `start` means the next day.
    pub end: Option<String>,
    /// IANA time zone name (`Europe/Berlin`). Default: the system's.
    pub time_zone: Option<String>,
}

/// When a window is open.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Once {
        from: Timestamp,
        to: Timestamp,
    },
    Weekly {
        days: Vec<Weekday>,
        start: Time,
        end: Time,
        tz: TimeZone,
    },
}

/// A validated window.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    pub name: String,
    /// Empty: every check.
    pub checks: Vec<String>,
    pub schedule: Schedule,
}

impl MaintenanceWindow {
    pub fn covers(&self, check: &str) -> bool {
        self.checks.is_empty() || self.checks.iter().any(|c| c == check)
    }

    /// The occurrence open at `t`, as (start, end), if any.
    pub fn open_at(&self, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let day = 24.hours();
        self.schedule
            .occurrences(t.checked_sub(day).ok()?, t.checked_add(day).ok()?)
            .into_iter()
            .find(|(s, e)| *s <= t && t < *e)
    }
}

impl Schedule {
    /// Every occurrence that starts before `until` and ends after `since`.
    pub fn occurrences(&self, since: Timestamp, until: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        match self {
            Schedule::Once { from, to } => {
                if *from < until && *to > since {
                    vec![(*from, *to)]
                } else {
                    vec![]
                }
            }
            Schedule::Weekly {
                days,
                start,
                end,
                tz,
            } => {
                let mut out = Vec::new();
                // From the day before (a window crossing midnight) to the last day.
                let Ok(mut date) = since.to_zoned_datetime(tz.clone()).date().yesterday() else {
                    return out;
                };
                let last = until.to_zoned_datetime(tz.clone()).date();
                while date <= last {
                    if days.contains(&date.weekday())
                        && let Some((s, e)) = weekly_occurrence(date, *start, *end, tz)
                        && s < until
                        && e > since
                    {
                        out.push((s, e));
                    }
                    match date.tomorrow() {
                        Ok(d) => date = d,
                        Err(_) => break,
                    }
                }
                out
            }
        }
    }
}

/// The occurrence of a weekly window that starts on `date`; daylight-saving gaps and folds
/// resolve as most tools do (jiff's "compatible" rule: a skipped time moves forward).
fn weekly_occurrence(
    date: Date,
    start: Time,
    end: Time,
    tz: &TimeZone,
) -> Option<(Timestamp, Timestamp)> {
    let end_date = if end <= start {
        date.tomorrow().ok()?
    } else {
        date
    };
    let s = DateTime::from_parts(date, start)
        .to_zoned_datetime(tz.clone())
        .ok()?;
    let e = DateTime::from_parts(end_date, end)
        .to_zoned_datetime(tz.clone())
        .ok()?;
    Some((s.timestamp(), e.timestamp()))
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Once { from, to } => write!(f, "{from} to {to}"),
            Schedule::Weekly {
                days,
                start,
                end,
                tz,
            } => {
                let days: Vec<String> = days.iter().map(|d| format!("{d:?}")).collect();
                write!(
                    f,
                    "every {} {}–{} ({})",
                    days.join(", "),
                    start.strftime("%H:%M"),
                    end.strftime("%H:%M"),
                    tz.iana_name().unwrap_or("system time zone")
                )
            }
        }
    }
}

/// Validate the entries; problems as (key under `maintenance[i]`, with the index, reason).
pub fn validate(
    entries: &[(usize, MaintenanceEntry)],
    check_names: &[&str],
    now: Timestamp,
) -> (Vec<MaintenanceWindow>, Vec<(String, String)>) {
    let mut windows = Vec::new();
    let mut problems = Vec::new();
    let mut indexes = Vec::new();
    for (i, e) in entries {
        let at = format!("maintenance[{i}]");
        let before = problems.len();
        for (j, c) in e.checks.iter().enumerate() {
            if !check_names.contains(&c.as_str()) {
                problems.push((
                    format!("{at}.checks[{j}]"),
                    format!("unknown check \"{c}\""),
                ));
            }
        }
        let schedule = match parse_schedule(e) {
            Ok(s) => Some(s),
            Err((key, reason)) => {
                problems.push((format!("{at}.{key}"), reason));
                None
            }
        };
        if let (Some(schedule), true) = (schedule, problems.len() == before) {
            windows.push(MaintenanceWindow {
                name: e.name.clone().unwrap_or_else(|| at.clone()),
                checks: e.checks.clone(),
                schedule,
            });
            indexes.push(*i);
        }
    }
    let since = now.checked_sub(24.hours()).unwrap_or(now);
    let until = now
        .checked_add((OVERLAP_HORIZON_DAYS * 24).hours())
        .unwrap_or(now);
    for a in 0..windows.len() {
        for b in a + 1..windows.len() {
            let (wa, wb) = (&windows[a], &windows[b]);
            let shared = wa.checks.is_empty()
                || wb.checks.is_empty()
                || wa.checks.iter().any(|c| wb.checks.contains(c));
            if !shared {
                continue;
            }
            if first_overlap(
                &wa.schedule.occurrences(since, until),
                &wb.schedule.occurrences(since, until),
            )
            .is_some()
            {
                let both = match (wa.checks.is_empty(), wb.checks.is_empty()) {
                    (true, true) => "every check".to_string(),
                    (true, false) => quoted(&wb.checks),
                    (false, true) => quoted(&wa.checks),
                    (false, false) => quoted(
                        &wa.checks
                            .iter()
                            .filter(|c| wb.checks.contains(c))
                            .cloned()
                            .collect::<Vec<_>>(),
                    ),
                };
                problems.push((
                    format!("maintenance[{}]", indexes[b]),
                    format!(
                        "overlaps maintenance[{}] (\"{}\") for {both}; merge them or cover different checks",
                        indexes[a], wa.name
                    ),
                ));
            }
        }
    }
    (windows, problems)
}

fn quoted(names: &[String]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("check {}", q.join(", "))
}

/// The first intersection of two sorted lists of intervals.
fn first_overlap(
    a: &[(Timestamp, Timestamp)],
    b: &[(Timestamp, Timestamp)],
) -> Option<(Timestamp, Timestamp)> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let s = a[i].0.max(b[j].0);
        let e = a[i].1.min(b[j].1);
        if s < e {
            return Some((s, e));
        }
        if a[i].1 <= b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    None
}

/// The schedule of an entry, or the (key, reason) of its first problem.
fn parse_schedule(e: &MaintenanceEntry) -> Result<Schedule, (&'static str, String)> {
    let tz = match &e.time_zone {
        None => TimeZone::system(),
        Some(name) => TimeZone::get(name).map_err(|_| {
            (
                "time_zone",
                format!("unknown time zone \"{name}\" (use an IANA name such as \"Europe/Berlin\" or \"UTC\")"),
            )
        })?,
    };
    let once = e.from.is_some() || e.to.is_some();
    let weekly = !e.days.is_empty() || e.start.is_some() || e.end.is_some();
    match (once, weekly) {
        (true, true) => Err((
            "from",
            "give either from/to (one-off) or days/start/end (weekly), not both".into(),
        )),
        (false, false) => Err((
            "from",
            "missing: give from/to (one-off) or days/start/end (weekly)".into(),
        )),
        (true, false) => {
            let from = instant("from", e.from.as_deref(), &tz)?;
            let to = instant("to", e.to.as_deref(), &tz)?;
            if to <= from {
                return Err((
                    "to",
                    format!("must be after from ({to} is not after {from})"),
                ));
            }
            Ok(Schedule::Once { from, to })
        }
        (false, true) => {
            if e.days.is_empty() {
                return Err(("days", "missing: the weekdays the window starts on".into()));
            }
            let mut days = Vec::new();
            for d in &e.days {
                let day = weekday(d).ok_or((
                    "days",
                    format!("unknown day \"{d}\" (use mon, tue, wed, thu, fri, sat, sun)"),
                ))?;
                if !days.contains(&day) {
                    days.push(day);
                }
            }
            let start = time_of_day("start", e.start.as_deref())?;
            let end = time_of_day("end", e.end.as_deref())?;
            if start == end {
                return Err(("end", "must differ from start".into()));
            }
            Ok(Schedule::Weekly {
                days,
                start,
                end,
                tz,
            })
        }
    }
}

fn instant(
    key: &'static str,
    text: Option<&str>,
    tz: &TimeZone,
) -> Result<Timestamp, (&'static str, String)> {
    let Some(text) = text else {
        return Err((key, "missing (one-off windows need from and to)".into()));
    };
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    text.parse::<DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned_datetime(tz.clone()).ok())
        .map(|z| z.timestamp())
        .ok_or((
            key,
            format!(
                "invalid time \"{text}\" (use RFC 3339 such as \"2026-12-01T22:00:00+01:00\", \
                 or \"2026-12-01T22:00\" in time_zone)"
            ),
        ))
}

fn time_of_day(key: &'static str, text: Option<&str>) -> Result<Time, (&'static str, String)> {
    let Some(text) = text else {
        return Err((
            key,
            "missing (weekly windows need start and end, HH:MM)".into(),
        ));
    };
    text.trim().parse::<Time>().map_err(|_| {
        (
            key,
            format!("invalid time of day \"{text}\" (use HH:MM, e.g. \"02:30\")"),
        )
    })
}

fn weekday(text: &str) -> Option<Weekday> {
    let t = text.trim().to_ascii_lowercase();
    let all = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    all.iter()
        .find(|(short, day)| t == *short || t == format!("{day:?}").to_ascii_lowercase())
        .map(|(_, d)| *d)
}

#[cfg(test)]
mod tests;
