//! What the kinds that keep a connection open between runs (`postgres`, `redis`) share:
//! where the password comes from, when to try connecting again, how a run that was cut off
//! at the timeout is noticed, and scrubbing secrets out of messages.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Outcome, Reason};

/// First backoff step after the second failure in a row (the first retry is immediate).
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Cap when the check's interval is not known yet.
const BACKOFF_CAP_FALLBACK: Duration = Duration::from_secs(10);

/// The password keys a kind offers, as configured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PasswordKeys<'a> {
    pub inline: &'a Option<String>,
    pub file: &'a Option<PathBuf>,
    pub env: &'a Option<String>,
}

impl PasswordKeys<'_> {
    /// Problems with the password keys; `in_url` says the URL carries a password too.
    pub(crate) fn validate(&self, in_url: bool, problems: &mut Vec<(String, String)>) {
        let mut set = Vec::new();
        if in_url {
            set.push("a password in url");
        }
        if self.inline.is_some() {
            set.push("password");
        }
        if self.file.is_some() {
            set.push("password_file");
        }
        if self.env.is_some() {
            set.push("password_env");
        }
        if set.len() > 1 {
            problems.push((
                "password_file".into(),
                format!("give the password one way only (found {})", set.join(", ")),
            ));
        }
        if let Some(var) = self.env
            && (var.is_empty() || var.contains('='))
        {
            problems.push((
                "password_env".into(),
                "must be the name of an environment variable".into(),
            ));
        }
        if let Some(var) = self.env
            && var.to_uppercase().starts_with("HEALTHD_")
        {
            problems.push((
                "password_env".into(),
                "HEALTHD_* variables are configuration overrides; use another name".into(),
            ));
        }
        if let Some(path) = self.file
            && path.as_os_str().is_empty()
        {
            problems.push(("password_file".into(), "must not be empty".into()));
        }
        if let Some(path) = self.file {
            crate::redact::warn_if_world_readable(path, "password_file");
        }
    }

    /// Read the password now (files and variables are read on every connect, so a rotated
    /// secret is picked up at the next reconnect). Errors never contain the secret.
    pub(crate) fn resolve(&self) -> Result<Option<String>, String> {
        if let Some(path) = self.file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read password_file {}: {e}", path.display()))?;
            // One trailing newline is how files are written by editors and `echo`.
            let pw = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            if pw.is_empty() {
                return Err(format!("password_file {} is empty", path.display()));
            }
            return Ok(Some(pw.to_string()));
        }
        if let Some(var) = self.env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                Ok(_) => Err(format!(
                    "environment variable {var} (password_env) is empty"
                )),
                Err(_) => Err(format!(
                    "environment variable {var} (password_env) is not set"
                )),
            };
        }
        Ok(self.inline.clone())
    }
}

/// Log that a password sits in the configuration itself; called while validating, so it
/// shows in `healthd validate`, at start and at every reload. Never logs the password.
pub(crate) fn warn_inline_password(kind: &str, target: &str, key: &str) {
    tracing::warn!(
        kind,
        target,
        key,
        "Password given inline in the configuration; prefer password_file or password_env."
    );
}

/// Replace every occurrence of each secret with `***`: the last line of defence, applied to
/// every message a probe returns, whatever produced it.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s, "***");
        }
    }
    out
}

/// Connection bookkeeping for one check: at most one connection, reconnect with backoff,
/// and detection of a run that the scheduler dropped at the timeout.
#[derive(Debug, Default)]
pub(crate) struct Reconnect {
    /// Set while a run is in progress; still set at the start of the next run only when the
    /// previous one was dropped mid-way (the scheduler cancels a run at the timeout).
    in_run: bool,
    /// Connection failures in a row.
    failures: u32,
    /// No new connection attempt before this.
    not_before: Option<Instant>,
    /// What the last failed attempt returned, repeated while backing off.
    last_error: Option<Outcome>,
    /// When the previous run started, to learn the check's interval.
    last_start: Option<Instant>,
    /// The time between the last two runs: the cap of the backoff.
    interval: Option<Duration>,
    /// The check's timeout (the cap's floor).
    timeout: Duration,
}

/// What the start of a run found.
pub(crate) struct RunStart {
    /// The previous run was cut off at the timeout: drop the connection it was using.
    pub cancelled: bool,
    /// Still backing off after failed connects: report this without touching the network.
    pub backoff: Option<Outcome>,
}

impl Reconnect {
    /// Call first thing in a run.
    pub(crate) fn start(&mut self, timeout: Duration) -> RunStart {
        let now = Instant::now();
        self.timeout = timeout;
        if let Some(prev) = self.last_start.replace(now) {
            self.interval = Some(now - prev);
        }
        let cancelled = std::mem::replace(&mut self.in_run, true);
        if cancelled {
            // The dropped run got no answer within the timeout: a failure like any other, so
            // a frozen server is not sent a new connection on every run either.
            self.failed(Outcome::failed(
                Reason::Timeout,
                format!("no answer within {}", humantime::format_duration(timeout)),
            ));
        }
        let backoff = match (self.not_before, &self.last_error) {
            (Some(t), Some(last)) if now < t => {
                let mut out = last.clone();
                out.message = format!(
                    "{} (reconnecting in {})",
                    out.message,
                    crate::health::fmt_latency(t - now)
                );
                Some(out.with_detail("connect_failures", self.failures))
            }
            _ => None,
        };
        RunStart { cancelled, backoff }
    }

    /// Call when a run ends (whatever its result); a run that never gets here was dropped.
    pub(crate) fn finish(&mut self) {
        self.in_run = false;
    }

    /// A connection attempt (or a kept connection) failed with `outcome`.
    pub(crate) fn failed(&mut self, outcome: Outcome) {
        self.failures = self.failures.saturating_add(1);
        // Up to the interval (learned from the runs), and at least the timeout, which the
        // config keeps below the interval.
        let cap = self
            .interval
            .map(|i| i.max(self.timeout))
            .unwrap_or(BACKOFF_CAP_FALLBACK);
        let delay = match self.failures {
            0 | 1 => Duration::ZERO,
            n => BACKOFF_BASE
                .saturating_mul(1u32 << (n - 2).min(16))
                .min(cap),
        };
        self.not_before = (!delay.is_zero()).then(|| Instant::now() + delay);
        self.last_error = Some(outcome);
    }

    /// A connection was made or used successfully: forget past failures.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = None;
        self.last_error = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_secret() {
        assert_eq!(
            scrub("pw s3cret and s3cret again, tok", &["s3cret", "", "tok"]),
            "pw *** and *** again, ***"
        );
    }

    #[test]
    fn backoff_grows_from_zero_up_to_the_interval_and_resets() {
        let mut r = Reconnect {
            interval: Some(Duration::from_millis(300)),
            ..Reconnect::default()
        };
        let timeout = Duration::from_millis(100);
        r.failed(Outcome::failed(Reason::Connect, "refused"));
        let s = r.start(timeout);
        assert!(!s.cancelled && s.backoff.is_none());
        r.finish();
        r.failed(Outcome::failed(Reason::Connect, "refused"));
        let o = r.start(timeout).backoff.expect("expected to back off");
        assert_eq!(o.reason, Some(Reason::Connect));
        assert!(
            o.message.starts_with("refused (reconnecting in"),
            "{}",
            o.message
        );
        r.finish();
        for _ in 0..10 {
            r.failed(Outcome::failed(Reason::Connect, "refused"));
        }
        let wait = r.not_before.map(|t| t - Instant::now()).unwrap_or_default();
        assert!(wait <= Duration::from_millis(300), "capped: {wait:?}");
        r.succeeded();
        let s = r.start(timeout);
        assert!(!s.cancelled && s.backoff.is_none());
    }

    #[test]
    fn a_run_dropped_midway_is_noticed() {
        let mut r = Reconnect::default();
        let timeout = Duration::from_millis(100);
        let s = r.start(timeout);
        assert!(!s.cancelled && s.backoff.is_none());
        // No finish(): the scheduler dropped the run. The first retry is immediate.
        let s = r.start(timeout);
        assert!(s.cancelled && s.backoff.is_none());
        assert_eq!(r.failures, 1);
        // Cut off again: now it backs off, still reporting the timeout.
        let s = r.start(timeout);
        assert!(s.cancelled);
        let o = s.backoff.expect("backs off after two cut-off runs");
        assert_eq!(o.reason, Some(Reason::Timeout));
    }
}
