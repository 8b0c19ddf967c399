//! History's metrics, for both renderers: per-check uptime and SLO figures from the
//! published [`HistoryView`], and the writer's counters. Each metric's names are defined
//! once here, so `/metrics` and OTLP show the same series.

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::host::MetricName;
use crate::history::view::CheckHistory;
use crate::history::view::UPTIME_WINDOWS;
use crate::history::{History, HistoryView};

/// A metric's names, as the rows of `telemetry::host` are written.
const fn metric(
    otlp: &'static str,
    unit: &'static str,
    prometheus: &'static str,
    help: &'static str,
) -> MetricName {
    MetricName {
        otlp,
        unit,
        prometheus,
        help,
    }
}

pub const UPTIME: MetricName = metric(
    "healthd.check.uptime",
    "1",
    "healthd_check_uptime_ratio",
    "Share of good runs over the window (no data: no series)",
);
pub const OBJECTIVE: MetricName = metric(
    "healthd.slo.objective",
    "1",
    "healthd_slo_objective_ratio",
    "The check's SLO objective",
);
pub const BUDGET: MetricName = metric(
    "healthd.slo.error_budget.remaining",
    "1",
    "healthd_slo_error_budget_remaining_ratio",
    "Share of the error budget left over the SLO window (negative: overspent)",
);
pub const BURN: MetricName = metric(
    "healthd.slo.burn_rate",
    "1",
    "healthd_slo_burn_rate",
    "Error rate over the window divided by the allowed error rate",
);
pub const ALERT: MetricName = metric(
    "healthd.slo.alert",
    "1",
    "healthd_slo_alert",
    "1 while the multiwindow burn-rate alert of this severity fires",
);
pub const DROPPED: MetricName = metric(
    "healthd.history.dropped",
    "{record}",
    "healthd_history_dropped_total",
    "Results and status changes the history writer lost (queue full or lagging)",
);
pub const WRITTEN: MetricName = metric(
    "healthd.history.written",
    "{record}",
    "healthd_history_written_total",
    "Results and status changes committed to the history store",
);
pub const COMMIT_ERRORS: MetricName = metric(
    "healthd.history.commit_errors",
    "{commit}",
    "healthd_history_commit_errors_total",
    "History commits that failed",
);

pub const TRIMMED: MetricName = metric(
    "healthd.history.trimmed",
    "{row}",
    "healthd_history_trimmed_total",
    "Rows the in-memory history store dropped to stay within [history] memory_limit",
);

/// One gauge value: `(check, extra label, value)`.
pub type Point = (String, Option<(&'static str, &'static str)>, f64);

/// How many gauge families [`gauges`] returns.
pub const GAUGE_FAMILIES: usize = 5;

/// The gauges of the view, by metric, each family's points sorted by check.
pub fn gauges(view: &HistoryView) -> Vec<(MetricName, Vec<Point>)> {
    gauges_of(&view.checks)
}

/// [`gauges`] of some of the view's checks.
fn gauges_of(checks: &[(std::sync::Arc<str>, CheckHistory)]) -> Vec<(MetricName, Vec<Point>)> {
    let mut out: Vec<(MetricName, Vec<Point>)> = [UPTIME, OBJECTIVE, BUDGET, BURN, ALERT]
        .into_iter()
        .map(|m| (m, Vec::new()))
        .collect();
    // The view is sorted by check.
    for (name, h) in checks {
        let n = || name.to_string();
        for ((w, _), v) in UPTIME_WINDOWS.iter().zip(&h.uptime) {
            if let Some(v) = v {
                out[0].1.push((n(), Some(("window", w)), *v));
            }
        }
        let Some(slo) = &h.slo else { continue };
        out[1].1.push((n(), None, slo.objective));
        if let Some(r) = slo.error_budget_remaining {
            out[2].1.push((n(), None, r));
        }
        for (w, v) in &slo.burn_rates {
            if let Some(v) = v {
                out[3].1.push((n(), Some(("window", w)), *v));
            }
        }
        out[4].1.push((
            n(),
            Some(("severity", "page")),
            f64::from(u8::from(slo.alert.page)),
        ));
        out[4].1.push((
            n(),
            Some(("severity", "ticket")),
            f64::from(u8::from(slo.alert.ticket)),
        ));
    }
    out
}

/// The writer's counters.
pub fn counters(history: &History) -> [(MetricName, u64); 4] {
    let s = &history.stats;
    [
        (DROPPED, s.dropped.load(Ordering::Relaxed)),
        (WRITTEN, s.written.load(Ordering::Relaxed)),
        (COMMIT_ERRORS, s.errors.load(Ordering::Relaxed)),
        (TRIMMED, s.trimmed.load(Ordering::Relaxed)),
    ]
}

/// The Prometheus side: history's families for `/metrics` (the `part` of them).
#[derive(Debug)]
pub struct PrometheusHistory(
    pub std::sync::Arc<HistoryView>,
    pub [(MetricName, u64); 4],
    pub HistoryPart,
);

/// Which of history's families a [`PrometheusHistory`] encodes: all, the writer's counters
/// only, or one gauge family (of [`GAUGE_FAMILIES`]) for a range of the view's checks.
#[derive(Debug, Clone)]
pub enum HistoryPart {
    Whole,
    Counters,
    Gauges(usize, std::ops::Range<usize>),
}

impl PrometheusHistory {
    pub fn of(history: &History, part: HistoryPart) -> PrometheusHistory {
        PrometheusHistory(history.view.load_full(), counters(history), part)
    }
}

impl Collector for PrometheusHistory {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = &self.0.checks[..];
        let (checks, only) = match &self.2 {
            HistoryPart::Whole => (all, None),
            HistoryPart::Counters => (&all[..0], None),
            HistoryPart::Gauges(f, r) => (all.get(r.clone()).unwrap_or_default(), Some(*f)),
        };
        for (i, (m, points)) in gauges_of(checks).into_iter().enumerate() {
            if points.is_empty() || only.is_some_and(|f| f != i) {
                continue;
            }
            let mut family =
                enc.encode_descriptor(m.prometheus, m.help, None, MetricType::Gauge)?;
            for (check, extra, v) in &points {
                let mut labels = vec![("healthd_check_name", check.as_str())];
                labels.extend(extra.iter().copied());
                ConstGauge::new(*v).encode(family.encode_family(&labels)?)?;
            }
        }
        if only.is_some() {
            return Ok(());
        }
        for (m, v) in &self.1 {
            let family = enc.encode_descriptor(
                m.prometheus.trim_end_matches("_total"),
                m.help,
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(*v).encode(family)?;
        }
        Ok(())
    }
}

/// The OTLP side: observable instruments over the published view and the writer's
/// counters (read at each collection, never computed there).
pub fn register_otlp(provider: &opentelemetry_sdk::metrics::SdkMeterProvider, history: &History) {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider;
    let meter = provider.meter("healthd");
    for (i, m) in [UPTIME, OBJECTIVE, BUDGET, BURN, ALERT]
        .into_iter()
        .enumerate()
    {
        let view = history.view.clone();
        let _ = meter
            .f64_observable_gauge(m.otlp)
            .with_unit(m.unit)
            .with_description(m.help)
            .with_callback(move |o| {
                let families = gauges(&view.load());
                for (check, extra, v) in &families[i].1 {
                    let mut attrs = vec![KeyValue::new("healthd.check.name", check.clone())];
                    if let Some((k, val)) = extra {
                        attrs.push(KeyValue::new(*k, *val));
                    }
                    o.observe(*v, &attrs);
                }
            })
            .build();
    }
    for (i, (m, _)) in counters(history).into_iter().enumerate() {
        let h = history.clone();
        let _ = meter
            .u64_observable_counter(m.otlp)
            .with_unit(m.unit)
            .with_description(m.help)
            .with_callback(move |o| o.observe(counters(&h)[i].1, &[]))
            .build();
    }
}
