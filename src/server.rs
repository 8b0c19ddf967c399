//! The HTTP edge: probe endpoints, `/health` and `/metrics`, all rendered from the latest
//! snapshot. No handler runs a probe or waits on one.

pub mod auth;
pub mod limits;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::config::{Config, Group, GroupOptions};
use crate::health::{CheckView, GroupSummary, HEARTBEAT, SharedSnapshot, Snapshot, Status};

/// Options the endpoints read on every request; swapped on reload.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The snapshot is stale (liveness fails) when older than this.
    pub stall_after: Duration,
    pub groups: BTreeMap<Group, GroupOptions>,
    /// Who may see details (`[server.auth]`); open when not configured.
    pub auth: Arc<auth::Authorizer>,
    /// Request limits; read when the router is built.
    pub limits: limits::LimitsConfig,
}

impl ServerOptions {
    pub fn of(config: &Config) -> ServerOptions {
        ServerOptions {
            stall_after: config.server.stall_after,
            groups: Group::ALL
                .iter()
                .map(|g| (*g, config.group_options(*g)))
                .collect(),
            auth: Arc::new(auth::Authorizer::of(&config.server.auth)),
            limits: config.server.limits.clone(),
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub snapshot: SharedSnapshot,
    /// Set on SIGTERM: readiness answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    pub options: Arc<ArcSwap<ServerOptions>>,
}

impl AppState {
    pub fn new(snapshot: SharedSnapshot, options: ServerOptions) -> AppState {
        AppState {
            snapshot,
            draining: Arc::new(AtomicBool::new(false)),
            options: Arc::new(ArcSwap::from_pointee(options)),
        }
    }
}

/// Semantic problems of `[server]` as (key, reason), for config validation.
pub fn validate(server: &crate::config::ServerConfig) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if server.max_in_flight == 0 {
        problems.push(("server.max_in_flight".into(), "must be at least 1".into()));
    }
    if let Some(a) = &server.auth {
        for (k, r) in a.validate() {
            problems.push((format!("server.auth.{k}"), r));
        }
    }
    if let Some(t) = &server.tls {
        for (k, r) in t.validate() {
            problems.push((format!("server.tls.{k}"), r));
        }
    }
    for (k, r) in server.limits.validate() {
        problems.push((format!("server.limits.{k}"), r));
    }
    problems
}

/// Whether the caller may see details (check names' reasons, messages, JSON, metrics).
#[derive(Debug, Clone, Copy)]
struct Access(bool);

/// Decide [`Access`] once per request from the peer address and the bearer token.
async fn access(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let allowed = state.options.load().auth.allows(peer, req.headers());
    req.extensions_mut().insert(Access(allowed));
    next.run(req).await
}

fn unauthorized() -> Response {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "authorization required\n".to_string(),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"healthd\""),
    );
    r
}

/// All routes, behind the request limits of [`limits::protect`].
pub fn router(state: AppState) -> Router {
    let details = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found);
    let mut app = Router::new();
    for group in Group::ALL {
        app = app
            .route(
                &format!("/{}", group.path()),
                get(
                    move |s: State<AppState>, a: Extension<Access>, q: RawQuery, h: HeaderMap| {
                        probe(s, a, q, h, group, None)
                    },
                ),
            )
            .route(
                &format!("/{}/{{check}}", group.path()),
                get(
                    move |s: State<AppState>,
                          a: Extension<Access>,
                          Path(check): Path<String>,
                          q: RawQuery,
                          h: HeaderMap| {
                        probe(s, a, q, h, group, Some(check))
                    },
                ),
            );
    }
    let limits = state.options.load().limits.clone();
    limits::protect(app, details, &limits)
        .layer(axum::middleware::from_fn_with_state(state.clone(), access))
        .with_state(state)
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n".to_string())
}

/// Query parameters the probe endpoints understand; anything else is ignored, as the
/// Kubernetes API server does.
#[derive(Debug, Default)]
struct ProbeQuery {
    verbose: bool,
    json: bool,
    exclude: Vec<String>,
}

impl ProbeQuery {
    fn parse(raw: Option<&str>, headers: &HeaderMap) -> ProbeQuery {
        let mut q = ProbeQuery::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "verbose" => q.verbose = !matches!(v.as_ref(), "false" | "0"),
                "format" => q.json = v == "json",
                "exclude" => q
                    .exclude
                    .extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
                _ => {}
            }
        }
        if let Some(accept) = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok())
            && accept.contains("application/json")
        {
            q.json = true;
        }
        q
    }
}

/// One member of a group as an endpoint shows it.
#[derive(Serialize)]
struct Member<'a> {
    #[serde(flatten)]
    check: &'a CheckView,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    excluded: bool,
}

/// The verdict of a group (or one check) at request time.
struct Verdict<'a> {
    status: Status,
    pass: bool,
    /// Short word for the plain body.
    word: &'static str,
    members: Vec<(Arc<CheckView>, bool)>,
    snapshot: &'a Snapshot,
}

fn verdict<'a>(
    snap: &'a Snapshot,
    group: Group,
    only: Option<&Arc<CheckView>>,
    exclude: &[String],
    options: &ServerOptions,
    draining: bool,
    with_members: bool,
) -> Verdict<'a> {
    let fail_on_degraded = options
        .groups
        .get(&group)
        .map(|g| g.fail_on_degraded)
        .unwrap_or(false);
    let stale = snap.age() > options.stall_after;
    // The plain answer for a whole group needs only its status, which the snapshot already
    // holds: that spares touching every member's reference count on each request.
    let summary = if only.is_none() && exclude.is_empty() && !stale && !with_members {
        snap.groups.get(&group)
    } else {
        None
    };
    let mut members: Vec<(Arc<CheckView>, bool)> = match (only, summary) {
        (_, Some(_)) => Vec::new(),
        (Some(c), None) => vec![(c.clone(), false)],
        (None, None) => snap
            .members(group)
            .map(|c| (c.clone(), exclude.iter().any(|e| e == &c.name)))
            .collect(),
    };
    // A stalled snapshot loop must not keep reporting the heartbeat as alive.
    if stale {
        for (c, _) in members
            .iter_mut()
            .filter(|(c, _)| c.builtin && c.name == HEARTBEAT)
        {
            let mut v = CheckView::clone(c);
            v.status = Status::Unhealthy;
            v.message = format!(
                "snapshot loop stalled: last snapshot {:.1}s ago",
                snap.age().as_secs_f64()
            );
            *c = Arc::new(v);
        }
    }
    let status = match summary {
        Some(g) => g.status,
        None => members
            .iter()
            .filter(|(_, excluded)| !excluded)
            .fold(Status::Healthy, |s, (c, _)| s.worst(c.status)),
    };
    let (status, word) = match group {
        Group::Readiness if draining => (Status::Unhealthy, "shutting down"),
        Group::Readiness if !snap.started && only.is_none() => (Status::Unknown, "starting"),
        Group::Startup if only.is_none() => {
            if snap.started {
                (Status::Healthy, "ok")
            } else {
                (Status::Unknown, "starting")
            }
        }
        _ => (status, word_of(status)),
    };
    Verdict {
        status,
        pass: status.passes(fail_on_degraded),
        word,
        members,
        snapshot: snap,
    }
}

/// What `/{group}` answers now, as `(passes, word)`, for renderers outside HTTP (the systemd
/// `STATUS=` line).
pub fn group_verdict(state: &AppState, group: Group) -> (bool, &'static str) {
    let snap = state.snapshot.load_full();
    let options = state.options.load();
    let draining = state.draining.load(Ordering::Relaxed);
    let v = verdict(&snap, group, None, &[], &options, draining, false);
    (v.pass, v.word)
}

fn word_of(status: Status) -> &'static str {
    match status {
        Status::Healthy => "ok",
        Status::Degraded => "degraded",
        Status::Unhealthy => "unhealthy",
        Status::Unknown => "unknown",
    }
}

async fn probe(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    group: Group,
    check: Option<String>,
) -> Response {
    let snap = state.snapshot.load_full();
    let options = state.options.load();
    let q = ProbeQuery::parse(raw.as_deref(), &headers);
    // Single-check paths reveal names and JSON carries messages: both need authorisation.
    if !allowed && (check.is_some() || q.json) {
        return unauthorized();
    }
    let only = match &check {
        Some(name) => match snap.members(group).find(|c| &c.name == name) {
            Some(c) => Some(c.clone()),
            None => {
                return text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no check named \"{}\" in {}\n",
                        sanitize(name),
                        group.as_str()
                    ),
                );
            }
        },
        None => None,
    };
    let draining = state.draining.load(Ordering::Relaxed);
    let v = verdict(
        &snap,
        group,
        only.as_ref(),
        &q.exclude,
        &options,
        draining,
        q.json || q.verbose,
    );
    let code = if v.pass {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if q.json {
        let members: Vec<Member> = v
            .members
            .iter()
            .map(|(c, excluded)| Member {
                check: c,
                excluded: *excluded,
            })
            .collect();
        let body = serde_json::json!({
            "group": group.as_str(),
            "status": v.status,
            "pass": v.pass,
            "started": v.snapshot.started,
            "draining": draining,
            "checks": members,
        });
        return json(code, &body);
    }
    if !q.verbose {
        return text(code, format!("{}\n", v.word));
    }
    let mut body = String::new();
    for (c, excluded) in &v.members {
        let line = if *excluded {
            format!("[+]{} excluded: {}\n", c.name, word_of(c.status))
        } else if !allowed {
            match c.status {
                Status::Healthy => format!("[+]{} ok\n", c.name),
                Status::Degraded => format!("[+]{} degraded: reason withheld\n", c.name),
                Status::Unhealthy => format!("[-]{} failed: reason withheld\n", c.name),
                Status::Unknown => format!("[-]{} unknown: reason withheld\n", c.name),
            }
        } else {
            match c.status {
                Status::Healthy => format!("[+]{} ok\n", c.name),
                Status::Degraded => format!("[+]{} degraded: {}\n", c.name, reason_of(c)),
                Status::Unhealthy => format!("[-]{} failed: {}\n", c.name, reason_of(c)),
                Status::Unknown => format!("[-]{} unknown: {}\n", c.name, reason_of(c)),
            }
        };
        body.push_str(&line);
    }
    let name = check
        .as_deref()
        .map(sanitize)
        .unwrap_or_else(|| group.path().to_string());
    if v.pass {
        body.push_str(&format!("{name} check passed\n"));
    } else {
        body.push_str(&format!("{name} check failed: {}\n", v.word));
    }
    text(code, body)
}

fn reason_of(c: &CheckView) -> &'static str {
    match c.reason {
        Some(r) => r.as_str(),
        None if c.status == Status::Unknown => "no result yet",
        None => "no reason",
    }
}

/// A name echoed back in a body: printable ASCII only, bounded.
fn sanitize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

async fn health(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
) -> Response {
    if !allowed {
        return unauthorized();
    }
    let snap = state.snapshot.load_full();
    let options = state.options.load();
    let draining = state.draining.load(Ordering::Relaxed);
    let groups: BTreeMap<&str, serde_json::Value> = Group::ALL
        .iter()
        .map(|g| {
            let v = verdict(&snap, *g, None, &[], &options, draining, true);
            let summary = GroupSummary::of(v.members.iter().map(|(c, _)| c.as_ref()));
            (
                g.as_str(),
                serde_json::json!({
                    "status": v.status,
                    "pass": v.pass,
                    "checks": summary.checks,
                    "healthy": summary.healthy,
                    "degraded": summary.degraded,
                    "unhealthy": summary.unhealthy,
                    "unknown": summary.unknown,
                }),
            )
        })
        .collect();
    let body = serde_json::json!({
        "status": snap.overall(),
        "version": env!("CARGO_PKG_VERSION"),
        "started": snap.started,
        "draining": draining,
        "generated_at": humantime::format_rfc3339_millis(snap.generated_at).to_string(),
        "groups": groups,
        "checks": snap.checks.iter().map(|c| c.as_ref()).collect::<Vec<_>>(),
        "reload": snap.reload,
    });
    json(StatusCode::OK, &body)
}

async fn metrics(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    headers: HeaderMap,
) -> Response {
    use crate::telemetry::prometheus as prom;
    if !allowed {
        return unauthorized();
    }
    let snap = state.snapshot.load_full();
    // OpenMetrics when the scraper asks for it (Prometheus does), else the classic text format.
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (body, content_type) = if prom::wants_open_metrics(accept) {
        (prom::render(snap), prom::CONTENT_TYPE)
    } else {
        (prom::render_text(snap), prom::TEXT_CONTENT_TYPE)
    };
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    no_store(r)
}

fn text(code: StatusCode, body: String) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    no_store(r)
}

fn json(code: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (code, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(r)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
