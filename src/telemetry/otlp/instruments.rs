//! The instruments: observable gauges and counters that read the latest snapshot at each
//! collection, the duration histogram fed by accepted runs, and the status-change log
//! records.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use opentelemetry::metrics::Meter;

use crate::health::fanout::Receiver;
use crate::health::{LATENCY_BUCKETS, SharedSnapshot, StatusChange};
use crate::host::SharedHost;
use crate::model::Status;
use crate::telemetry::host::{self, AttrValue, Family, Kind, Point};

fn status_attrs(name: &str, kind: &'static str) -> [KeyValue; 2] {
    [
        KeyValue::new("healthd.check.name", name.to_string()),
        KeyValue::new("healthd.check.kind", kind),
    ]
}

/// An instrument named, united and described from its row of the metric table in
/// `telemetry::host`, so OTLP and Prometheus cannot drift apart.
macro_rules! described {
    ($meter:expr, $kind:ident, $metric:expr) => {
        $meter
            .$kind($metric.otlp)
            .with_unit($metric.unit)
            .with_description($metric.help)
    };
}

/// Observable instruments over the snapshot and the host sample; the callbacks run on the
/// reader's thread at each collection and only load the latest published ones.
pub(super) fn register_instruments(
    provider: &SdkMeterProvider,
    snapshot: SharedSnapshot,
    host: SharedHost,
) {
    let meter = provider.meter("healthd");

    let snap = snapshot.clone();
    let _ = described!(meter, i64_observable_gauge, host::CHECK_STATUS)
        .with_callback(move |o| {
            let s = snap.load();
            for c in &s.checks {
                for st in Status::ALL {
                    let [n, k] = status_attrs(&c.name, c.kind);
                    o.observe(
                        i64::from(c.status == st),
                        &[n, k, KeyValue::new("healthd.check.status", st.as_str())],
                    );
                }
            }
        })
        .build();

    let snap = snapshot.clone();
    let _ = described!(meter, i64_observable_gauge, host::GROUP_STATUS)
        .with_callback(move |o| {
            let s = snap.load();
            for (g, summary) in &s.groups {
                for st in Status::ALL {
                    o.observe(
                        i64::from(summary.status == st),
                        &[
                            KeyValue::new("healthd.group.name", g.as_str()),
                            KeyValue::new("healthd.group.status", st.as_str()),
                        ],
                    );
                }
            }
        })
        .build();

    let snap = snapshot.clone();
    let _ = described!(meter, u64_observable_counter, host::CHECK_RUNS)
        .with_callback(move |o| {
            let s = snap.load();
            for c in s.checks.iter().filter(|c| !c.builtin) {
                for (reason, n) in &c.stats.runs {
                    let [name, kind] = status_attrs(&c.name, c.kind);
                    match reason {
                        None => o.observe(
                            *n,
                            &[name, kind, KeyValue::new("healthd.check.result", "success")],
                        ),
                        Some(r) => o.observe(
                            *n,
                            &[
                                name,
                                kind,
                                KeyValue::new("healthd.check.result", "failure"),
                                KeyValue::new("error.type", r.as_str()),
                            ],
                        ),
                    }
                }
            }
        })
        .build();

    let snap = snapshot.clone();
    let _ = described!(meter, i64_observable_gauge, host::TLS_CERT_NOT_AFTER)
        .with_callback(move |o| {
            let s = snap.load();
            for (c, not_after) in host::cert_not_after(&s) {
                o.observe(not_after, &status_attrs(&c.name, c.kind));
            }
        })
        .build();

    for family in host::families() {
        register_host_family(&meter, family, host.clone());
    }
}

fn attrs(p: &Point) -> Vec<KeyValue> {
    p.attrs
        .iter()
        .map(|(k, v)| match v {
            AttrValue::Word(w) => KeyValue::new(*k, *w),
            AttrValue::Text(t) => KeyValue::new(*k, t.clone()),
            AttrValue::Int(i) => KeyValue::new(*k, *i),
        })
        .collect()
}

/// One observable instrument per host family; its callback renders the family from the
/// latest published host sample (nothing while host metrics are off).
fn register_host_family(meter: &Meter, family: &'static Family, host: SharedHost) {
    let points = move || {
        host.load_full()
            .map(|s| (family.points)(&s))
            .unwrap_or_default()
    };
    let name = family.name;
    match (family.kind, family.int) {
        (Kind::Gauge, _) => {
            let _ = described!(meter, f64_observable_gauge, name)
                .with_callback(move |o| points().iter().for_each(|p| o.observe(p.value, &attrs(p))))
                .build();
        }
        (Kind::Counter, true) => {
            let _ = described!(meter, u64_observable_counter, name)
                .with_callback(move |o| {
                    points()
                        .iter()
                        .for_each(|p| o.observe(p.value as u64, &attrs(p)))
                })
                .build();
        }
        (Kind::Counter, false) => {
            let _ = described!(meter, f64_observable_counter, name)
                .with_callback(move |o| points().iter().for_each(|p| o.observe(p.value, &attrs(p))))
                .build();
        }
        (Kind::UpDownCounter, true) => {
            let _ = described!(meter, i64_observable_up_down_counter, name)
                .with_callback(move |o| {
                    points()
                        .iter()
                        .for_each(|p| o.observe(p.value as i64, &attrs(p)))
                })
                .build();
        }
        (Kind::UpDownCounter, false) => {
            let _ = described!(meter, f64_observable_up_down_counter, name)
                .with_callback(move |o| points().iter().for_each(|p| o.observe(p.value, &attrs(p))))
                .build();
        }
    }
}

/// Record each accepted run's latency into the duration histogram as it happens.
pub(super) fn spawn_duration_recorder(
    provider: &SdkMeterProvider,
    mut runs: crate::health::fanout::Receiver<std::sync::Arc<crate::health::RunRecord>>,
    cancel: CancellationToken,
) {
    let histogram = described!(
        provider.meter("healthd"),
        f64_histogram,
        host::CHECK_DURATION
    )
    .with_boundaries(LATENCY_BUCKETS.to_vec())
    .build();
    tokio::spawn(async move {
        loop {
            let run = tokio::select! {
                _ = cancel.cancelled() => break,
                r = runs.recv() => r,
            };
            match run {
                Ok(r) => histogram.record(r.latency.as_secs_f64(), &status_attrs(&r.check, r.kind)),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(
                        missed = n,
                        "Duration recorder fell behind; runs not recorded."
                    );
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Emit one OTLP log record per check status change.
pub(super) fn spawn_change_logger(
    provider: &SdkLoggerProvider,
    mut changes: Receiver<Arc<StatusChange>>,
    cancel: CancellationToken,
) {
    let logger = provider.logger("healthd");
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                _ = cancel.cancelled() => break,
                c = changes.recv() => c,
            };
            let c = match change {
                Ok(c) => c,
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "Status-change log records dropped.");
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let mut rec = logger.create_log_record();
            rec.set_event_name("healthd.check.status_change");
            rec.set_timestamp(c.at);
            let (severity, text) = match c.to {
                Status::Healthy => (Severity::Info, "INFO"),
                Status::Degraded | Status::Unknown => (Severity::Warn, "WARN"),
                Status::Unhealthy => (Severity::Error, "ERROR"),
            };
            rec.set_severity_number(severity);
            rec.set_severity_text(text);
            rec.set_body(AnyValue::from(format!(
                "Check {} changed from {} to {}: {}",
                c.check,
                c.from.as_str(),
                c.to.as_str(),
                c.message
            )));
            rec.add_attribute("healthd.check.name", c.check.clone());
            rec.add_attribute("healthd.check.kind", c.kind);
            rec.add_attribute("healthd.check.status.previous", c.from.as_str());
            rec.add_attribute("healthd.check.status", c.to.as_str());
            if let Some(r) = c.reason {
                rec.add_attribute("error.type", r.as_str());
            }
            logger.emit(rec);
        }
    });
}
