//! `POST /push/{check}` and friends: heartbeats from jobs, for `kind = "push"` checks.
//!
//! `/push/NAME` (success), `/push/NAME/fail` (failure; the body, at most 4 KiB, is the
//! message), `/push/NAME/start` (a job started) and `/push/NAME/{exit_code}` (0 = success).
//! Each push check has its own token (`token_file`, sent as `Authorization: Bearer …`,
//! compared in constant time): a missing or wrong token gets 401 and records nothing; an
//! unknown check 404; a larger body 413; more than the check's rate limit 429. An accepted
//! push is judged and sent to the health loop at once, so the snapshot shows it without
//! waiting for the check's next scheduled run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use subtle::ConstantTimeEq;

use super::{AppState, text, unauthorized};
use crate::check::ProbeConfig;
use crate::check::push::{PushSlot, Signal};
use crate::config::server::read_token;
use crate::config::{CheckConfig, Config};
use crate::health::{Event, Observation};
use crate::model::one_line;
use crate::resilience::BreakerState;

/// Largest body of `/push/NAME/fail` (the failure message).
pub const MAX_BODY: usize = 4096;

/// One push check as the endpoints see it.
struct Target {
    /// `None` when the token file could not be read at (re)load: every push is refused.
    token: Option<Vec<u8>>,
    slot: PushSlot,
    period: Duration,
    grace: Duration,
    interval: Duration,
}

/// The push checks of the running config, by name; rebuilt on reload.
#[derive(Default)]
pub struct PushTargets(HashMap<String, Target>);

impl std::fmt::Debug for PushTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl PushTargets {
    pub fn of(config: &Config) -> PushTargets {
        let mut targets = HashMap::new();
        for c in &config.checks {
            let ProbeConfig::Push(p) = &c.probe else {
                continue;
            };
            let token = read_token(&p.token_file)
                .map_err(|e| tracing::error!(check = %c.name, error = %e, "Cannot read a push token; pushes to this check are refused until it is readable and healthd reloads."))
                .ok();
            targets.insert(
                c.name.clone(),
                Target {
                    token,
                    slot: p.slot.clone(),
                    period: p.period,
                    grace: p.grace,
                    interval: c.interval,
                },
            );
        }
        PushTargets(targets)
    }
}

/// On reload: a push check whose definition did not change keeps what was pushed to it.
pub fn carry_over(old: &[Arc<CheckConfig>], new: &mut [Arc<CheckConfig>]) {
    for c in new.iter_mut() {
        let Some(prev) = old.iter().find(|o| o.name == c.name && *o == c) else {
            continue;
        };
        if let (ProbeConfig::Push(q), ProbeConfig::Push(p)) =
            (&prev.probe, &mut Arc::make_mut(c).probe)
        {
            p.slot = q.slot.clone();
        }
    }
}

/// The push routes (merged into the router by `server::router`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/push/{check}", post(success))
        .route("/push/{check}/{what}", post(signal))
}

async fn success(
    State(state): State<AppState>,
    Path(check): Path<String>,
    headers: HeaderMap,
) -> Response {
    push(&state, &check, &headers, Signal::Success).await
}

async fn signal(
    State(state): State<AppState>,
    Path((check, what)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let signal = match what.as_str() {
        "start" => Signal::Start,
        "fail" => {
            let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the message may be at most {MAX_BODY} bytes\n"),
                );
            };
            Signal::Fail {
                exit_code: None,
                message: one_line(String::from_utf8_lossy(&bytes).trim()),
            }
        }
        code => match code.parse::<u8>() {
            Ok(0) => Signal::Success,
            Ok(n) => Signal::Fail {
                exit_code: Some(i32::from(n)),
                message: String::new(),
            },
            Err(_) => {
                return text(
                    StatusCode::NOT_FOUND,
                    "use /push/NAME, /push/NAME/fail, /push/NAME/start or /push/NAME/EXIT_CODE (0 to 255)\n"
                        .to_string(),
                );
            }
        },
    };
    push(&state, &check, &headers, signal).await
}

fn bearer(headers: &HeaderMap) -> &[u8] {
    let value = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    match value.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
        _ => b"",
    }
}

async fn push(state: &AppState, check: &str, headers: &HeaderMap, signal: Signal) -> Response {
    let options = state.options.load();
    let Some(target) = options.push.0.get(check) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no push check named \"{}\"\n", super::sanitize(check)),
        );
    };
    let allowed = target
        .token
        .as_ref()
        .is_some_and(|t| bool::from(t.as_slice().ct_eq(bearer(headers))));
    if !allowed {
        return unauthorized();
    }
    if target.slot.record(signal).is_err() {
        let mut r = text(
            StatusCode::TOO_MANY_REQUESTS,
            "too many pushes to this check, try again\n".to_string(),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let outcome = crate::redact::outcome(target.slot.judge(target.period, target.grace));
    if let Some(events) = &state.events {
        let obs = Observation {
            check: check.to_string(),
            // The health loop applies it to the check's current definition.
            generation: 0,
            outcome,
            latency: Duration::ZERO,
            lateness: Duration::ZERO,
            at: SystemTime::now(),
            breaker: BreakerState::Closed,
            next_delay: target.interval,
        };
        let _ = events.send(Event::Pushed(obs)).await;
    }
    text(StatusCode::OK, "ok\n".to_string())
}
