//! A webhook receiver on loopback: records every `POST` (headers, JSON body, when) and
//! answers with the status codes a test scripts (the next N answers), `200` otherwise; or
//! never answers at all (a receiver that hangs).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    /// The body as JSON (`Null` if it was not JSON).
    pub body: Value,
    pub raw: String,
    /// What the receiver answered.
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    deliveries: Mutex<Vec<Delivery>>,
    script: Mutex<VecDeque<u16>>,
    hang: std::sync::atomic::AtomicBool,
}

pub struct WebhookPeer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if s.hang.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let status = s
        .script
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front()
        .unwrap_or(200);
    let raw = String::from_utf8_lossy(&body).into_owned();
    s.deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Delivery {
            headers,
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
            status,
            at: Instant::now(),
        });
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl WebhookPeer {
    pub async fn start() -> WebhookPeer {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route("/", axum::routing::post(receive))
            .route("/{*path}", axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookPeer { addr, shared, task }
    }

    /// A URL of this receiver (any path is accepted).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Answer the next requests with these status codes (then 200 again).
    pub fn answer(&self, codes: &[u16]) {
        self.shared
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(codes);
    }

    /// Never answer from now on.
    pub fn hang(&self) {
        self.shared
            .hang
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every request so far, answered or refused.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The bodies answered with 2xx, as `event check from->to`.
    pub fn accepted(&self) -> Vec<String> {
        self.deliveries()
            .iter()
            .filter(|d| (200..300).contains(&d.status))
            .map(|d| summary(&d.body))
            .collect()
    }

    /// Wait until `n` notices were accepted; returns them.
    pub async fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<String> {
        super::eventually_async(&format!("{n} accepted notifications"), timeout, || async {
            let a = self.accepted();
            (a.len() >= n).then_some(a)
        })
        .await
    }
}

/// A payload as `event check from->to`.
pub fn summary(body: &Value) -> String {
    format!(
        "{} {} {}->{}",
        body["event"].as_str().unwrap_or("?"),
        body["check"].as_str().unwrap_or("?"),
        body["from"].as_str().unwrap_or("?"),
        body["to"].as_str().unwrap_or("?")
    )
}
