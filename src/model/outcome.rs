//! What one run of a probe saw: its [`Level`], why it was not ok ([`Reason`]), and the
//! [`Outcome`] that carries both with a message and details.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sample::Sample;

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
    /// An unexpected HTTP status.
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
    pub details: BTreeMap<String, serde_json::Value>,
    /// Typed measurements for the metric renderers (resource checks only).
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
            details: BTreeMap::new(),
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

    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// Record how long the dependency took to answer (see [`Outcome::answered_in`]).
    pub fn answered_in(mut self, d: Duration) -> Self {
        self.answered_in = Some(d);
        self
    }
}
