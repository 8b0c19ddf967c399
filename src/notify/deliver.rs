//! Delivery: one worker per target (an Alertmanager URL, a webhook), taking notices from its
//! own queue, so a receiver that is down delays nobody else. A failed request is retried
//! with jittered exponential backoff when the failure may pass (5xx, 408, 429, timeouts,
//! refused connections), never when the receiver refused the notice (other 4xx). Before
//! every attempt, newer notices about the same check are merged in and a failure that has
//! since recovered is dropped: a notice is never sent late and wrong. One log line and one
//! count per notification.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::alertmanager::Alertmanager;
use super::notice::Notice;
use super::queue::Queue;
use super::stats::{Result as Counted, Stats};
use super::webhook::Webhook;
use crate::config::notify::MinStatus;
use crate::health::SharedSnapshot;
use crate::model::{error_chain, one_line};

/// First delay before a retry (before jitter).
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest delay between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// A notice still failing after this long is given up (and counted `failed`).
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// Why a request did not deliver.
#[derive(Debug)]
pub struct Failure {
    /// Worth trying again (the receiver may recover); `false`: it refused the notice.
    pub retry: bool,
    /// The HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// What happened, without the URL (it may carry a token).
    pub detail: String,
}

/// `POST` a JSON body; the answer's status decides.
pub async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    headers: &reqwest::header::HeaderMap,
    body: String,
    timeout: Duration,
) -> Result<(), Failure> {
    let response = client
        .post(url.clone())
        .timeout(timeout)
        .headers(headers.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| Failure {
            retry: true,
            status: None,
            detail: one_line(&error_chain(&e.without_url())),
        })?;
    let code = response.status().as_u16();
    // The body is not read: it is not needed, and a receiver may echo what it was sent.
    match code {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(Failure {
            retry: true,
            status: Some(code),
            detail: format!("answered {code}"),
        }),
        _ => Err(Failure {
            retry: false,
            status: Some(code),
            detail: format!("answered {code}"),
        }),
    }
}

/// Where a target sends.
pub enum Sink {
    Alertmanager(Alertmanager),
    Webhook(Webhook),
}

impl Sink {
    /// Most notices per request: Alertmanager takes a list of alerts, a webhook one body.
    fn batch(&self) -> usize {
        match self {
            Sink::Alertmanager(_) => 64,
            Sink::Webhook(_) => 1,
        }
    }

    async fn send(&self, batch: &[Notice]) -> Result<(), Failure> {
        match self {
            Sink::Alertmanager(a) => a.send(batch).await,
            Sink::Webhook(w) => match batch.first() {
                Some(n) => w.send(n).await,
                None => Ok(()),
            },
        }
    }
}

/// Checks whose failure was dropped before delivery (it had recovered): the router must not
/// later tell the receiver that they recovered.
pub type Forgotten = Arc<Mutex<HashSet<String>>>;

/// One target's delivery loop.
pub struct Worker {
    pub receiver: String,
    pub sink: Sink,
    pub queue: Arc<Queue>,
    pub stats: Arc<Stats>,
    pub snapshot: SharedSnapshot,
    pub min_status: MinStatus,
    pub forgotten: Forgotten,
}

impl Worker {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let batch = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                b = self.queue.next(self.sink.batch()) => b,
            };
            if !self.deliver(batch, &stop).await {
                return;
            }
        }
    }

    /// Deliver one batch, retrying; `false` when stopped (the batch is back in the queue).
    async fn deliver(&self, mut batch: Vec<Notice>, stop: &CancellationToken) -> bool {
        let started = Instant::now();
        let mut delay = FIRST_RETRY;
        let mut attempts = 0u32;
        loop {
            self.refresh(&mut batch);
            if batch.is_empty() {
                return true;
            }
            attempts += 1;
            // Not cut short by a stop (a reload replacing this worker): the request is
            // bounded by the receiver's timeout, and cutting it could send it twice.
            let result = self.sink.send(&batch).await;
            let failure = match result {
                Ok(()) => {
                    for n in batch.iter().filter(|n| n.counts()) {
                        tracing::info!(receiver = %self.receiver, check = %n.check, event = n.event(), from = n.from.as_str(), to = n.to.as_str(), attempts, "Notification sent.");
                    }
                    self.count(&batch, Counted::Sent);
                    return true;
                }
                Err(f) => f,
            };
            if !failure.retry {
                for n in batch.iter().filter(|n| n.counts()) {
                    tracing::warn!(receiver = %self.receiver, check = %n.check, event = n.event(), status = failure.status, "Notification refused by the receiver; not retried.");
                }
                self.count(&batch, Counted::Failed);
                return true;
            }
            // Jitter: between half and all of the delay, so targets that failed together
            // do not retry in step.
            let wait = delay.mul_f64(0.5 + rand::random::<f64>() / 2.0);
            if started.elapsed() + wait > GIVE_UP_AFTER {
                for n in batch.iter().filter(|n| n.counts()) {
                    tracing::warn!(receiver = %self.receiver, check = %n.check, event = n.event(), attempts, error = %failure.detail, "Notification failed; retries given up.");
                }
                self.count(&batch, Counted::Failed);
                return true;
            }
            tracing::debug!(receiver = %self.receiver, attempts, error = %failure.detail, retry_in = %humantime::format_duration(round_ms(wait)), "Notification not delivered yet; retrying.");
            tokio::select! {
                _ = stop.cancelled() => {
                    self.requeue(batch);
                    return false;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }

    /// Before an attempt: merge newer notices about the same checks in, drop failures that
    /// have recovered since (and resolved notices the receiver does not want).
    fn refresh(&self, batch: &mut Vec<Notice>) {
        let snap = self.snapshot.load();
        let mut kept = Vec::with_capacity(batch.len());
        for mut n in batch.drain(..) {
            let check = n.check.clone();
            if let Some(newer) = self.queue.take(&check) {
                let m = super::notice::merge(n, newer);
                self.stats
                    .add(&self.receiver, Counted::Collapsed, m.collapsed);
                match m.notice {
                    Some(merged) => n = merged,
                    None => {
                        tracing::info!(receiver = %self.receiver, check = %check, "Notification collapsed: the check changed back before it was delivered.");
                        continue;
                    }
                }
            }
            let recovered = snap
                .check(&check)
                .is_none_or(|v| self.min_status.firing(v.status) == Some(false));
            if n.firing && recovered {
                if n.counts() {
                    tracing::info!(receiver = %self.receiver, check = %check, event = n.event(), "Notification collapsed: the check recovered before it was delivered.");
                    self.stats.add(&self.receiver, Counted::Collapsed, 1);
                }
                self.forgotten
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(check.clone());
                // A recovery notice the router queued meanwhile is about a failure the
                // receiver never heard of.
                match self.queue.take(&check) {
                    Some(r) if !r.firing => {
                        self.stats
                            .add(&self.receiver, Counted::Collapsed, u64::from(r.counts()))
                    }
                    Some(r) => {
                        self.queue.requeue(vec![r]);
                    }
                    None => {}
                }
                continue;
            }
            kept.push(n);
        }
        *batch = kept;
    }

    fn requeue(&self, batch: Vec<Notice>) {
        let collapsed = self.queue.requeue(batch);
        self.stats
            .add(&self.receiver, Counted::Collapsed, collapsed);
    }

    fn count(&self, batch: &[Notice], result: Counted) {
        let n = batch.iter().filter(|n| n.counts()).count() as u64;
        self.stats.add(&self.receiver, result, n);
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// The HTTP client and headers of a receiver: the http check's client (TLS options,
/// no proxy, no redirects) and its headers, secrets marked sensitive (never printed).
pub fn http_of(
    cfg: &crate::config::notify::ReceiverConfig,
    env: &std::collections::HashMap<String, String>,
) -> Result<(reqwest::Client, reqwest::header::HeaderMap), String> {
    let client =
        crate::check::http::client(false, cfg.ca_file.as_deref(), cfg.insecure_skip_verify)?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, source) in &cfg.headers {
        let value = crate::config::telemetry::resolve::header_value(source, env)
            .map_err(|e| format!("headers.{name}: {e}"))?;
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("headers.{name}: {e}"))?;
        let mut value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| format!("headers.{name}: invalid value"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok((client, headers))
}

/// A time as RFC 3339 with milliseconds, UTC (what Alertmanager and the payload use).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
