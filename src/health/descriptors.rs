//! The `descriptors` self-check: probe runs that failed because healthd ran out of file
//! descriptors are not counted against their checks; this says that it happened, how often
//! and how recently, and turns healthy again after a quiet minute.

use std::time::{Duration, Instant};

use crate::descriptors::{in_use, limit};
use crate::model::{Status, fmt_latency};

/// How long after the latest shortage the self-check stays degraded.
const QUIET: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct DescriptorWatch {
    skipped: u64,
    latest: Option<(Instant, String)>,
    shown: Option<Status>,
}

impl DescriptorWatch {
    pub(crate) const NAME: &'static str = "descriptors";

    /// A run of `check` failed for want of a descriptor.
    pub(crate) fn skipped(&mut self, check: &str) {
        self.skipped += 1;
        self.latest = Some((Instant::now(), check.to_string()));
        self.shown = None;
    }

    /// When the self-check turns healthy again, if it is degraded now.
    pub(crate) fn due(&self) -> Option<Instant> {
        match (&self.latest, self.shown) {
            (Some((at, _)), Some(Status::Degraded)) => at.checked_add(QUIET),
            _ => None,
        }
    }

    /// The self-check's new status and message, when it changed (and at the first call).
    pub(crate) fn change(&mut self, now: Instant) -> Option<(Status, String)> {
        let short = self
            .latest
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < QUIET);
        let status = if short.is_some() {
            Status::Degraded
        } else {
            Status::Healthy
        };
        if self.shown == Some(status) {
            return None;
        }
        self.shown = Some(status);
        let limit = limit().map_or("unlimited".to_string(), |l| l.to_string());
        let message = match short {
            Some((at, check)) => format!(
                "out of file descriptors ({} open, limit {limit}): {} probe run(s) not counted against their checks, the latest of \"{check}\" {} ago",
                in_use().map_or("?".to_string(), |n| n.to_string()),
                self.skipped,
                fmt_latency(now.saturating_duration_since(*at))
            ),
            None => {
                format!("no probe run lacked a file descriptor in the last minute (limit {limit})")
            }
        };
        Some((status, message))
    }
}
