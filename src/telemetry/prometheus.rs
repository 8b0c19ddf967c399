//! `/metrics`: the snapshot in the Prometheus/OpenMetrics text format, under the OTLP
//! metric names translated to Prometheus conventions (`healthd.check.status` →
//! `healthd_check_status`, `system.cpu.utilization` → `system_cpu_utilization_ratio`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use prometheus_client::metrics::counter::ConstCounter;

use super::history::HistoryPart;
use crate::health::{RunStats, Snapshot};
use crate::history::History;
use crate::model::host::HostSample;
use crate::model::{Sample, Status};
use crate::telemetry::host::{self, Kind};

mod stream;
pub use stream::{Chunks, STREAM_ABOVE};

/// The content type of [`render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of [`render_text`] (what `promtool check metrics` reads).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Render the snapshot (and the latest host sample, while host metrics are on) in the
/// Prometheus text format 0.0.4.
pub fn render_text(snapshot: Arc<Snapshot>, host: Option<Arc<HostSample>>) -> String {
    to_text_format(&render(snapshot, host))
}

/// Whether a scraper's `Accept` header asks for OpenMetrics.
pub fn wants_open_metrics(accept: &str) -> bool {
    accept.contains("application/openmetrics-text")
}

/// Render the snapshot and host sample in the OpenMetrics text format.
pub fn render(snapshot: Arc<Snapshot>, host: Option<Arc<HostSample>>) -> String {
    render_with(snapshot, host, None, &[])
}

/// Series kept outside the snapshot (the notifier's counters), rendered after it.
pub type Extra = Arc<dyn Collector>;

/// [`render_text`] with history's families and extra series.
pub fn render_text_with(
    snapshot: Arc<Snapshot>,
    host: Option<Arc<HostSample>>,
    history: Option<&History>,
    extra: &[Extra],
) -> String {
    to_text_format(&render_with(snapshot, host, history, extra))
}

/// [`render`] with history's families (uptime, SLOs, the writer's counters) and extra
/// series.
pub fn render_with(
    snapshot: Arc<Snapshot>,
    host: Option<Arc<HostSample>>,
    history: Option<&History>,
    extra: &[Extra],
) -> String {
    encode_all(collectors(snapshot, host, Part::Whole, history, extra))
}

/// The collectors of a rendering: the snapshot's `part`, history's families, extra series.
fn collectors(
    snapshot: Arc<Snapshot>,
    host: Option<Arc<HostSample>>,
    part: Part,
    history: Option<&History>,
    extra: &[Extra],
) -> Vec<Box<dyn Collector>> {
    #[derive(Debug)]
    struct Shared(Extra);
    impl Collector for Shared {
        fn encode(&self, enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            self.0.encode(enc)
        }
    }
    let part_of_history = part.clone();
    let mut all: Vec<Box<dyn Collector>> = vec![Box::new(SnapshotCollector(snapshot, host, part))];
    if let Some(h) = history {
        // Streamed, history's per-check families come in chunks after the snapshot's.
        let part = match part_of_history {
            Part::Whole => HistoryPart::Whole,
            _ => HistoryPart::Counters,
        };
        all.push(Box::new(super::history::PrometheusHistory::of(h, part)));
    }
    for e in extra {
        all.push(Box::new(Shared(e.clone())));
    }
    all
}

/// Encode the collectors in the OpenMetrics text format (ending in `# EOF`).
fn encode_all(collectors: Vec<Box<dyn Collector>>) -> String {
    let mut registry = Registry::default();
    for c in collectors {
        registry.register_collector(c);
    }
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
pub(crate) struct SnapshotCollector(pub Arc<Snapshot>, pub Option<Arc<HostSample>>, pub Part);

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

/// One series per perfdata label of an exec check (a label repeated by the program counts
/// once: the first value).
fn perfdata_series(c: &crate::health::CheckView) -> Vec<(Labels<'_>, f64)> {
    let Some(Sample::Perfdata(items)) = &c.sample else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .filter(|p| seen.insert(p.label.as_str()))
        .map(|p| {
            (
                vec![
                    ("healthd_check_name", c.name.as_str()),
                    ("label", p.label.as_str()),
                ],
                p.value,
            )
        })
        .collect()
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

/// The families with one series (or more) per check, rendered one at a time by [`Part`].
pub(crate) const PER_CHECK_FAMILIES: usize = 8;

/// What a [`SnapshotCollector`] encodes: everything, only the families that do not grow with
/// the checks, or one per-check family for a range of checks (by index in `checks`).
#[derive(Debug, Clone)]
pub(crate) enum Part {
    Whole,
    Fixed,
    Family(usize, std::ops::Range<usize>),
}

type View = crate::health::CheckView;

/// A 0-or-1 family: name, help, and whether a check is 1.
type Flag = (&'static str, &'static str, fn(&View) -> bool);

/// A check's name and kind labels.
fn named(c: &View) -> Labels<'_> {
    vec![
        ("healthd_check_name", c.name.as_str()),
        ("healthd_check_kind", c.kind),
    ]
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = &self.0;
        let (fixed, only, range) = match &self.2 {
            Part::Whole => (true, None, 0..snap.checks.len()),
            Part::Fixed => (true, None, 0..0),
            Part::Family(f, r) => (false, Some(*f), r.clone()),
        };
        if fixed {
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
        }
        for family in 0..PER_CHECK_FAMILIES {
            if only.is_none_or(|f| f == family) && !range.is_empty() {
                self.encode_per_check(&mut enc, family, range.clone())?;
            }
        }
        if !fixed {
            return Ok(());
        }
        gauge_family(
            &mut enc,
            host::GROUP_STATUS.prometheus,
            host::GROUP_STATUS.help,
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
        if snap.checks.iter().any(|c| !c.builtin) {
            let mut late = enc.encode_descriptor(
                "healthd_scheduler_lateness",
                "How late check runs started against their schedule",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            histogram(&mut late, &vec![], &snap.lateness)?;
        }
        self.encode_host(&mut enc)?;
        Ok(())
    }
}

impl SnapshotCollector {
    /// Per-check family number `family` (of [`PER_CHECK_FAMILIES`]) for the checks in `range`.
    fn encode_per_check(
        &self,
        enc: &mut DescriptorEncoder,
        family: usize,
        range: std::ops::Range<usize>,
    ) -> Result<(), std::fmt::Error> {
        let checks = &self.0.checks;
        let all = || {
            range
                .clone()
                .filter_map(|i| checks.get(i))
                .map(|c| c.as_ref())
        };
        let probes = || all().filter(|c| !c.builtin);
        // Resilience state (see README.md, "Failure behaviour"): one family each, 0 or 1.
        let flags: [Flag; 3] = [
            (
                "healthd_check_breaker_open",
                "1 while the check is unhealthy and probed with backoff",
                |c| c.breaker == crate::resilience::BreakerState::Open,
            ),
            (
                "healthd_check_flapping",
                "1 while the check changes state too often (status held at the worst)",
                |c| c.flapping,
            ),
            (
                "healthd_check_stale",
                "1 while the latest result is older than the check's max_staleness",
                |c| c.stale,
            ),
        ];
        match family {
            0 => gauge_family(
                enc,
                host::CHECK_STATUS.prometheus,
                host::CHECK_STATUS.help,
                None,
                all().flat_map(|c| {
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
            ),
            1..=3 => {
                let (name, help, value) = flags[family - 1];
                gauge_family(
                    enc,
                    name,
                    help,
                    None,
                    probes().map(|c| (named(c), if value(c) { 1.0 } else { 0.0 })),
                )
            }
            4 => gauge_family(
                enc,
                "healthd_exec_perfdata",
                "Performance data an exec check's program printed, in base units (seconds, bytes)",
                None,
                probes().flat_map(perfdata_series),
            ),
            5 => gauge_family(
                enc,
                host::TLS_CERT_NOT_AFTER.prometheus,
                host::TLS_CERT_NOT_AFTER.help,
                None,
                all().filter_map(|c| Some((named(c), host::not_after(c)? as f64))),
            ),
            6 if probes().next().is_some() => {
                let mut runs = enc.encode_descriptor(
                    host::CHECK_RUNS.prometheus.trim_end_matches("_total"),
                    host::CHECK_RUNS.help,
                    None,
                    MetricType::Counter,
                )?;
                for c in probes() {
                    for (reason, n) in &c.stats.runs {
                        let mut labels = named(c);
                        labels.push((
                            "healthd_check_result",
                            if reason.is_some() {
                                "failure"
                            } else {
                                "success"
                            },
                        ));
                        // As in OTLP: `error.type` only on failures.
                        if let Some(r) = reason {
                            labels.push(("error_type", r.as_str()));
                        }
                        ConstCounter::new(*n).encode(runs.encode_family(&labels)?)?;
                    }
                }
                Ok(())
            }
            7 if probes().next().is_some() => {
                let mut dur = enc.encode_descriptor(
                    host::CHECK_DURATION.prometheus.trim_end_matches("_seconds"),
                    host::CHECK_DURATION.help,
                    Some(&Unit::Seconds),
                    MetricType::Histogram,
                )?;
                for c in probes() {
                    histogram(&mut dur, &named(c), &c.stats)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Every host family with points, under its Prometheus name; attribute names are
    /// translated the same way (`.` becomes `_`).
    fn encode_host(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(sample) = &self.1 else {
            return Ok(());
        };
        for family in host::families() {
            let points = (family.points)(sample);
            if points.is_empty() {
                continue;
            }
            let counter = family.kind == Kind::Counter;
            let (name, metric_type) = if counter {
                (
                    family.name.prometheus.trim_end_matches("_total"),
                    MetricType::Counter,
                )
            } else {
                (family.name.prometheus, MetricType::Gauge)
            };
            let mut f = enc.encode_descriptor(name, family.name.help, None, metric_type)?;
            for p in points {
                let labels: Vec<(String, String)> = p
                    .attrs
                    .iter()
                    .map(|(k, v)| (k.replace('.', "_"), v.to_text()))
                    .collect();
                let m = f.encode_family(&labels)?;
                if counter {
                    ConstCounter::new(p.value).encode(m)?;
                } else {
                    ConstGauge::new(p.value).encode(m)?;
                }
            }
        }
        Ok(())
    }
}

/// Turn the OpenMetrics rendering into the Prometheus text format 0.0.4: no `# UNIT` or
/// `# EOF` lines, and counter families named with their `_total` suffix.
fn to_text_format(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let mut renamed = None;
        for prefix in ["# HELP ", "# TYPE "] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let name = rest.split(' ').next().unwrap_or_default();
                if counters.contains(&name) {
                    renamed = Some(format!("{prefix}{name}_total{}", &rest[name.len()..]));
                }
            }
        }
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_format_names_counters_with_total() {
        let om = "# HELP a_runs Runs.\n# TYPE a_runs counter\n# UNIT a_runs runs\na_runs_total 3\n# EOF\n";
        assert_eq!(
            super::to_text_format(om),
            "# HELP a_runs_total Runs.\n# TYPE a_runs_total counter\na_runs_total 3\n"
        );
    }
}
