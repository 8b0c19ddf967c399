//! The HTTP edge: probe endpoints, `/health` and `/metrics`, all rendered from the latest
//! snapshot. No handler runs a probe or waits on one.

pub mod accept;
pub mod api;
pub mod auth;
mod cache;
pub mod conns;
pub mod grpc;
pub mod lane;
pub mod limits;
pub mod page;
mod plain;
mod prefixed;
mod probe;
pub mod push;
pub mod shed;
mod streamed;
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
use tokio::sync::mpsc;

use crate::config::Config;
use crate::config::server::LimitsConfig;
use crate::health::{Event, Policy, SharedSnapshot, Verdicts, verdict};
use crate::model::{Group, GroupSummary};

/// Options the endpoints read on every request; swapped on reload.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Who may see details (`[server.auth]`); open when not configured.
    pub auth: Arc<auth::Authorizer>,
    /// Request limits; read when the router is built.
    pub limits: LimitsConfig,
    /// The push checks (`POST /push/…`) with their tokens.
    pub push: Arc<push::PushTargets>,
    /// The listener speaks TLS (the login cookie is then `Secure`).
    pub tls: bool,
    /// `[server.status_page] enabled`; read when the router is built.
    pub status_page: bool,
}

impl ServerOptions {
    pub fn of(config: &Config) -> ServerOptions {
        ServerOptions {
            auth: Arc::new(auth::Authorizer::of(&config.server.auth)),
            limits: config.server.limits.clone(),
            push: Arc::new(push::PushTargets::of(config)),
            tls: config.server.tls.is_some(),
            status_page: config.server.status_page.enabled,
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The snapshot, the drain flag and the verdict policy, shared with the other renderers.
    pub verdicts: Verdicts,
    pub options: Arc<ArcSwap<ServerOptions>>,
    /// Where an accepted push goes at once (the health loop); `None` drops it (tests of
    /// the router alone).
    pub events: Option<mpsc::Sender<Event>>,
    /// `/health` and `/metrics` bodies, rendered once per snapshot.
    rendered: Arc<cache::RenderCache>,
    /// Series `/metrics` shows besides the snapshot's (the notifier's counters).
    pub metrics_extra: Vec<crate::telemetry::prometheus::Extra>,
    /// The latest host sample, published by the host collector (empty while it is off).
    pub host: crate::host::SharedHost,
    /// Past results, uptime and SLOs (`/api/v1`, `/health`, `/metrics`); `None` in tests of
    /// the router alone.
    pub history: Option<crate::history::History>,
    /// Requests and connections turned away under load (`healthd_http_shed_total`).
    pub shed: Arc<shed::Shed>,
}

impl AppState {
    pub fn new(snapshot: SharedSnapshot, policy: Policy, options: ServerOptions) -> AppState {
        let shed = Arc::new(shed::Shed::default());
        AppState {
            verdicts: Verdicts::new(snapshot, policy),
            options: Arc::new(ArcSwap::from_pointee(options)),
            events: None,
            rendered: Arc::default(),
            metrics_extra: vec![Arc::new(shed::ShedMetrics(shed.clone()))],
            host: Default::default(),
            history: None,
            shed,
        }
    }

    /// Serve history from this store and view.
    pub fn with_history(self, history: crate::history::History) -> AppState {
        AppState {
            history: Some(history),
            ..self
        }
    }

    /// Show these series in `/metrics` too.
    pub fn with_metrics(mut self, extra: crate::telemetry::prometheus::Extra) -> AppState {
        self.metrics_extra.push(extra);
        self
    }

    /// Send accepted pushes to the health loop.
    pub fn with_events(self, events: mpsc::Sender<Event>) -> AppState {
        AppState {
            events: Some(events),
            ..self
        }
    }

    /// The whole config after a reload: the verdict policy goes to the shared [`Verdicts`],
    /// the rest to the edge.
    pub fn reconfigure(&self, config: &Config) {
        self.verdicts.set_policy(Policy::of(config));
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
struct Access(pub(crate) bool);

/// Decide [`Access`] once per request from the peer address and the bearer token.
async fn access(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let allowed = state.options.load().auth.allows(peer, req.headers());
    req.extensions_mut().insert(Access(allowed));
    let mut r = next.run(req).await;
    // Draining: every answer closes its connection, so load balancers and keep-alive
    // clients reconnect (and re-resolve) instead of reusing a connection to a leaving pod.
    if state.verdicts.draining() {
        r.headers_mut().insert(header::CONNECTION, CLOSE.clone());
    }
    r
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
        .merge(push::routes())
        .merge(api::routes())
        .fallback(|| async { not_found() });
    let details = if state.options.load().status_page {
        details.merge(page::routes(std::time::Instant::now()))
    } else {
        details
    };
    let mut app = Router::new();
    for group in Group::ALL {
        app = app
            .route(
                &format!("/{}", group.path()),
                get(
                    move |s: State<AppState>, a: Extension<Access>, q: RawQuery, h: HeaderMap| {
                        probe::probe(s, a, q, h, group, None)
                    },
                ),
            )
            // As the Kubernetes API server: always `ok` while the process answers.
            .route(&format!("/{}/ping", group.path()), get(probe::ping))
            .route(
                &format!("/{}/{{check}}", group.path()),
                get(
                    move |s: State<AppState>,
                          a: Extension<Access>,
                          Path(check): Path<String>,
                          q: RawQuery,
                          h: HeaderMap| {
                        probe::probe(s, a, q, h, group, Some(check))
                    },
                ),
            );
    }
    let limits = state.options.load().limits.clone();
    limits::protect(app, details, &limits, state.shed.clone())
        .layer(axum::middleware::from_fn_with_state(state.clone(), access))
        .with_state(state)
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n".to_string())
}

async fn health(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
) -> Response {
    if !allowed {
        return unauthorized();
    }
    let snap = state.verdicts.snapshot.load_full();
    let view = state.history.as_ref().map(|h| h.view.load_full());
    let policy = state.verdicts.policy.load_full();
    let draining = state.verdicts.draining();
    // History's figures are refreshed apart from the snapshot: their generation is an input.
    let view_generation = view.as_ref().map_or(0, |v| Arc::as_ptr(v) as usize as u64);
    let key = (
        0,
        snap.seq,
        inputs(&policy, draining) ^ view_generation.rotate_left(17),
    );
    let body = state.rendered.get_or_render(key, || {
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
        serde_json::json!({
            "status": snap.overall(),
            "version": env!("CARGO_PKG_VERSION"),
            "started": snap.started,
            "draining": draining,
            "generated_at": humantime::format_rfc3339_millis(snap.generated_at).to_string(),
            "groups": groups,
            "checks": snap
                .checks
                .iter()
                .map(|c| api::with_history(c, view.as_deref()))
                .collect::<Vec<_>>(),
            "reload": snap.reload,
        })
        .to_string()
    });
    typed(StatusCode::OK, body, &APPLICATION_JSON)
}

/// What a rendered body depends on besides the snapshot: the verdict policy (swapped on
/// reload) and the drain flag.
fn inputs(policy: &Arc<Policy>, draining: bool) -> u64 {
    ((Arc::as_ptr(policy) as usize as u64) << 1) | u64::from(draining)
}

// Header values of the plain answers, checked once at compile time (`from_static` checks
// each byte again when it runs, which was 3 % of a `/readyz` request's instructions).
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
static CLOSE: HeaderValue = HeaderValue::from_static("close");

fn typed(code: StatusCode, body: axum::body::Bytes, content_type: &HeaderValue) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, content_type.clone());
    no_store(r)
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
    let seq = snap.seq;
    let host = state.host.load_full();
    // The host sample is published apart from the snapshot, and the notifier's and the
    // history writer's counters change without either: with them, a body is reused for at
    // most a second.
    let history = state.history.as_ref();
    let tick = if state.metrics_extra.is_empty() && history.is_none() {
        0
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let host_generation = host.as_ref().map_or(0, |h| Arc::as_ptr(h) as usize as u64);
    let inputs = tick.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ host_generation;
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let open_metrics = prom::wants_open_metrics(accept);
    let content_type = if open_metrics {
        prom::CONTENT_TYPE
    } else {
        prom::TEXT_CONTENT_TYPE
    };
    // Too large to keep: rendered chunk by chunk as it is sent (the detail budget's permit
    // lives as long as the body, see `limits`).
    if snap.checks.len() > prom::STREAM_ABOVE {
        let chunks = prom::Chunks::new(snap, host, history, &state.metrics_extra, open_metrics);
        let r = Response::new(streamed::body(chunks, gzip));
        return metrics_headers(r, content_type, gzip);
    }
    // At most one render per format per second, however fast the snapshot changes (see
    // `server::cache`); Prometheus scrapes every 15 s or more and asks for gzip.
    let fresh_for = METRICS_FRESH_FOR;
    let rendered = if open_metrics {
        state
            .rendered
            .recent_or_render((1, seq, inputs), fresh_for, || {
                prom::render_with(snap, host, history, &state.metrics_extra)
            })
    } else {
        state
            .rendered
            .recent_or_render((2, seq, inputs), fresh_for, || {
                prom::render_text_with(snap, host, history, &state.metrics_extra)
            })
    };
    let body = if gzip { rendered.gzip() } else { rendered.body };
    metrics_headers(Response::new(body.into()), content_type, gzip)
}

/// A `/metrics` answer's headers: its type, its encoding, and that it varies by encoding.
fn metrics_headers(mut r: Response, content_type: &'static str, gzip: bool) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    no_store(r)
}

/// How long a rendered `/metrics` body is served after the snapshot changed.
const METRICS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether an `Accept-Encoding` value accepts gzip (`gzip`, `gzip;q=0.5`; not `gzip;q=0`).
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
            && parts.all(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_none_or(|q| q > 0.0)
            })
    })
}

fn text(code: StatusCode, body: String) -> Response {
    typed(code, body.into(), &TEXT_PLAIN)
}

fn json(code: StatusCode, body: &serde_json::Value) -> Response {
    typed(code, body.to_string().into(), &APPLICATION_JSON)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, NO_STORE.clone());
    r
}

/// A name echoed back in a body: printable ASCII only, bounded.
pub(crate) fn sanitize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}
