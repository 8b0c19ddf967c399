//! Probe kinds behind one shape.
//!
//! Each kind has a `*Config` (plain serde data, validated) and a probe built from it that owns
//! its state (a connection, a `sysinfo::System`). The caller owns what is common: the
//! deadline, the timing, and turning an [`Outcome`] into a check status. Kinds are registered
//! in one place: the [`ProbeConfig`] enum and the two `match`es below.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod http;
pub mod postgres;
pub mod redis;
mod session;
pub mod system;
pub mod tcp;

pub use http::{HttpConfig, HttpProbe};
pub use postgres::{PostgresConfig, PostgresProbe};
pub use redis::{RedisConfig, RedisProbe};
pub use system::{CpuConfig, DiskConfig, MemoryConfig, Sample};
pub use tcp::{TcpConfig, TcpProbe};

/// The settings of one check's kind, selected by `kind = "…"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProbeConfig {
    Tcp(TcpConfig),
    Http(HttpConfig),
    Cpu(CpuConfig),
    Memory(MemoryConfig),
    Disk(DiskConfig),
    Postgres(PostgresConfig),
    Redis(RedisConfig),
}

impl ProbeConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeConfig::Tcp(_) => "tcp",
            ProbeConfig::Http(_) => "http",
            ProbeConfig::Cpu(_) => "cpu",
            ProbeConfig::Memory(_) => "memory",
            ProbeConfig::Disk(_) => "disk",
            ProbeConfig::Postgres(_) => "postgres",
            ProbeConfig::Redis(_) => "redis",
        }
    }

    /// Semantic problems as (key, reason); the check's timeout is given for kinds whose own
    /// durations must fit inside it.
    pub fn validate(&self, timeout: Duration) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match self {
            ProbeConfig::Tcp(c) => c.validate(&mut problems),
            ProbeConfig::Http(c) => c.validate(timeout, &mut problems),
            ProbeConfig::Cpu(c) => c.thresholds().validate(&mut problems),
            ProbeConfig::Memory(c) => c.thresholds().validate(&mut problems),
            ProbeConfig::Disk(c) => c.validate(&mut problems),
            ProbeConfig::Postgres(c) => c.validate(timeout, &mut problems),
            ProbeConfig::Redis(c) => c.validate(timeout, &mut problems),
        }
        problems
    }
}

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
    /// A measured value is above its threshold.
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
}

impl Outcome {
    pub fn ok(message: impl Into<String>) -> Self {
        Outcome {
            level: Level::Ok,
            reason: None,
            message: message.into(),
            details: BTreeMap::new(),
            sample: None,
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

    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// A probe built from its config, owning whatever it keeps between runs.
pub enum Probe {
    Tcp(TcpProbe),
    Http(HttpProbe),
    Cpu(system::CpuProbe),
    Memory(system::MemoryProbe),
    Disk(system::DiskProbe),
    Postgres(PostgresProbe),
    Redis(RedisProbe),
}

impl Probe {
    /// Build the runtime probe; fails on what config parsing cannot see (an unreadable CA
    /// file, a bad certificate). Opens no connection.
    pub fn build(config: &ProbeConfig, timeout: Duration) -> Result<Probe, String> {
        Ok(match config {
            ProbeConfig::Tcp(c) => Probe::Tcp(TcpProbe::new(c, timeout)?),
            ProbeConfig::Http(c) => Probe::Http(HttpProbe::new(c, timeout)?),
            ProbeConfig::Cpu(c) => Probe::Cpu(system::CpuProbe::new(c)?),
            ProbeConfig::Memory(c) => Probe::Memory(system::MemoryProbe::new(c)?),
            ProbeConfig::Disk(c) => Probe::Disk(system::DiskProbe::new(c)?),
            ProbeConfig::Postgres(c) => Probe::Postgres(PostgresProbe::new(c, timeout)?),
            ProbeConfig::Redis(c) => Probe::Redis(RedisProbe::new(c, timeout)?),
        })
    }

    /// Run once. The caller bounds this with the check's timeout and may drop the future.
    pub async fn run(&mut self) -> Outcome {
        match self {
            Probe::Tcp(p) => p.run().await,
            Probe::Http(p) => p.run().await,
            Probe::Cpu(p) => p.run().await,
            Probe::Memory(p) => p.run(),
            Probe::Disk(p) => p.run(),
            Probe::Postgres(p) => p.run().await,
            Probe::Redis(p) => p.run().await,
        }
    }
}

/// Classify an I/O error from connecting.
pub(crate) fn connect_reason(e: &std::io::Error) -> Reason {
    match e.kind() {
        std::io::ErrorKind::TimedOut => Reason::Timeout,
        _ => Reason::Connect,
    }
}

/// Shorten a message to one line of reasonable length.
pub(crate) fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        let mut short: String = line.chars().take(197).collect();
        short.push_str("...");
        short
    } else {
        line
    }
}

/// A body/banner matcher: a substring or a regular expression.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Contains(String),
    Regex(regex::Regex),
}

impl Matcher {
    pub(crate) fn new(
        contains: &Option<String>,
        regex: &Option<String>,
    ) -> Result<Option<Matcher>, String> {
        match (contains, regex) {
            (Some(s), _) => Ok(Some(Matcher::Contains(s.clone()))),
            (None, Some(r)) => regex::Regex::new(r)
                .map(|r| Some(Matcher::Regex(r)))
                .map_err(|e| format!("invalid regex: {e}")),
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Contains(s) => text.contains(s.as_str()),
            Matcher::Regex(r) => r.is_match(text),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Matcher::Contains(s) => format!("\"{}\"", one_line(s)),
            Matcher::Regex(r) => format!("/{}/", r.as_str()),
        }
    }
}

/// Validate a regex field, adding a problem if it does not compile.
pub(crate) fn validate_regex(
    key: &str,
    regex: &Option<String>,
    problems: &mut Vec<(String, String)>,
) {
    if let Some(r) = regex
        && let Err(e) = regex::Regex::new(r)
    {
        // regex's syntax errors span several lines (pattern, caret, "error: ..."); keep the
        // pattern and the last line.
        let text = e.to_string();
        let what = text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map(str::to_string)
            .unwrap_or_else(|| one_line(&text));
        problems.push((key.into(), format!("invalid regex \"{r}\": {what}")));
    }
}

/// `degraded_after` must leave room below the timeout, or the check could never be degraded.
pub(crate) fn validate_degraded_after(
    degraded_after: Option<Duration>,
    timeout: Duration,
    problems: &mut Vec<(String, String)>,
) {
    if let Some(d) = degraded_after
        && d >= timeout
    {
        problems.push((
            "degraded_after".into(),
            format!(
                "must be below the timeout ({} is not below {})",
                humantime::format_duration(d),
                humantime::format_duration(timeout)
            ),
        ));
    }
}
