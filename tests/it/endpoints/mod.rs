//! The health model as the endpoints show it, with real checks against real loopback peers.
//! Most requests go through the router in-process (`tower::ServiceExt::oneshot`); some
//! through a real socket.
//!
//! Here: requests to the router, reading `/health`, and a TCP peer that can be switched off
//! and on. By subject: [`model`] (thresholds, criticality, `fail_on_degraded`, group roll-up,
//! startup gating), [`requests`] (`?exclude`, `?verbose`, single-check paths, JSON shapes,
//! HEAD, 404, a real socket), [`connection`] (one connection's requests over a real socket:
//! pipelined, handed to the router, a slow head, the header read timeout) and
//! [`availability`] (the endpoints staying responsive while every dependency hangs, and
//! across a reload).

mod availability;
mod connection;
mod conventions;
mod model;
mod requests;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::support::config::tcp_toml as tcp;
use crate::support::daemon::TestDaemon;
use crate::support::eventually_async;
use crate::support::peers::Switch;

struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

async fn request(d: &TestDaemon, method: Method, path: &str, accept: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = d
        .router()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        content_type,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(d: &TestDaemon, path: &str) -> Reply {
    request(d, Method::GET, path, None).await
}

async fn health(d: &TestDaemon) -> Value {
    serde_json::from_str(&get(d, "/health").await.body).unwrap()
}

fn check<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {health}"))
}

/// Wait until every named check has a status other than unknown and the startup latch is
/// set (when `started`).
async fn wait_reported(d: &TestDaemon, names: &[&str], started: bool) -> Value {
    eventually_async("checks reported", Duration::from_secs(10), || async {
        let h = health(d).await;
        let status = |n: &str| {
            h["checks"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["name"] == n))
                .map(|c| c["status"].clone())
        };
        let all = names
            .iter()
            .all(|n| status(n).is_some_and(|s| s != "unknown"));
        (all && (!started || h["started"] == true)).then_some(h)
    })
    .await
}

const FAST: &str = "[defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n";
