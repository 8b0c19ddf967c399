//! Export health: every export's outcome, logged rate-limited and reported as the
//! `telemetry` self-check, with a bounded reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use tokio::sync::mpsc;

use super::report;
use crate::health::Event;
use crate::model::classify::classify_text;
use crate::model::{Reason, Status, mentions_any};

/// While exports keep failing, at most one log line per this period.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(60);

/// What the export watcher remembers between exports.
#[derive(Default)]
pub(super) struct WatchState {
    /// `Some(true)` while failing, `Some(false)` while succeeding, `None` before the first.
    failing: Option<bool>,
    /// Failures since the last log line.
    unlogged: u64,
    /// Failures in the current streak.
    streak: u64,
    /// The reason the self-check last reported for this streak.
    reason: Option<Reason>,
    last_log: Option<Instant>,
}

pub(super) struct ExportWatch {
    pub(super) events: mpsc::Sender<Event>,
    pub(super) endpoint: String,
    pub(super) state: Mutex<WatchState>,
}

impl ExportWatch {
    fn record(&self, result: &OTelSdkResult) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match result {
            Ok(()) => {
                if st.failing != Some(false) {
                    if st.failing == Some(true) {
                        tracing::info!(endpoint = %self.endpoint, failed_exports = st.streak, "OTLP export recovered.");
                    }
                    report(
                        &self.events,
                        Status::Healthy,
                        None,
                        format!("exporting to {}", self.endpoint),
                    );
                }
                *st = WatchState {
                    failing: Some(false),
                    ..WatchState::default()
                };
            }
            Err(e) => {
                let text = truncate(&e.to_string(), 300);
                st.streak += 1;
                st.unlogged += 1;
                let due = st
                    .last_log
                    .is_none_or(|t| t.elapsed() >= FAILURE_LOG_PERIOD);
                let reason = classify(&text);
                if st.reason != Some(reason) {
                    // A new streak, or the failure changed nature (say refused → rejected).
                    st.reason = Some(reason);
                    report(
                        &self.events,
                        Status::Degraded,
                        Some(reason),
                        format!("exports to {} failing: {text}", self.endpoint),
                    );
                }
                if st.failing != Some(true) {
                    tracing::warn!(endpoint = %self.endpoint, error = %text, "OTLP export failed; retrying every period, further failures logged at most once a minute.");
                    st.unlogged = 0;
                    st.last_log = Some(Instant::now());
                } else if due {
                    tracing::warn!(endpoint = %self.endpoint, failures = st.unlogged, streak = st.streak, error = %text, "OTLP export still failing.");
                    st.unlogged = 0;
                    st.last_log = Some(Instant::now());
                }
                st.failing = Some(true);
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A bounded reason for the self-check from the exporter's error text: the collector's
/// refusal (`auth`) and HTTP status are the exporter's own; everything else is the shared
/// classifier's.
fn classify(text: &str) -> Reason {
    let t = text.to_ascii_lowercase();
    let has = |words: &[&str]| mentions_any(&t, words);
    if has(&[
        "unauthenticated",
        "permissiondenied",
        "permission denied",
        "401",
        "403",
    ]) {
        Reason::Auth
    } else if let Some(reason) = classify_text(&t) {
        reason
    } else if has(&["dns", "resolve", "lookup"]) {
        Reason::Dns
    } else if has(&[
        "connect",
        "transport",
        "refused",
        "sending request",
        "network error",
    ]) {
        Reason::Connect
    } else if t.contains("status") {
        Reason::Status
    } else {
        Reason::Protocol
    }
}

/// The OTLP exporter, reporting each export's outcome to the watcher.
pub(super) struct Watched<E> {
    pub(super) inner: E,
    pub(super) watch: Arc<ExportWatch>,
}

impl<E: PushMetricExporter> PushMetricExporter for Watched<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.watch.record(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_errors() {
        assert_eq!(
            classify("transport error: Connection refused"),
            Reason::Connect
        );
        assert_eq!(classify("request timed out"), Reason::Timeout);
        assert_eq!(classify("status: Unauthenticated"), Reason::Auth);
    }
}
