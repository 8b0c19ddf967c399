//! `/metrics`: the snapshot in the Prometheus/OpenMetrics text format, under the OTLP
//! metric names translated to Prometheus conventions (`healthd.check.status` →
//! `healthd_check_status`, `system.cpu.utilization` → `system_cpu_utilization_ratio`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::check::Sample;
use crate::health::{RunStats, Snapshot, Status};

/// The content type of the rendering.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Render the snapshot.
pub fn render(snapshot: Arc<Snapshot>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct SnapshotCollector(Arc<Snapshot>);

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn gauge_family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        if labels.is_empty() {
            ConstGauge::new(value).encode(family)?;
            return Ok(());
        }
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(
    enc: &mut prometheus_client::encoding::MetricEncoder,
    labels: &Labels,
    stats: &RunStats,
) -> Result<(), std::fmt::Error> {
    let buckets = stats.cumulative_buckets();
    // prometheus-client expects per-bucket (non-cumulative) counts and accumulates them.
    let mut prev = 0;
    let per_bucket: Vec<(f64, u64)> = buckets
        .iter()
        .map(|(b, c)| {
            let n = c - prev;
            prev = *c;
            (*b, n)
        })
        .collect();
    enc.encode_family(labels)?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            stats.latency_sum,
            stats.latency_count,
            &per_bucket,
            None,
        )
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = &self.0;
        let ratio = Unit::Other("ratio".into());
        let probes: Vec<_> = snap.checks.iter().filter(|c| !c.builtin).collect();

        gauge_family(
            &mut enc,
            "healthd_build_info",
            "healthd version",
            None,
            [(vec![("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )?;
        gauge_family(
            &mut enc,
            "healthd_startup_complete",
            "1 once every check has reported and every startup check has passed",
            None,
            [(vec![], if snap.started { 1.0 } else { 0.0 })],
        )?;
        gauge_family(
            &mut enc,
            "healthd_check_status",
            "Status of each check: 1 on the current status, 0 on the others",
            None,
            snap.checks.iter().flat_map(|c| {
                Status::ALL.iter().map(move |s| {
                    (
                        vec![
                            ("healthd_check_name", c.name.as_str()),
                            ("healthd_check_kind", c.kind),
                            ("healthd_check_status", s.as_str()),
                        ],
                        if c.status == *s { 1.0 } else { 0.0 },
                    )
                })
            }),
        )?;
        gauge_family(
            &mut enc,
            "healthd_group_status",
            "Status of each group: 1 on the current status, 0 on the others",
            None,
            snap.groups.iter().flat_map(|(g, summary)| {
                Status::ALL.iter().map(move |s| {
                    (
                        vec![
                            ("healthd_group_name", g.as_str()),
                            ("healthd_group_status", s.as_str()),
                        ],
                        if summary.status == *s { 1.0 } else { 0.0 },
                    )
                })
            }),
        )?;

        if !probes.is_empty() {
            let mut runs = enc.encode_descriptor(
                "healthd_check_runs",
                "Runs of each check by result and failure reason",
                None,
                MetricType::Counter,
            )?;
            for c in &probes {
                for (reason, n) in &c.stats.runs {
                    let labels: Labels = vec![
                        ("healthd_check_name", c.name.as_str()),
                        ("healthd_check_kind", c.kind),
                        (
                            "healthd_check_result",
                            if reason.is_some() {
                                "failure"
                            } else {
                                "success"
                            },
                        ),
                        ("error_type", reason.map(|r| r.as_str()).unwrap_or("")),
                    ];
                    prometheus_client::metrics::counter::ConstCounter::new(*n)
                        .encode(runs.encode_family(&labels)?)?;
                }
            }
            let mut dur = enc.encode_descriptor(
                "healthd_check_duration",
                "Duration of check runs",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for c in &probes {
                histogram(
                    &mut dur,
                    &vec![
                        ("healthd_check_name", c.name.as_str()),
                        ("healthd_check_kind", c.kind),
                    ],
                    &c.stats,
                )?;
            }
            let mut late = enc.encode_descriptor(
                "healthd_scheduler_lateness",
                "How late check runs started against their schedule",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            histogram(&mut late, &vec![], &snap.lateness)?;
        }

        self.encode_system(&mut enc, &ratio)?;
        Ok(())
    }
}

impl SnapshotCollector {
    fn encode_system(
        &self,
        enc: &mut DescriptorEncoder,
        ratio: &Unit,
    ) -> Result<(), std::fmt::Error> {
        let samples: Vec<&Sample> = self
            .0
            .checks
            .iter()
            .filter_map(|c| c.sample.as_ref())
            .collect();
        // Several checks of one kind measure the same host: render the first of each.
        let cpu = samples.iter().find_map(|s| match s {
            Sample::Cpu(c) => Some(c),
            _ => None,
        });
        let mem = samples.iter().find_map(|s| match s {
            Sample::Memory(m) => Some(m),
            _ => None,
        });
        let mut disks = Vec::new();
        for s in &samples {
            if let Sample::Disk(list) = s {
                for d in list {
                    if !disks
                        .iter()
                        .any(|x: &&crate::check::system::DiskSample| x.mountpoint == d.mountpoint)
                    {
                        disks.push(d);
                    }
                }
            }
        }

        if let Some(c) = cpu {
            gauge_family(
                enc,
                "system_cpu_utilization",
                "Busy share of all CPUs",
                Some(ratio),
                [(vec![], c.utilization)],
            )?;
            if let Some([l1, l5, l15]) = c.load_average {
                gauge_family(
                    enc,
                    "system_cpu_load_average_1m",
                    "Load average over 1 minute",
                    None,
                    [(vec![], l1)],
                )?;
                gauge_family(
                    enc,
                    "system_cpu_load_average_5m",
                    "Load average over 5 minutes",
                    None,
                    [(vec![], l5)],
                )?;
                gauge_family(
                    enc,
                    "system_cpu_load_average_15m",
                    "Load average over 15 minutes",
                    None,
                    [(vec![], l15)],
                )?;
            }
            if let Some(up) = c.uptime_seconds {
                gauge_family(
                    enc,
                    "system_uptime",
                    "Time since boot",
                    Some(&Unit::Seconds),
                    [(vec![], up as f64)],
                )?;
            }
        }
        if let Some(m) = mem {
            let mut states = vec![("used", m.used), ("free", m.free)];
            if let Some(b) = m.buffers {
                states.push(("buffers", b));
            }
            if let Some(c) = m.cached {
                states.push(("cached", c));
            }
            gauge_family(
                enc,
                "system_memory_usage",
                "Memory in use by state",
                Some(&Unit::Bytes),
                states
                    .iter()
                    .map(|(s, v)| (vec![("system_memory_state", *s)], *v as f64)),
            )?;
            gauge_family(
                enc,
                "system_memory_utilization",
                "Share of memory by state",
                Some(ratio),
                states.iter().map(|(s, v)| {
                    (
                        vec![("system_memory_state", *s)],
                        *v as f64 / m.total.max(1) as f64,
                    )
                }),
            )?;
        }
        if !disks.is_empty() {
            fn labels<'d>(
                d: &'d crate::check::system::DiskSample,
                state: Option<&'static str>,
            ) -> Labels<'d> {
                let mut l: Labels = vec![
                    ("system_device", d.device.as_str()),
                    ("system_filesystem_mountpoint", d.mountpoint.as_str()),
                    ("system_filesystem_type", d.fs_type.as_str()),
                ];
                if let Some(s) = state {
                    l.push(("system_filesystem_state", s));
                }
                l
            }
            gauge_family(
                enc,
                "system_filesystem_usage",
                "File system space by state",
                Some(&Unit::Bytes),
                disks.iter().flat_map(|d| {
                    // The three states add up to the size; "reserved" is what only root may
                    // still write.
                    let reserved = d.total.saturating_sub(d.used).saturating_sub(d.available);
                    [
                        (labels(d, Some("used")), d.used as f64),
                        (labels(d, Some("free")), d.available as f64),
                        (labels(d, Some("reserved")), reserved as f64),
                    ]
                }),
            )?;
            gauge_family(
                enc,
                "system_filesystem_utilization",
                "Share of file system space used, as df and the disk check count it",
                Some(ratio),
                disks.iter().map(|d| {
                    (
                        labels(d, None),
                        crate::check::system::used_percent(d.used, d.available) / 100.0,
                    )
                }),
            )?;
        }
        Ok(())
    }
}
