//! The page's markup for the past: uptime bars, the response-time chart (inline SVG, drawn
//! on the server) and incident lists. Every value is escaped by maud.

use std::time::Duration;

use maud::{Markup, html};

use super::history::{Bar, Incident, Slice, Window};
use crate::history::query::Point;
use crate::model::fmt_latency;

fn time_of(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn percent(a: Option<f64>) -> String {
    a.map_or("no data".to_string(), |a| format!("{:.2}%", a * 100.0))
}

/// The window links (`?window=…`), the current one marked.
pub fn windows(current: Window, path: &str) -> Markup {
    html! {
        nav class="windows" aria-label="uptime window" {
            "uptime over "
            @for w in Window::ALL {
                @if w == current { strong aria-current="true" { (w.label()) } }
                @else { a href={(path) "?window=" (w.label())} { (w.label()) } }
                " "
            }
        }
    }
}

/// A bar of slices, consecutive slices of one state drawn as one run (its width class `wN`
/// says how many slices) with one tooltip, so a page of 1,000 checks stays small; and the
/// window's availability.
pub fn bar(b: Option<&Bar>, window: Window) -> Markup {
    let Some(b) = b else {
        return html! { span class="nodata-note" { "no history yet" } };
    };
    let mut runs: Vec<(&Slice, &Slice, u32, u32, u32)> = Vec::new();
    for s in &b.slices {
        match runs.last_mut() {
            Some((first, last, good, bad, n)) if first.state == s.state => {
                *last = s;
                *good += s.good + s.degraded;
                *bad += s.failed;
                *n += 1;
            }
            _ => runs.push((s, s, s.good + s.degraded, s.failed, 1)),
        }
    }
    html! {
        span class="bar" role="img" aria-label={"uptime over " (window.label()) ": " (percent(b.availability))} {
            @for (first, last, good, bad, n) in &runs {
                span class={"s s-" (first.state) " w" (n)}
                    title={(time_of(first.start_ms)) " – " (time_of(last.end_ms)) ": " (first.state)
                        @if good + bad > 0 { " (" (format!("{:.1}%", f64::from(*good) * 100.0 / f64::from(good + bad))) ", " (good + bad) " runs)" }} {}
            }
        }
        " " span class="availability" { (percent(b.availability)) }
    }
}

/// p50 and p99 response time over the window, as an SVG line chart.
pub fn chart(points: &[Point]) -> Markup {
    let series: Vec<(u64, f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.start, p.latency_ms.p50?, p.latency_ms.p99?)))
        .collect();
    if series.len() < 2 {
        return html! { p class="nodata-note" { "Not enough history for a chart yet." } };
    }
    let (w, h) = (720.0, 180.0);
    let (t0, t1) = (series[0].0 as f64, series[series.len() - 1].0 as f64);
    let top = series
        .iter()
        .map(|s| s.2)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let xy = |t: u64, v: f64| {
        let x = (t as f64 - t0) / (t1 - t0).max(1.0) * w;
        let y = h - v / top * (h - 10.0);
        format!("{x:.1},{y:.1}")
    };
    let line = |pick: fn(&(u64, f64, f64)) -> f64| {
        series
            .iter()
            .map(|s| xy(s.0, pick(s)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        figure class="chart" {
            svg viewBox={"0 0 " (w) " " (h)} role="img" aria-label="response time, p50 and p99" {
                polyline class="p99" points=(line(|s| s.2)) {}
                polyline class="p50" points=(line(|s| s.1)) {}
            }
            figcaption {
                span class="key p50" { "p50" } " " span class="key p99" { "p99" }
                " · up to " (fmt_latency(Duration::from_secs_f64(top / 1000.0)))
                " · " (time_of(series[0].0)) " – " (time_of(series[series.len() - 1].0))
            }
        }
    }
}

/// Status changes, newest first, with how long each status lasted.
pub fn incidents(list: &[Incident], with_check: bool) -> Markup {
    if list.is_empty() {
        return html! { p class="nodata-note" { "No status changes in this period." } };
    }
    html! {
        table class="incidents" {
            thead { tr {
                th scope="col" { "when" }
                @if with_check { th scope="col" { "check" } }
                th scope="col" { "change" } th scope="col" { "lasted" } th scope="col" { "why" }
            } }
            tbody {
                @for i in list {
                    tr class={"status-" (i.event.to)} {
                        td { time { (time_of(i.event.at)) } }
                        @if with_check { td { a href={"/status/" (i.check)} { (i.check) } } }
                        td { (i.event.from) " → " span class="badge" { (i.event.to) } }
                        td { (i.lasted_ms.map_or("ongoing".to_string(), |ms| humantime::format_duration(Duration::from_secs(ms / 1000)).to_string())) }
                        td class="why" {
                            @if let Some(r) = &i.event.reason { (r) ": " }
                            (i.event.message)
                        }
                    }
                }
            }
        }
    }
}
