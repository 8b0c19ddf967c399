//! What one run of a probe saw: its [`Level`], why it was not ok ([`Reason`]), and the
//! [`Outcome`] that carries both with a message and details.

use super::Details;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sample::Sample;
use super::text::{MAX_MESSAGE, printable};

/// Why a run failed: a small fixed set, safe to use as a metric attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The name did not resolve.
    Dns,
    /// The connection was refused, reset or unreachable.
    Connect,
    /// No answer within the check's timeout.
    Timeout,
    /// The TLS handshake or certificate verification failed.
    Tls,
    /// An unexpected status: an HTTP status code outside `expect_status`, a gRPC serving
    /// status other than SERVING (or an unknown service).
    Status,
    /// The response body did not match.
    Body,
    /// A measured value is above its threshold (including an answer slower than
    /// `degraded_after`).
    Threshold,
    /// The peer answered, but not in the expected protocol or with the expected content.
    Protocol,
    /// Authentication was refused.
    Auth,
    /// The server is not in the expected role (primary/replica).
    Role,
    /// The probe could not be set up (unreadable file, bad certificate).
    Config,
    /// healthd itself failed (a panic in the probe).
    Internal,
    /// The check's SLO page alert fires (its error budget burns fast) and the check has
    /// `slo.degrade_on = "page"`.
    Slo,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::Tls => "tls",
            Reason::Status => "status",
            Reason::Body => "body",
            Reason::Threshold => "threshold",
            Reason::Protocol => "protocol",
            Reason::Auth => "auth",
            Reason::Role => "role",
            Reason::Config => "config",
            Reason::Internal => "internal",
            Reason::Slo => "slo",
        }
    }
}

/// What a single run saw, before thresholds and criticality are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The dependency answered as expected.
    Ok,
    /// It answered, but not well (slow, a resource above `degraded_above`).
    Degraded,
    /// It failed.
    Failed,
    /// The probe ran but could not tell (a Nagios plugin exiting 3, a push check still
    /// waiting for its first heartbeat): the check turns `unknown`, neither a success nor a
    /// failure.
    Unknown,
}

/// The result of one run of a probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub level: Level,
    /// Set when the level is not `Ok`.
    pub reason: Option<Reason>,
    /// One short line for humans, free of secrets.
    pub message: String,
    /// Raw values for humans and `/health` (percent used, bytes, status code, …).
    pub details: Details,
    /// Typed measurements for the metric renderers (a `tls` check's certificate, an `exec`
    /// check's performance data).
    pub sample: Option<Sample>,
    /// How long the dependency took to answer, where the kind measures that apart from the
    /// run (a kept-connection kind leaves out connecting). `degraded_after` is judged on this,
    /// or on the whole run when it is not set.
    pub answered_in: Option<Duration>,
}

impl Outcome {
    pub fn ok(message: impl Into<String>) -> Self {
        Outcome {
            level: Level::Ok,
            reason: None,
            message: message.into(),
            details: Details::new(),
            sample: None,
            answered_in: None,
        }
    }

    pub fn degraded(reason: Reason, message: impl Into<String>) -> Self {
        Outcome {
            level: Level::Degraded,
            reason: Some(reason),
            ..Outcome::ok(message)
        }
    }

    pub fn failed(reason: Reason, message: impl Into<String>) -> Self {
        Outcome {
            level: Level::Failed,
            reason: Some(reason),
            ..Outcome::ok(message)
        }
    }

    /// A run that could not tell (see [`Level::Unknown`]).
    pub fn unknown(reason: Option<Reason>, message: impl Into<String>) -> Self {
        Outcome {
            level: Level::Unknown,
            reason,
            ..Outcome::ok(message)
        }
    }

    pub fn with_detail(
        mut self,
        key: impl Into<std::borrow::Cow<'static, str>>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.details.insert(key, value.into());
        self
    }

    /// Record how long the dependency took to answer (see [`Outcome::answered_in`]).
    pub fn answered_in(mut self, d: Duration) -> Self {
        self.answered_in = Some(d);
        self
    }

    /// The message and string details made safe to show and store: control characters
    /// escaped, at most [`MAX_MESSAGE`] bytes each. A peer's answer (or an echo of what it
    /// was sent) goes into messages, and from there into `/health`, logs and notifications.
    pub fn printable(mut self) -> Self {
        self.message = printable(&self.message, MAX_MESSAGE);
        for v in self.details.values_mut() {
            if let serde_json::Value::String(s) = v {
                *s = printable(s, MAX_MESSAGE);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever a probe reports, what is stored is one bounded, printable line.
    #[test]
    fn printable_escapes_and_caps_message_and_details() {
        let o = Outcome::failed(
            Reason::Protocol,
            format!("first\n\u{1b}[31m{}", "x".repeat(50_000)),
        )
        .with_detail("server_version", "y".repeat(50_000))
        .with_detail("code", 5)
        .printable();
        assert!(
            o.message.starts_with("first\\n\\u{1b}[31mxxx"),
            "{}",
            o.message
        );
        assert!(o.message.ends_with("more bytes)"), "{}", o.message);
        assert!(o.message.len() <= MAX_MESSAGE + 32);
        assert!(!o.message.chars().any(char::is_control));
        let version = o.details["server_version"].as_str().unwrap_or_default();
        assert!(version.len() <= MAX_MESSAGE + 32);
        assert_eq!(o.details["code"], 5);
    }
}
