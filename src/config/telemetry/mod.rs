//! `[telemetry]`: OTLP export settings, and their resolution against the standard
//! `OTEL_EXPORTER_OTLP_*` environment variables (which apply only where the config is silent).
//!
//! ```toml
//! [telemetry]
//! endpoint = "http://collector:4317"   # export is on iff an endpoint is set (here or in env)
//! protocol = "grpc"                    # or "http/protobuf"
//! timeout = "5s"
//! interval = "15s"
//! [telemetry.headers]
//! "x-scope-orgid" = "ops"                                  # literal
//! authorization = { env = "OTLP_TOKEN", prefix = "Bearer " } # from an environment variable
//! "x-api-key" = { file = "/etc/healthd/otlp-key" }          # from a file (trimmed)
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub(crate) mod resolve;
#[cfg(test)]
mod tests;

pub use resolve::resolve;

/// Default export period when neither the config nor `OTEL_METRIC_EXPORT_INTERVAL` sets one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default bound on one export (the OTLP default), capped at the interval.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `[telemetry]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Collector URL. gRPC: `http(s)://host:4317`. HTTP/protobuf: the base URL
    /// (`http://host:4318`, `/v1/metrics` and `/v1/logs` are appended) or the full
    /// `…/v1/metrics` URL. Unset: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; none of them set means export is off.
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`. Default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else `grpc`.
    pub protocol: Option<String>,
    /// Extra request headers (gRPC metadata): a literal string, or `{ env = "VAR" }` /
    /// `{ file = "/path" }` with an optional `prefix` (e.g. `"Bearer "`).
    pub headers: Option<BTreeMap<String, HeaderSource>>,
    /// Bound on one export. Default: `OTEL_EXPORTER_OTLP_TIMEOUT`, else 10s (at most `interval`).
    #[serde(default, deserialize_with = "crate::model::de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Export period. Default: `OTEL_METRIC_EXPORT_INTERVAL`, else 15s.
    #[serde(default, deserialize_with = "crate::model::de_opt_duration")]
    pub interval: Option<Duration>,
    /// PEM CA bundle that signs the collector's certificate (default: the system roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Extra resource attributes, e.g. `"deployment.environment.name" = "prod"`; merged over
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource_attributes: BTreeMap<String, String>,
    /// Send one OTLP log record per check status change. Default false.
    pub status_change_logs: bool,
}

/// Where a header value comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, or a table { env = \"VAR\" } or { file = \"/path\" } (optionally with prefix = \"…\")"
)]
pub enum HeaderSource {
    Literal(String),
    From(HeaderFrom),
}

/// `{ env = "VAR" }` or `{ file = "/path" }`, optionally with a `prefix`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderFrom {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
    /// Prepended to the value, e.g. `"Bearer "`.
    #[serde(default)]
    pub prefix: String,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// The effective export settings: config first, then the environment, then defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    pub protocol: Protocol,
    /// Where metrics go (for HTTP, the full `…/v1/metrics` URL).
    pub metrics_endpoint: String,
    /// Where log records go (for HTTP, the full `…/v1/logs` URL).
    pub logs_endpoint: String,
    /// Header values resolved (secrets included: never log them).
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
    pub interval: Duration,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Resource attributes from `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME` and the config.
    pub resource_attributes: BTreeMap<String, String>,
    pub status_change_logs: bool,
}

/// One problem with the telemetry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `telemetry.endpoint`.
    pub key: String,
    /// The environment variable the bad value came from, if any.
    pub var: Option<String>,
    pub reason: String,
}
