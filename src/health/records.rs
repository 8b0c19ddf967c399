//! What the health loop tells its listeners: a check's status change (logged here, and
//! fanned out to notifiers, history and OTLP) and every accepted run (history and OTLP).

use std::time::{Duration, SystemTime};

use crate::model::{Level, Reason, Status};

/// A check's status changed (for logs and the optional OTLP log record).
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub check: String,
    pub kind: &'static str,
    pub from: Status,
    pub to: Status,
    pub reason: Option<Reason>,
    pub message: String,
    pub at: SystemTime,
}

/// One finished run of a probe check, as the health loop accepted it (for the OTLP duration
/// histogram and run counter, which record each run as it happens).
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub check: String,
    pub kind: &'static str,
    pub latency: Duration,
    /// `None` on success, the failure reason otherwise (as counted in [`RunStats::runs`]).
    pub failure: Option<Reason>,
    /// When the run finished, how it ended, why it was not ok and its message (for the
    /// history store).
    pub at: SystemTime,
    pub level: Level,
    pub reason: Option<Reason>,
    pub message: String,
}

pub(super) fn log_change(c: &StatusChange) {
    let reason = c.reason.map(Reason::as_str).unwrap_or("");
    match c.to {
        Status::Healthy => tracing::info!(
            check = %c.check, kind = c.kind, from = c.from.as_str(), to = c.to.as_str(), detail = %c.message,
            "Check status changed."
        ),
        _ => tracing::warn!(
            check = %c.check, kind = c.kind, from = c.from.as_str(), to = c.to.as_str(), reason, detail = %c.message,
            "Check status changed."
        ),
    }
}
