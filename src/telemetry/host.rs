//! The metric table: every metric's OTLP name, unit and Prometheus name, shared by the
//! Prometheus and OTLP renderers so both show the same series under the same (translated)
//! names. Check metrics (and the certificate expiry the `tls` checks read) are below; host
//! metrics are families in [`system`], [`devices`] and
//! [`linux`],
//! each turning the published [`HostSample`] into points.

mod devices;
mod linux;
mod system;

use crate::health::{CheckView, Snapshot};
use crate::model::Sample;
use crate::model::host::HostSample;

/// A metric's names and unit in both worlds.
#[derive(Debug, Clone, Copy)]
pub struct MetricName {
    /// The OpenTelemetry name, e.g. `system.cpu.utilization`.
    pub otlp: &'static str,
    /// The UCUM unit, e.g. `1`, `By`, `s`, `{thread}`.
    pub unit: &'static str,
    /// The Prometheus name (OTLP name translated, unit suffix included).
    pub prometheus: &'static str,
    pub help: &'static str,
}

macro_rules! metric {
    ($id:ident, $otlp:literal, $unit:literal, $prom:literal, $help:literal) => {
        pub const $id: MetricName = MetricName {
            otlp: $otlp,
            unit: $unit,
            prometheus: $prom,
            help: $help,
        };
    };
}

metric!(
    CHECK_STATUS,
    "healthd.check.status",
    "{status}",
    "healthd_check_status",
    "Status of each check: 1 on the current status, 0 on the others"
);
metric!(
    GROUP_STATUS,
    "healthd.group.status",
    "{status}",
    "healthd_group_status",
    "Status of each group: 1 on the current status, 0 on the others"
);
metric!(
    CHECK_RUNS,
    "healthd.check.runs",
    "{run}",
    "healthd_check_runs_total",
    "Runs of each check by result and failure reason"
);
metric!(
    CHECK_DURATION,
    "healthd.check.duration",
    "s",
    "healthd_check_duration_seconds",
    "Duration of check runs"
);
metric!(
    TLS_CERT_NOT_AFTER,
    "healthd.tls.cert.not_after",
    "s",
    "healthd_tls_cert_not_after_seconds",
    "Earliest not_after in the certificate chain a tls check read last, in seconds since the Unix epoch"
);

/// Each `tls` check's latest certificate sample: the check and its chain's earliest
/// `not_after`. Kept while the certificate is expired (the check still reads the chain).
pub fn cert_not_after(snapshot: &Snapshot) -> impl Iterator<Item = (&CheckView, i64)> {
    snapshot
        .checks
        .iter()
        .filter_map(|c| Some((c.as_ref(), not_after(c)?)))
}

/// The expiry of the certificate a check saw, if it saw one.
pub fn not_after(check: &CheckView) -> Option<i64> {
    match &check.sample {
        Some(Sample::Tls(cert)) => Some(cert.not_after),
        _ => None,
    }
}

/// How a host metric is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// Monotonic cumulative sum (`_total` on `/metrics`).
    Counter,
    /// Non-monotonic cumulative sum (a gauge on `/metrics`).
    UpDownCounter,
}

/// An attribute value: a word or an integer (`cpu.logical_number`).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Word(&'static str),
    Text(String),
    Int(i64),
}

impl AttrValue {
    pub fn to_text(&self) -> String {
        match self {
            AttrValue::Word(w) => (*w).to_string(),
            AttrValue::Text(t) => t.clone(),
            AttrValue::Int(i) => i.to_string(),
        }
    }
}

impl From<&'static str> for AttrValue {
    fn from(w: &'static str) -> Self {
        AttrValue::Word(w)
    }
}

impl From<String> for AttrValue {
    fn from(t: String) -> Self {
        AttrValue::Text(t)
    }
}

/// One series: its attributes (OTLP names) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub value: f64,
}

/// A point without attributes.
pub fn point(value: f64) -> Point {
    Point {
        attrs: Vec::new(),
        value,
    }
}

/// A point with attributes.
pub fn with(attrs: Vec<(&'static str, AttrValue)>, value: f64) -> Point {
    Point { attrs, value }
}

/// One host metric: its names, how it is exported, whether its values are integers, and
/// how to read its points from a sample (none where the platform lacks the figure).
pub struct Family {
    pub name: MetricName,
    pub kind: Kind,
    pub int: bool,
    pub points: fn(&HostSample) -> Vec<Point>,
}

/// Every host metric family, in export order.
pub fn families() -> impl Iterator<Item = &'static Family> {
    system::FAMILIES
        .iter()
        .chain(devices::FAMILIES.iter())
        .chain(linux::FAMILIES.iter())
}

/// A part's share of a whole, 0 when the whole is 0.
pub fn ratio(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}
