//! Typed measurements a check keeps in the snapshot for the metric renderers: the
//! certificate a `tls` check read and an `exec` check's performance data (the host's
//! resources are the host sampler's, `model::host`), and percentages of resources as the
//! resource checks and the host metrics count them.

use serde::Serialize;

/// One check's measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sample {
    /// Nagios performance data of an `exec` check.
    Perfdata(Vec<Perfdata>),
    Tls(CertSample),
}

/// One Nagios performance-data item (`'label'=value[UOM];warn;crit;min;max`), the value
/// in base units where the unit of measure says so (seconds, bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Perfdata {
    pub label: String,
    pub value: f64,
    /// The unit of measure after conversion: `s`, `B`, `%`, `c` (a counter) or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The certificate chain a `tls` check read last, also when it had expired or did not verify
/// (a run that reads no chain keeps the previous sample).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CertSample {
    /// The earliest `not_after` in the chain, in seconds since the Unix epoch (negative
    /// before 1970).
    pub not_after: i64,
}

/// Percent used as `df` shows it: used / (used + available), so space reserved for root
/// does not count as used.
pub fn used_percent(used: u64, available: u64) -> f64 {
    let usable = used.saturating_add(available);
    if usable == 0 {
        0.0
    } else {
        used as f64 * 100.0 / usable as f64
    }
}

/// A percentage rounded to one decimal, for details fields.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
