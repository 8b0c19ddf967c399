//! Badges in the shields.io style for READMEs and wikis: `/badge/{name}.svg` (status),
//! `/badge/{name}/latency.svg`, `/badge/{name}/uptime.svg?window=7d` (from history), and `/badge/group/{group}.svg`. A check's badge names it, so
//! it needs authorisation like `/readyz/{name}`; a group's verdict is public like `/readyz`.
//! `Cache-Control: max-age=5`.

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};

use super::super::{Access, AppState, not_found, unauthorized};
use crate::model::{Group, Status};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/badge/group/{file}", get(group_badge))
        .route("/badge/{file}", get(status_badge))
        .route("/badge/{name}/{file}", get(metric_badge))
}

const GREEN: &str = "#2e7d32";
const AMBER: &str = "#b26a00";
const RED: &str = "#c62828";
const GREY: &str = "#616161";

fn colour(s: Status) -> &'static str {
    match s {
        Status::Healthy => GREEN,
        Status::Degraded => AMBER,
        Status::Unhealthy => RED,
        Status::Unknown => GREY,
    }
}

/// Width of `text` in px at 11px Verdana, from per-character classes (close enough to
/// shields.io's measured widths for a badge to look right).
fn text_width(text: &str) -> u32 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '!' | '|' | '\'' | 'I' | 'f' | 't' | 'r' => 4,
            'm' | 'w' | 'M' | 'W' | '%' => 10,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 8,
            _ => 7,
        })
        .sum::<u32>()
        + 10
}

/// The SVG of a two-part badge; maud escapes both texts.
pub fn svg(label: &str, message: &str, fill: &str) -> String {
    let (lw, mw) = (text_width(label), text_width(message));
    let w = lw + mw;
    let markup: Markup = html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height="20" role="img"
            aria-label={(label) ": " (message)} {
            title { (label) ": " (message) }
            rect width=(lw) height="20" fill="#555" {}
            rect x=(lw) width=(mw) height="20" fill=(fill) {}
            g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" {
                text x=(lw / 2) y="14" { (label) }
                text x=(lw + mw / 2) y="14" { (message) }
            }
        }
    };
    markup.into_string()
}

fn reply(body: String) -> Response {
    super::with_headers(
        (StatusCode::OK, body).into_response(),
        &[
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=5"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
    )
}

async fn group_badge(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return not_found();
    };
    let Some(group) = Group::named(name) else {
        return not_found();
    };
    let (pass, word) = state.verdicts.group(group);
    reply(svg(group.as_str(), word, if pass { GREEN } else { RED }))
}

async fn status_badge(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    Path(file): Path<String>,
) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return not_found();
    };
    if !allowed {
        return unauthorized();
    }
    let snap = state.verdicts.snapshot.load_full();
    match snap.check(name) {
        Some(c) => reply(svg(&c.name, c.status.as_str(), colour(c.status))),
        None => not_found(),
    }
}

async fn metric_badge(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    Path((name, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if !allowed {
        return unauthorized();
    }
    let snap = state.verdicts.snapshot.load_full();
    let Some(c) = snap.check(&name) else {
        return not_found();
    };
    match file.as_str() {
        "latency.svg" => {
            let text = c
                .latency_ms
                .map_or("no data".to_string(), |l| format!("{l:.0} ms"));
            reply(svg("latency", &text, colour(c.status)))
        }
        "uptime.svg" => {
            let Some(history) = &state.history else {
                return not_found();
            };
            let window = super::window_of(query.as_deref());
            let bars = super::history::bars(history, vec![name.clone()], window).await;
            let text = bars
                .get(&name)
                .and_then(|b| b.availability)
                .map_or("no data".to_string(), |a| format!("{:.2}%", a * 100.0));
            let fill = match bars.get(&name).and_then(|b| b.availability) {
                Some(a) if a >= 0.999 => GREEN,
                Some(a) if a >= 0.99 => AMBER,
                Some(_) => RED,
                None => GREY,
            };
            reply(svg(&format!("uptime {}", window.label()), &text, fill))
        }
        _ => not_found(),
    }
}
