//! The status page: `/` and `/status` (every check, grouped, with the three verdicts),
//! `/status/{name}` (one check), `/status.json` (what the page's script polls for live
//! updates), `/login` (a form that turns the bearer token into a cookie), badges and the
//! embedded assets. Rendered on the server from the snapshot (readable without JavaScript);
//! the script only refreshes it. It obeys `[server.auth]` as `/health` does: without
//! authorisation, names and verdicts only. Nothing runs while nobody looks.

mod badge;
mod data;
mod history;
mod past;
mod view;

use std::time::Instant;

use axum::Router;
use axum::extract::{Extension, Form, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::auth::COOKIE;
use super::{Access, AppState, not_found};
use data::PageData;

const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Security headers of every page response: no inline script, no framing, no sniffing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page's routes (merged into the detail budget by the router).
pub fn routes(started: Instant) -> Router<AppState> {
    Router::new()
        .route("/", get(move |s, a, q| index(s, a, q, started)))
        .route("/status", get(move |s, a, q| index(s, a, q, started)))
        .route(
            "/status/{name}",
            get(move |s, a, p, q| detail(s, a, p, q, started)),
        )
        .route("/status.json", get(move |s, a| state_json(s, a, started)))
        .route(
            "/login",
            get(login_form)
                .post(login)
                .layer(axum::extract::DefaultBodyLimit::max(1024)),
        )
        .route("/logout", get(logout))
        .route(
            "/static/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .merge(badge::routes())
}

/// Add headers to a response.
fn with_headers(mut r: Response, headers: &[(header::HeaderName, &'static str)]) -> Response {
    for (name, value) in headers {
        r.headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
    r
}

/// Add the page's security headers to a response.
fn secured(r: Response) -> Response {
    with_headers(
        r,
        &[
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let r = secured((StatusCode::OK, body).into_response());
    with_headers(
        r,
        &[
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
    )
}

async fn index(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    RawQuery(query): RawQuery,
    started: Instant,
) -> Response {
    let data = PageData::of(&state, allowed, started);
    let window = window_of(query.as_deref());
    let past = match (&state.history, allowed) {
        // History is a detail: only for the authorised, as /api/v1.
        (Some(h), true) => {
            let names: Vec<String> = data.rows.iter().map(|r| r.name.clone()).collect();
            Some(view::IndexPast {
                window,
                bars: history::bars(h, names.clone(), window).await,
                timeline: history::timeline(h, names, TIMELINE).await,
                slo: h.view.load_full(),
            })
        }
        _ => None,
    };
    secured(view::index(&data, past.as_ref()).into_response())
}

/// Status changes listed in the page's incident timeline (the last 7 days).
const TIMELINE: usize = 50;

/// `?window=24h|7d|30d|90d` (default 24h).
pub(super) fn window_of(query: Option<&str>) -> history::Window {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "window")
        .and_then(|(_, v)| history::Window::parse(&v))
        .unwrap_or(history::Window::Day)
}

async fn detail(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    started: Instant,
) -> Response {
    let data = PageData::of(&state, allowed, started);
    let Some(row) = data.rows.iter().find(|r| r.name == name) else {
        return secured(not_found());
    };
    let window = window_of(query.as_deref());
    let past = match (&state.history, allowed) {
        (Some(h), true) => Some((window, history::check_past(h, name.clone(), window).await)),
        _ => None,
    };
    secured(view::detail(&data, row, past.as_ref()).into_response())
}

async fn state_json(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    started: Instant,
) -> Response {
    let data = PageData::of(&state, allowed, started);
    let mut r = (StatusCode::OK, axum::Json(data)).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, super::APPLICATION_JSON.clone());
    secured(r)
}

async fn login_form(State(state): State<AppState>) -> Response {
    let enabled = state.options.load().auth.enabled();
    secured(view::login(enabled, None).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// The login form: the bearer token, checked in constant time, becomes an `HttpOnly`,
/// `SameSite=Strict` cookie holding its SHA-256 digest (the token itself is never stored
/// in the browser). A wrong token gets the form again with `401`.
async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let options = state.options.load();
    let auth = &options.auth;
    if !auth.accepts_token(form.token.as_bytes()) {
        let mut r = view::login(auth.enabled(), Some("wrong token")).into_response();
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return secured(r);
    }
    let secure = if options.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        super::auth::digest_hex(form.token.trim().as_bytes())
    );
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    secured(r)
}

async fn logout() -> Response {
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("healthd_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    secured(r)
}
