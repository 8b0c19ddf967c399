//! Host metrics from the resource checks' samples, and the certificate expiry the `tls`
//! checks read, shared by the Prometheus and OTLP renderers so both show the same series
//! under the same (translated) names.

use crate::health::{CheckView, Snapshot};
use crate::model::{CpuSample, DiskSample, MemorySample, Sample, used_percent};

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
    CPU_UTILIZATION,
    "system.cpu.utilization",
    "1",
    "system_cpu_utilization_ratio",
    "Busy share of all CPUs"
);
metric!(
    LOAD_1M,
    "system.cpu.load_average.1m",
    "{thread}",
    "system_cpu_load_average_1m",
    "Load average over 1 minute"
);
metric!(
    LOAD_5M,
    "system.cpu.load_average.5m",
    "{thread}",
    "system_cpu_load_average_5m",
    "Load average over 5 minutes"
);
metric!(
    LOAD_15M,
    "system.cpu.load_average.15m",
    "{thread}",
    "system_cpu_load_average_15m",
    "Load average over 15 minutes"
);
metric!(
    UPTIME,
    "system.uptime",
    "s",
    "system_uptime_seconds",
    "Time since boot"
);
metric!(
    MEMORY_USAGE,
    "system.memory.usage",
    "By",
    "system_memory_usage_bytes",
    "Memory in use by state"
);
metric!(
    MEMORY_UTILIZATION,
    "system.memory.utilization",
    "1",
    "system_memory_utilization_ratio",
    "Share of memory by state"
);
metric!(
    FS_USAGE,
    "system.filesystem.usage",
    "By",
    "system_filesystem_usage_bytes",
    "File system space by state"
);
metric!(
    FS_UTILIZATION,
    "system.filesystem.utilization",
    "1",
    "system_filesystem_utilization_ratio",
    "Share of file system space used"
);
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
    snapshot.checks.iter().filter_map(|c| match &c.sample {
        Some(Sample::Tls(cert)) => Some((c.as_ref(), cert.not_after)),
        _ => None,
    })
}

/// The host as the latest samples describe it. Several checks of one kind measure the same
/// host: the first of each kind is used (file systems: the first per mount point).
#[derive(Debug, Default)]
pub struct Host<'a> {
    pub cpu: Option<&'a CpuSample>,
    pub memory: Option<&'a MemorySample>,
    pub filesystems: Vec<&'a DiskSample>,
}

impl<'a> Host<'a> {
    pub fn of(snapshot: &'a Snapshot) -> Host<'a> {
        let mut host = Host::default();
        for sample in snapshot.checks.iter().filter_map(|c| c.sample.as_ref()) {
            match sample {
                Sample::Cpu(c) => {
                    host.cpu.get_or_insert(c);
                }
                Sample::Memory(m) => {
                    host.memory.get_or_insert(m);
                }
                Sample::Perfdata(_) => {}
                Sample::Tls(_) => {}
                Sample::Disk(list) => {
                    for d in list {
                        if !host
                            .filesystems
                            .iter()
                            .any(|x| x.mountpoint == d.mountpoint)
                        {
                            host.filesystems.push(d);
                        }
                    }
                }
            }
        }
        host
    }

    /// `[1m, 5m, 15m]` load averages, where the platform has them.
    pub fn load_average(&self) -> Option<[(MetricName, f64); 3]> {
        let [l1, l5, l15] = self.cpu?.load_average?;
        Some([(LOAD_1M, l1), (LOAD_5M, l5), (LOAD_15M, l15)])
    }

    /// `system.memory.state` → bytes, plus the total for utilization.
    pub fn memory_states(&self) -> Option<(Vec<(&'static str, u64)>, u64)> {
        let m = self.memory?;
        let mut states = vec![("used", m.used), ("free", m.free)];
        if let Some(b) = m.buffers {
            states.push(("buffers", b));
        }
        if let Some(c) = m.cached {
            states.push(("cached", c));
        }
        Some((states, m.total))
    }
}

/// `system.filesystem.state` → bytes: used, free (available to unprivileged users) and
/// reserved (for root), which add up to the size.
pub fn filesystem_states(d: &DiskSample) -> Vec<(&'static str, u64)> {
    let mut states = vec![("used", d.used), ("free", d.available)];
    let reserved = d.total.saturating_sub(d.used + d.available);
    if reserved > 0 {
        states.push(("reserved", reserved));
    }
    states
}

/// Used share of the space usable by ordinary users, as `df` and the disk check count it.
pub fn filesystem_utilization(d: &DiskSample) -> f64 {
    used_percent(d.used, d.available) / 100.0
}

/// A state's share of total memory.
pub fn ratio(part: u64, total: u64) -> f64 {
    part as f64 / total.max(1) as f64
}
