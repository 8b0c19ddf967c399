//! Typed measurements kept in the snapshot for the metric renderers: the host's resources
//! (from the resource kinds) and the certificate a `tls` check read. The kinds produce them;
//! the renderers only read them.

use serde::Serialize;

/// One check's measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sample {
    Cpu(CpuSample),
    Memory(MemorySample),
    Disk(Vec<DiskSample>),
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuSample {
    /// Busy share of all cores since the previous run, 0 to 1.
    pub utilization: f64,
    pub logical_cpus: usize,
    /// 1, 5 and 15 minute load averages, where the OS has them.
    pub load_average: Option<[f64; 3]>,
    /// Seconds since boot.
    pub uptime_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemorySample {
    /// Bytes; the cgroup limit when one applies.
    pub total: u64,
    pub used: u64,
    pub free: u64,
    pub available: u64,
    /// Kernel buffers and page cache (Linux `/proc/meminfo`), host-wide.
    pub buffers: Option<u64>,
    pub cached: Option<u64>,
    /// `host` or `cgroup`.
    pub source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskSample {
    /// The path configured.
    pub path: String,
    /// The mount point holding it.
    pub mountpoint: String,
    pub device: String,
    pub fs_type: String,
    pub total: u64,
    pub available: u64,
    pub used: u64,
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
