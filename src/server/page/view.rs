//! The page's HTML (maud: every interpolated value is escaped). Status is never shown by
//! colour alone: each badge carries a symbol and a word.

use maud::{DOCTYPE, Markup, html};

use std::sync::Arc;

use super::data::{PageData, Row, Verdict};
use super::history::{Bars, CheckPast, Incident, Window};
use super::past;
use crate::history::HistoryView;
use crate::model::Status;

fn symbol(s: Status) -> &'static str {
    match s {
        Status::Healthy => "✓",
        Status::Degraded => "!",
        Status::Unhealthy => "✗",
        Status::Unknown => "?",
    }
}

/// The class and words of a status badge.
fn status_badge(s: Status) -> Markup {
    html! {
        span class={"badge status-" (s.as_str())} {
            span class="symbol" aria-hidden="true" { (symbol(s)) } " "
            span class="word" { (s.as_str()) }
        }
    }
}

fn verdict_badge(label: &str, v: &Verdict, id: &str) -> Markup {
    let class = if v.pass { "pass" } else { "fail" };
    html! {
        div class={"verdict " (class)} id=(id) {
            span class="label" { (label) }
            span class="value" { (if v.pass { "✓ " } else { "✗ " }) span class="word" { (v.word) } }
        }
    }
}

fn page(title: &str, data: Option<&PageData>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) }
                link rel="stylesheet" href="/static/style.css";
                @if data.is_some() { script src="/static/app.js" defer {} }
            }
            body {
                @if let Some(d) = data {
                    header {
                        h1 { "healthd on " (d.host) }
                        div class="verdicts" {
                            (verdict_badge("live", &d.live, "verdict-live"))
                            (verdict_badge("ready", &d.ready, "verdict-ready"))
                            (verdict_badge("started", &d.started, "verdict-started"))
                            div class="verdict overall" id="overall" {
                                span class="label" { "overall" }
                                (status_badge(d.overall))
                            }
                        }
                        p class="meta" {
                            "healthd " (d.version) " · up " span id="uptime" { (fmt_uptime(d.uptime_s)) }
                            " · snapshot " time id="generated" { (d.generated_at) }
                            span id="offline" class="offline-note" hidden { " · reconnecting…" }
                            @if d.auth_enabled {
                                " · "
                                @if d.authorized { a href="/logout" { "log out" } }
                                @else { a href="/login" { "log in to see reasons" } }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn fmt_uptime(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// What the index shows from history (only for the authorised).
pub struct IndexPast {
    pub window: Window,
    pub bars: Bars,
    pub timeline: Vec<Incident>,
    pub slo: Arc<HistoryView>,
}

/// The SLO cell: objective, budget left and a firing alert.
fn slo_cell(name: &str, p: &IndexPast) -> Markup {
    let Some(slo) = p.slo.get(name).and_then(|c| c.slo.as_deref()) else {
        return html! {};
    };
    html! {
        span class="slo" {
            "SLO " (format!("{}%", slo.objective * 100.0)) ": "
            (slo.error_budget_remaining.map_or("no data".to_string(), |b| format!("{:.0}% budget left", b * 100.0)))
            @if slo.alert.page { " " span class="alert page" { "page: burning fast" } }
            @else if slo.alert.ticket { " " span class="alert ticket" { "ticket: burning" } }
        }
    }
}

fn row(r: &Row, authorized: bool, p: Option<&IndexPast>) -> Markup {
    html! {
        tr data-name=(r.name) class={"check status-" (r.status.as_str())} {
            th scope="row" class="name" { a href={"/status/" (url_segment(&r.name))} { (r.name) } }
            td class="status" { (status_badge(r.status)) }
            td class="kind" { (r.kind) }
            td class="critical" { (if r.critical { "critical" } else { "non-critical" }) }
            td class="latency" { (r.latency_ms.map(|l| format!("{l:.1} ms")).unwrap_or_default()) }
            @if let Some(p) = p {
                td class="uptime" { (past::bar(p.bars.get(&r.name), p.window)) " " (slo_cell(&r.name, p)) }
            }
            td class="why" {
                @if authorized {
                    @if r.status != Status::Healthy {
                        @if let Some(reason) = r.reason { span class="reason" { (reason) } ": " }
                        span class="message" { (r.message.as_deref().unwrap_or("")) }
                    }
                } @else if r.status != Status::Healthy { span class="withheld" { "reason withheld" } }
            }
        }
    }
}

/// `/` and `/status`.
pub fn index(d: &PageData, p: Option<&IndexPast>) -> Markup {
    let body = html! {
        @if let Some(p) = p { (past::windows(p.window, "/")) }
        @for (section, rows) in d.sections() {
            section {
                h2 { (section) }
                table {
                    thead { tr {
                        th scope="col" { "check" } th scope="col" { "status" } th scope="col" { "kind" }
                        th scope="col" { "critical" } th scope="col" { "latency" }
                        @if let Some(p) = p { th scope="col" { "uptime (" (p.window.label()) ")" } }
                        th scope="col" { "why" }
                    } }
                    tbody { @for r in rows { (row(r, d.authorized, p)) } }
                }
            }
        }
        @if let Some(p) = p {
            section {
                h2 { "Incidents, last 7 days" }
                (past::incidents(&p.timeline, true))
            }
        }
    };
    page(&format!("healthd — {}", d.host), Some(d), body)
}

/// `/status/{name}`.
pub fn detail(d: &PageData, r: &Row, p: Option<&(Window, CheckPast)>) -> Markup {
    let body = html! {
        p { a href="/" { "← all checks" } }
        h2 data-name=(r.name) { (r.name) " " (status_badge(r.status)) }
        dl {
            dt { "kind" } dd { (r.kind) }
            dt { "critical" } dd { (if r.critical { "yes" } else { "no" }) }
            @if let Some(since) = &r.since { dt { "since" } dd { time { (since) } } }
            @if let Some(l) = r.latency_ms { dt { "latency" } dd { (format!("{l:.1} ms")) } }
            @if d.authorized {
                @if let Some(reason) = r.reason { dt { "reason" } dd { (reason) } }
                dt { "message" } dd { (r.message.as_deref().unwrap_or("")) }
                @for (k, v) in r.details.iter() { dt { (k) } dd { (v.to_string()) } }
            }
        }
        @if let Some((window, past)) = p {
            (past::windows(*window, &format!("/status/{}", r.name)))
            p { (past::bar(past.bar.as_ref(), *window)) }
            h3 { "Response time" }
            (past::chart(&past.points))
            h3 { "Status changes" }
            (past::incidents(&past.incidents, false))
        }
        @if !d.authorized && d.auth_enabled { p { a href="/login" { "Log in" } " to see the reason, message and details." } }
    };
    page(&format!("{} — healthd", r.name), Some(d), body)
}

/// `/login`.
pub fn login(enabled: bool, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Log in" }
        @if !enabled {
            p { "Authorisation is off ([server.auth] is not set): everything is visible." }
            p { a href="/" { "Back to the status page" } }
        } @else {
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/login" {
                label for="token" { "Bearer token (the content of server.auth.token_file)" }
                input type="password" id="token" name="token" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        }
    };
    page("Log in — healthd", None, body)
}

/// A check name as one URL path segment.
fn url_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
