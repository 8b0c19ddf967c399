//! `/api/v1`: history as JSON, behind the same access rule as `/health`. Every answer is a
//! bounded page; reads run on the blocking pool, never on the request's worker.
//!
//! - `GET /api/v1/checks`: every check configured or remembered, with its uptime and SLO;
//! - `GET /api/v1/checks/{name}/history?from=&to=&step=1m|1h|1d&limit=`: buckets;
//! - `GET /api/v1/checks/{name}/events?from=&to=&limit=`: status changes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Access, AppState, json, unauthorized};
use crate::health::CheckView;
use crate::history::query::{self, PAGE};
use crate::history::record::{Resolution, from_ms, unix_ms};
use crate::history::store::Reader;
use crate::history::{History, HistoryView, StoreError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/checks", get(checks))
        .route("/api/v1/checks/{name}/history", get(history))
        .route("/api/v1/checks/{name}/events", get(events))
}

/// A check's `/health` entry with its `uptime` and `slo` (when history has them).
pub fn with_history(c: &CheckView, view: Option<&HistoryView>) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    if let Some(view) = view {
        extend(&mut v, view, &c.name);
    }
    v
}

/// Add the check's `uptime` and `slo` fields from the view to its JSON object.
fn extend(v: &mut Value, view: &HistoryView, name: &str) {
    if let (Some(h), Value::Object(obj)) = (view.get(name), v)
        && let Ok(Value::Object(extra)) = serde_json::to_value(h)
    {
        obj.extend(extra);
    }
}

/// Why a request was not answered with data; becomes a JSON `{"error": …}` answer.
enum Refusal {
    Unauthorized,
    Status(StatusCode, String),
}

impl Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized => unauthorized(),
            Refusal::Status(code, error) => json(code, &json!({ "error": error })),
        }
    }
}

fn failed() -> Refusal {
    Refusal::Status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "history read failed".into(),
    )
}

/// The parameters of a page: `from`, `to` (RFC 3339 or Unix seconds), `step`, `limit`.
struct Page {
    from_ms: u64,
    to_ms: u64,
    step: Resolution,
    limit: usize,
}

fn parse_time(key: &str, v: &str) -> Result<u64, String> {
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(secs.saturating_mul(1000));
    }
    humantime::parse_rfc3339_weak(v)
        .map(unix_ms)
        .map_err(|_| format!("{key}: expected an RFC 3339 time or Unix seconds, got {v:?}"))
}

fn page(raw: Option<String>, default_span: fn(Resolution) -> Duration) -> Result<Page, String> {
    let params: BTreeMap<String, String> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    for key in params.keys() {
        if !matches!(key.as_str(), "from" | "to" | "step" | "limit") {
            return Err(format!("{key}: unknown parameter (from, to, step, limit)"));
        }
    }
    let step = match params.get("step") {
        None => Resolution::Minute,
        Some(s) => {
            Resolution::parse(s).ok_or_else(|| format!("step: expected 1m, 1h or 1d, got {s:?}"))?
        }
    };
    let to_ms = match params.get("to") {
        Some(v) => parse_time("to", v)?,
        None => unix_ms(SystemTime::now()),
    };
    let from_ms = match params.get("from") {
        Some(v) => parse_time("from", v)?,
        None => to_ms.saturating_sub(default_span(step).as_millis() as u64),
    };
    if from_ms >= to_ms {
        return Err("from: must be before to".into());
    }
    let limit = match params.get("limit") {
        None => PAGE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=PAGE).contains(&n) => n,
            _ => return Err(format!("limit: expected 1 to {PAGE}, got {v:?}")),
        },
    };
    Ok(Page {
        from_ms,
        to_ms,
        step,
        limit,
    })
}

/// Run a read of the store on the blocking pool.
async fn read<T: Send + 'static>(
    history: &History,
    f: impl FnOnce(&Reader) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Refusal> {
    let store = history.store.clone();
    match tokio::task::spawn_blocking(move || store.read().and_then(|r| f(&r))).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "History read failed.");
            Err(failed())
        }
        Err(_) => Err(failed()),
    }
}

fn guard(state: &AppState, allowed: bool) -> Result<History, Refusal> {
    if !allowed {
        return Err(Refusal::Unauthorized);
    }
    state
        .history
        .clone()
        .ok_or_else(|| Refusal::Status(StatusCode::NOT_FOUND, "history is not kept here".into()))
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(from_ms(ms)).to_string()
}

async fn checks(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
) -> Response {
    list(state, allowed)
        .await
        .unwrap_or_else(Refusal::into_response)
}

async fn list(state: AppState, allowed: bool) -> Result<Response, Refusal> {
    let history = guard(&state, allowed)?;
    let known = read(&history, |r| r.checks()).await?;
    let snap = state.verdicts.snapshot.load_full();
    let view = history.view.load_full();
    let mut out: Vec<Value> = Vec::new();
    for c in snap.checks.iter().filter(|c| !c.builtin) {
        let info = known.get(&c.name);
        let mut v = json!({
            "name": c.name,
            "kind": c.kind,
            "configured": true,
            "status": c.status,
            "first_result": info.map(|i| rfc3339(i.first_ms)),
            "last_result": info.map(|i| rfc3339(i.last_ms)),
        });
        extend(&mut v, &view, &c.name);
        out.push(v);
    }
    // Removed checks keep their history until its retention ends.
    for (name, info) in &known {
        if snap.check(name).is_none() {
            out.push(json!({
                "name": name,
                "kind": info.kind,
                "configured": false,
                "first_result": rfc3339(info.first_ms),
                "last_result": rfc3339(info.last_ms),
            }));
        }
    }
    Ok(json(StatusCode::OK, &json!({ "checks": out })))
}

/// What one page of a check's history is read with.
type PageRead = fn(&Reader, u32, &Page) -> Result<Value, StoreError>;

/// Answer a page of check `name`'s history: access, parameters, the read, 404 for a check
/// the store does not know.
async fn one_check(
    state: AppState,
    allowed: bool,
    name: String,
    q: Option<String>,
    span: fn(Resolution) -> Duration,
    f: PageRead,
) -> Response {
    let answer = async {
        let history = guard(&state, allowed)?;
        let p = page(q, span).map_err(|e| Refusal::Status(StatusCode::BAD_REQUEST, e))?;
        let n = name.clone();
        let found = read(&history, move |r| match r.check(&n)? {
            Some(info) => f(r, info.id, &p).map(Some),
            None => Ok(None),
        })
        .await?;
        let Some(Value::Object(mut body)) = found else {
            let shown = super::sanitize(&name);
            return Err(Refusal::Status(
                StatusCode::NOT_FOUND,
                format!("no history for check {shown:?}"),
            ));
        };
        body.insert("check".into(), Value::String(name));
        Ok(json(StatusCode::OK, &Value::Object(body)))
    };
    answer.await.unwrap_or_else(Refusal::into_response)
}

async fn history(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    // A day of minutes, a month of hours, a year of days by default.
    let span = |s| match s {
        Resolution::Minute => Duration::from_secs(86_400),
        Resolution::Hour => Duration::from_secs(30 * 86_400),
        Resolution::Day => Duration::from_secs(365 * 86_400),
    };
    one_check(state, allowed, name, q, span, |r, id, p| {
        let (points, next) = query::points(r, id, p.step, p.from_ms, p.to_ms, p.limit)?;
        Ok(json!({
            "step": p.step.step(),
            "from": rfc3339(p.from_ms),
            "to": rfc3339(p.to_ms),
            "points": points,
            "next_from": next.map(rfc3339),
        }))
    })
    .await
}

async fn events(
    State(state): State<AppState>,
    Extension(Access(allowed)): Extension<Access>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let span = |_| Duration::from_secs(365 * 86_400);
    one_check(state, allowed, name, q, span, |r, id, p| {
        let (events, next) = query::events(r, id, p.from_ms, p.to_ms, p.limit)?;
        Ok(json!({ "events": events, "next_from": next.map(rfc3339) }))
    })
    .await
}
