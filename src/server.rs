//! The HTTP edge: probe endpoints, `/health` and `/metrics`, all rendered from the latest
//! snapshot. No handler runs a probe or waits on one.

pub mod auth;
pub mod conns;
pub mod limits;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::config::Config;
use crate::config::server::LimitsConfig;
use crate::health::{CheckView, Policy, SharedSnapshot, Verdicts, verdict};
use crate::model::{Group, GroupSummary, Status};

/// Options the endpoints read on every request; swapped on reload.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Who may see details (`[server.auth]`); open when not configured.
    pub auth: Arc<auth::Authorizer>,
    /// Request limits; read when the router is built.
    pub limits: LimitsConfig,
}

impl ServerOptions {
    pub fn of(config: &Config) -> ServerOptions {
        ServerOptions {
            auth: Arc::new(auth::Authorizer::of(&config.server.auth)),
            limits: config.server.limits.clone(),
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The snapshot, the drain flag and the verdict policy, shared with the other renderers.
    pub verdicts: Verdicts,
    pub options: Arc<ArcSwap<ServerOptions>>,
    /// The latest host sample, published by the host collector (empty while it is off).
    pub host: crate::host::SharedHost,
}

impl AppState {
    pub fn new(snapshot: SharedSnapshot, policy: Policy, options: ServerOptions) -> AppState {
        AppState {
            verdicts: Verdicts::new(snapshot, policy),
            options: Arc::new(ArcSwap::from_pointee(options)),
            host: Default::default(),
        }
    }

    /// The whole config after a reload: the verdict policy goes to the shared [`Verdicts`],
    /// the rest to the edge.
    pub fn reconfigure(&self, config: &Config) {
        self.verdicts.policy.store(Arc::new(Policy::of(config)));
        self.options.store(Arc::new(ServerOptions::of(config)));
    }

    /// After a rejected reload: re-read the running config's secrets, so that a token file
    /// removed or made unreadable locks details for everyone (fail closed) instead of
    /// leaving the old token valid. Returns whether details are now locked.
    pub fn recheck_secrets(&self, running: &Config) -> bool {
        let options = ServerOptions::of(running);
        let locked = options.auth.locked();
        self.options.store(Arc::new(options));
        locked
    }
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
            && accept.to_ascii_lowercase().contains("application/json")
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

async fn probe(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    group: Group,
    check: Option<String>,
) -> Response {
    let snap = state.verdicts.snapshot.load_full();
    let policy = state.verdicts.policy.load();
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
    let draining = state.verdicts.draining();
    let v = verdict(
        &snap,
        group,
        only.as_ref(),
        &q.exclude,
        &policy,
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
            format!("[+]{} excluded: {}\n", c.name, c.status.word())
        } else if c.pending {
            format!("[+]{} pending: no result yet\n", c.name)
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
    let snap = state.verdicts.snapshot.load_full();
    let policy = state.verdicts.policy.load();
    let draining = state.verdicts.draining();
    let groups: BTreeMap<&str, serde_json::Value> = Group::ALL
        .iter()
        .map(|g| {
            let v = verdict(&snap, *g, None, &[], &policy, draining, true);
            let summary = GroupSummary::of(v.members.iter().filter_map(|(c, _)| c.counted()));
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
    let snap = state.verdicts.snapshot.load_full();
    // OpenMetrics when the scraper asks for it (Prometheus does), else the classic text format.
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (body, content_type) = if prom::wants_open_metrics(accept) {
        (
            prom::render(snap, state.host.load_full()),
            prom::CONTENT_TYPE,
        )
    } else {
        (
            prom::render_text(snap, state.host.load_full()),
            prom::TEXT_CONTENT_TYPE,
        )
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
