//! What the status page shows from the history store: an uptime bar of 90 slices per check
//! (24 h, 7 d, 30 d or 90 d), availability over that window, a response-time chart (p50 and
//! p99) and the incidents (status changes with their durations). Read on the blocking pool;
//! the bars of every check are computed at most once a minute per window and shared by all
//! viewers, so a wall screen costs one read a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::history::History;
use crate::history::query::{self, Event, Point};
use crate::history::record::{Bucket, Resolution, unix_ms};
use crate::history::store::{Reader, StoreError};

/// Slices in an uptime bar.
pub const SLICES: u64 = 90;

/// The windows a bar can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Window {
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
    #[serde(rename = "90d")]
    Quarter,
}

impl Window {
    pub const ALL: [Window; 4] = [Window::Day, Window::Week, Window::Month, Window::Quarter];

    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.label() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
            Window::Quarter => "90d",
        }
    }

    pub fn span(self) -> Duration {
        let day = 86_400;
        Duration::from_secs(match self {
            Window::Day => day,
            Window::Week => 7 * day,
            Window::Month => 30 * day,
            Window::Quarter => 90 * day,
        })
    }

    /// The finest kept resolution that covers the window (minutes are kept 48 h, hours 35 d).
    fn resolution(self) -> Resolution {
        match self {
            Window::Day => Resolution::Minute,
            Window::Week | Window::Month => Resolution::Hour,
            Window::Quarter => Resolution::Day,
        }
    }
}

/// One slice of an uptime bar.
#[derive(Debug, Clone, Serialize)]
pub struct Slice {
    pub start_ms: u64,
    pub end_ms: u64,
    pub good: u32,
    pub degraded: u32,
    pub failed: u32,
    /// `healthy`, `degraded`, `unhealthy` or `nodata`.
    pub state: &'static str,
}

impl Slice {
    fn add(&mut self, b: &Bucket) {
        self.good += b.ok;
        self.degraded += b.degraded;
        self.failed += b.failed_total();
    }

    fn settle(&mut self) {
        self.state = if self.good + self.degraded + self.failed == 0 {
            "nodata"
        } else if self.failed > 0 {
            "unhealthy"
        } else if self.degraded > 0 {
            "degraded"
        } else {
            "healthy"
        };
    }

    /// Good runs (degraded count as good) over judged runs.
    pub fn availability(&self) -> Option<f64> {
        let judged = self.good + self.degraded + self.failed;
        (judged > 0).then(|| f64::from(self.good + self.degraded) / f64::from(judged))
    }
}

/// A check's bar over `window` ending at `now_ms`, and its availability over the window.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub slices: Vec<Slice>,
    pub availability: Option<f64>,
}

fn bar(reader: &Reader, id: u32, window: Window, now_ms: u64) -> Result<Bar, StoreError> {
    let span = window.span().as_millis() as u64;
    let from = now_ms.saturating_sub(span);
    let len = span / SLICES;
    let mut slices: Vec<Slice> = (0..SLICES)
        .map(|i| Slice {
            start_ms: from + i * len,
            end_ms: from + (i + 1) * len,
            good: 0,
            degraded: 0,
            failed: 0,
            state: "nodata",
        })
        .collect();
    let res = window.resolution();
    let (first, last) = (res.index(from), res.index(now_ms));
    let mut total = Slice {
        start_ms: from,
        end_ms: now_ms,
        good: 0,
        degraded: 0,
        failed: 0,
        state: "nodata",
    };
    for (index, b) in reader.buckets_complete(id, res, first, last)? {
        let start = res.start_ms(index).max(from);
        let i = ((start - from) / len).min(SLICES - 1) as usize;
        slices[i].add(&b);
        total.add(&b);
    }
    slices.iter_mut().for_each(Slice::settle);
    Ok(Bar {
        slices,
        availability: total.availability(),
    })
}

/// Every check's bar for one window, computed at most once a minute.
pub type Bars = Arc<HashMap<String, Bar>>;

fn cache() -> &'static Mutex<HashMap<Window, (u64, Bars)>> {
    static CACHE: OnceLock<Mutex<HashMap<Window, (u64, Bars)>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The bars of `names` over `window` (the cached ones when younger than a minute).
pub async fn bars(history: &History, names: Vec<String>, window: Window) -> Bars {
    let now_ms = unix_ms(SystemTime::now());
    let minute = now_ms / 60_000;
    if let Some((at, bars)) = cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&window)
        && *at == minute
        && names.iter().all(|n| bars.contains_key(n))
    {
        return bars.clone();
    }
    let store = history.store.clone();
    let computed = tokio::task::spawn_blocking(move || -> Result<Bars, StoreError> {
        let reader = store.read()?;
        let mut out = HashMap::with_capacity(names.len());
        for name in names {
            if let Some(info) = reader.check(&name)? {
                out.insert(name, bar(&reader, info.id, window, now_ms)?);
            }
        }
        Ok(Arc::new(out))
    })
    .await;
    match computed {
        Ok(Ok(bars)) => {
            cache()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(window, (minute, bars.clone()));
            bars
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Status page: history read failed.");
            Arc::default()
        }
        Err(_) => Arc::default(),
    }
}

/// One check's past for its own page: the bar, the response-time points and incidents.
#[derive(Debug, Default)]
pub struct CheckPast {
    pub bar: Option<Bar>,
    pub points: Vec<Point>,
    pub incidents: Vec<Incident>,
}

/// A status change and how long the status it started lasted.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub check: String,
    pub event: Event,
    /// Until the next change (`None`: still so).
    pub lasted_ms: Option<u64>,
}

fn incidents(check: &str, events: Vec<Event>) -> Vec<Incident> {
    let mut out: Vec<Incident> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Incident {
            check: check.to_string(),
            event: e.clone(),
            lasted_ms: events.get(i + 1).map(|n| n.at.saturating_sub(e.at)),
        })
        .collect();
    out.reverse();
    out
}

/// `name`'s bar, chart points and incidents over `window`.
pub async fn check_past(history: &History, name: String, window: Window) -> CheckPast {
    let store = history.store.clone();
    let now_ms = unix_ms(SystemTime::now());
    let read = tokio::task::spawn_blocking(move || -> Result<CheckPast, StoreError> {
        let reader = store.read()?;
        let Some(info) = reader.check(&name)? else {
            return Ok(CheckPast::default());
        };
        let from = now_ms.saturating_sub(window.span().as_millis() as u64);
        let (points, _) =
            query::points(&reader, info.id, window.resolution(), from, now_ms, 2_200)?;
        let (events, _) = query::events(&reader, info.id, from, now_ms, 200)?;
        Ok(CheckPast {
            bar: Some(bar(&reader, info.id, window, now_ms)?),
            points,
            incidents: incidents(&name, events),
        })
    })
    .await;
    match read {
        Ok(Ok(p)) => p,
        _ => CheckPast::default(),
    }
}

/// Status changes of every check in the last 7 days, newest first, at most `limit`.
pub async fn timeline(history: &History, names: Vec<String>, limit: usize) -> Vec<Incident> {
    let store = history.store.clone();
    let now_ms = unix_ms(SystemTime::now());
    let read = tokio::task::spawn_blocking(move || -> Result<Vec<Incident>, StoreError> {
        let reader = store.read()?;
        let from = now_ms.saturating_sub(7 * 86_400_000);
        let mut all = Vec::new();
        for name in names {
            if let Some(info) = reader.check(&name)? {
                let (events, _) = query::events(&reader, info.id, from, now_ms, limit)?;
                all.extend(incidents(&name, events));
            }
        }
        all.sort_by_key(|i| std::cmp::Reverse(i.event.at));
        all.truncate(limit);
        Ok(all)
    })
    .await;
    read.ok().and_then(Result::ok).unwrap_or_default()
}
