//! The probe endpoints (`/livez`, `/readyz`, `/startupz`, each also `/{check}` and `/ping`)
//! with the Kubernetes API server's conventions (k8s.io/apiserver `pkg/server/healthz`):
//! `?verbose` lines `[+]name ok` / `[-]name failed: reason`, a final `readyz check passed` or
//! `readyz check failed`, `?exclude=` with a warning for names that match nothing, bodies
//! bounded at 10 KiB, and JSON on request.

use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use super::{Access, AppState, json, sanitize, text, unauthorized};
use crate::health::{CheckView, verdict};
use crate::model::{Group, Status};

/// kubelet reads at most 10 KiB of a probe's body; a verbose body stays below that.
const MAX_BODY: usize = 10 * 1024;

pub(super) async fn ping() -> Response {
    text(StatusCode::OK, "ok\n".to_string())
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

pub(super) async fn probe(
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
    let mut lines: Vec<(bool, String)> = v
        .members
        .iter()
        .map(|(c, excluded)| member_line(c, *excluded, allowed))
        .collect();
    // What fails the group apart from its members goes on a check line of its own, as the
    // API server's `shutdown` check does; the final line is then only passed or failed.
    if !v.pass && only.is_none() {
        match v.word {
            "shutting down" => lines.push((false, "[-]shutdown failed: shutting down\n".into())),
            "starting" => lines.push((false, "[-]startup failed: starting\n".into())),
            _ => {}
        }
    }
    let mut tail = String::new();
    let unmatched: Vec<String> = q
        .exclude
        .iter()
        .filter(|e| !v.members.iter().any(|(c, _)| &c.name == *e))
        .map(|e| format!("\"{}\"", sanitize(e)))
        .collect();
    if !unmatched.is_empty() {
        tail.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            unmatched.join(",")
        ));
    }
    let name = check
        .as_deref()
        .map(sanitize)
        .unwrap_or_else(|| group.path().to_string());
    tail.push_str(&format!(
        "{name} check {}\n",
        if v.pass { "passed" } else { "failed" }
    ));
    text(code, bounded(lines, &tail))
}

/// One member's `[+]`/`[-]` line, and whether it passes; reasons only for the authorised.
fn member_line(c: &CheckView, excluded: bool, allowed: bool) -> (bool, String) {
    let why = |c: &CheckView| {
        if allowed {
            reason_of(c)
        } else {
            "reason withheld"
        }
    };
    let line = if excluded {
        format!("[+]{} excluded: {}\n", c.name, c.status.word())
    } else if c.pending {
        format!("[+]{} pending: no result yet\n", c.name)
    } else {
        match c.status {
            Status::Healthy => format!("[+]{} ok\n", c.name),
            Status::Degraded => format!("[+]{} degraded: {}\n", c.name, why(c)),
            Status::Unhealthy => format!("[-]{} failed: {}\n", c.name, why(c)),
            Status::Unknown => format!("[-]{} unknown: {}\n", c.name, why(c)),
        }
    };
    (line.starts_with("[+]"), line)
}

/// The verbose body under [`MAX_BODY`]: every line when they fit; otherwise the failing
/// lines first, then passing ones, while they fit, and a line saying how many were left out.
fn bounded(lines: Vec<(bool, String)>, tail: &str) -> String {
    let total: usize = lines.iter().map(|(_, l)| l.len()).sum::<usize>() + tail.len();
    if total <= MAX_BODY {
        return lines.into_iter().map(|(_, l)| l).collect::<String>() + tail;
    }
    // Room for the "left out" line as well.
    let budget = MAX_BODY - tail.len() - 96;
    let (failing, passing): (Vec<_>, Vec<_>) = lines.into_iter().partition(|(ok, _)| !ok);
    let mut body = String::with_capacity(MAX_BODY);
    let mut left_out = 0usize;
    for (_, line) in failing.into_iter().chain(passing) {
        if body.len() + line.len() <= budget {
            body.push_str(&line);
        } else {
            left_out += 1;
        }
    }
    body.push_str(&format!(
        "info: {left_out} more checks not shown (bodies stay under 10 KiB; /health has them all)\n"
    ));
    body + tail
}

fn reason_of(c: &CheckView) -> &'static str {
    match c.reason {
        Some(r) => r.as_str(),
        None if c.status == Status::Unknown => "no result yet",
        None => "no reason",
    }
}
