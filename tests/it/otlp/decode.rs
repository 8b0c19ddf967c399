//! Decoding exported metrics into flat data points, and the OTLP → Prometheus name rules.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};

#[derive(Debug, Clone)]
pub(super) struct Point {
    pub(super) metric: String,
    pub(super) unit: String,
    pub(super) kind: &'static str,
    pub(super) attrs: BTreeMap<String, String>,
    pub(super) value: f64,
    /// Histograms: count and explicit bounds.
    pub(super) count: u64,
    pub(super) bounds: Vec<f64>,
}

fn any_str(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

pub(super) fn attrs(kv: &[KeyValue]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|k| (k.key.clone(), any_str(&k.value)))
        .collect()
}

pub(super) fn resource_of(req: &ExportMetricsServiceRequest) -> BTreeMap<String, String> {
    req.resource_metrics
        .first()
        .and_then(|r| r.resource.as_ref())
        .map(|r| attrs(&r.attributes))
        .unwrap_or_default()
}

pub(super) fn points(req: &ExportMetricsServiceRequest) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let base = |kind, attrs, value, count, bounds| Point {
                    metric: m.name.clone(),
                    unit: m.unit.clone(),
                    kind,
                    attrs,
                    value,
                    count,
                    bounds,
                };
                let num =
                    |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        None => f64::NAN,
                    };
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            out.push(base("gauge", attrs(&p.attributes), num(p), 0, vec![]));
                        }
                    }
                    Some(metric::Data::Sum(s)) => {
                        let kind = if s.is_monotonic {
                            "counter"
                        } else {
                            "updowncounter"
                        };
                        for p in &s.data_points {
                            out.push(base(kind, attrs(&p.attributes), num(p), 0, vec![]));
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for p in &h.data_points {
                            out.push(base(
                                "histogram",
                                attrs(&p.attributes),
                                p.sum.unwrap_or(0.0),
                                p.count,
                                p.explicit_bounds.clone(),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

pub(super) fn names(points: &[Point]) -> Vec<String> {
    let mut n: Vec<String> = points.iter().map(|p| p.metric.clone()).collect();
    n.sort();
    n.dedup();
    n
}

/// The OTLP → Prometheus name translation (unit suffix, `_total` on counters), with the
/// two names healthd changes because promtool rejects a gauge ending in `_count`.
pub(super) fn prometheus_name(p: &Point) -> String {
    match p.metric.as_str() {
        "system.cpu.logical.count" => return "system_cpu_logical_cpus".into(),
        "system.process.count" => return "system_processes".into(),
        _ => {}
    }
    let mut n = p.metric.replace('.', "_");
    match p.unit.as_str() {
        "By" => n.push_str("_bytes"),
        "s" => n.push_str("_seconds"),
        "1" => n.push_str("_ratio"),
        "Hz" => n.push_str("_hertz"),
        _ => {}
    }
    if p.kind == "counter" {
        n.push_str("_total");
    }
    n
}
