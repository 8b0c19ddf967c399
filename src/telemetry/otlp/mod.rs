//! OTLP export: the snapshot as OpenTelemetry metrics (gRPC or HTTP/protobuf), plus an
//! optional log record per check status change.
//!
//! The instruments only *read* the published snapshot (observable gauges and counters whose
//! callbacks load it); the duration histogram records each run as the health loop accepts
//! it (`HealthHandle::runs`). Nothing here triggers a probe or measures anything twice.
//!
//! The SDK's `PeriodicReader` runs on its own OS thread, so a slow or absent collector never
//! holds up checks or endpoints. Each export is bounded by the exporter timeout, retries are
//! off (the next period is the retry), and the exporter is wrapped to report its outcome:
//! failures are logged rate-limited and turn the `telemetry` self-check degraded.
//!
//! - this file: starting, swapping and stopping the exporter, and the resource;
//! - [`transport`]: gRPC or HTTP/protobuf exporters, TLS, headers;
//! - [`instruments`]: the metrics, driven from the one metric-name table in `host`;
//! - [`watch`]: the export health that feeds the `telemetry` self-check.

mod instruments;
mod transport;
mod watch;

use instruments::{register_instruments, spawn_change_logger, spawn_duration_recorder};
use transport::{log_exporter, metric_exporter, redact};
use watch::{ExportWatch, WatchState, Watched};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::telemetry::ExportSettings;
use crate::health::{Event, HealthHandle};
use crate::host::SharedHost;
use crate::model::{Reason, Status};

/// Name of the self-check that reports export health.
pub const TELEMETRY_CHECK: &str = "telemetry";
/// Bound on the final flush at shutdown (and on stopping an old exporter at reload).
pub const SHUTDOWN_BOUND: Duration = Duration::from_millis(2500);

/// A running OTLP exporter.
pub struct Telemetry {
    settings: ExportSettings,
    meters: SdkMeterProvider,
    logs: Option<SdkLoggerProvider>,
    cancel: CancellationToken,
}

/// The settings the config and environment give, or `None` when export is off.
pub fn settings_of(config: &Config, env: &HashMap<String, String>) -> Option<ExportSettings> {
    match crate::config::telemetry::resolve(&config.telemetry, env) {
        Ok(s) => s,
        Err(problems) => {
            // `config::load` reports these; they can only appear here if a file changed since.
            for p in problems {
                tracing::error!(key = %p.key, reason = %p.reason, "Telemetry settings invalid; OTLP export off.");
            }
            None
        }
    }
}

/// Start, keep, restart or stop the exporter to match `wanted` (used at start and reload).
pub async fn apply(
    current: Option<Telemetry>,
    wanted: Option<ExportSettings>,
    health: &HealthHandle,
    host: &SharedHost,
) -> Option<Telemetry> {
    if let (Some(cur), Some(w)) = (&current, &wanted)
        && cur.settings == *w
    {
        return current;
    }
    let was_on = current.is_some();
    if let Some(old) = current {
        old.shutdown().await;
    }
    match wanted {
        Some(settings) => match Telemetry::start(settings, health, host) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "Cannot start OTLP export.");
                report(
                    &health.events,
                    Status::Degraded,
                    Some(Reason::Config),
                    format!("cannot start OTLP export: {e}"),
                );
                None
            }
        },
        None => {
            if was_on {
                tracing::info!("OTLP export turned off.");
                report(
                    &health.events,
                    Status::Healthy,
                    None,
                    "OTLP export off".into(),
                );
            }
            None
        }
    }
}

pub(super) fn report(
    events: &mpsc::Sender<Event>,
    status: Status,
    reason: Option<Reason>,
    message: String,
) {
    // Never block the exporter thread: a full queue only delays the self-check.
    let _ = events.try_send(Event::SelfCheck {
        name: TELEMETRY_CHECK.into(),
        groups: vec![],
        status,
        reason,
        message,
    });
}

impl Telemetry {
    /// Build the exporters and instruments; must run inside the tokio runtime (tonic).
    pub fn start(
        settings: ExportSettings,
        health: &HealthHandle,
        host: &SharedHost,
    ) -> Result<Telemetry, String> {
        let resource = resource(&settings);
        let watcher = Arc::new(ExportWatch {
            events: health.events.clone(),
            endpoint: redact(&settings.metrics_endpoint),
            state: Mutex::new(WatchState::default()),
        });
        // Every fallible step first: a provider dropped on an error path would block this
        // async context with its final export.
        let log_exporter = if settings.status_change_logs {
            Some(log_exporter(&settings)?)
        } else {
            None
        };
        let exporter = Watched {
            inner: metric_exporter(&settings)?,
            watch: watcher,
        };
        let reader = PeriodicReader::builder(exporter)
            .with_interval(settings.interval)
            .build();
        let meters = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader)
            .build();
        let cancel = CancellationToken::new();
        register_instruments(&meters, health.snapshot.clone(), host.clone());
        spawn_duration_recorder(&meters, health.runs.subscribe(), cancel.clone());

        let logs = log_exporter.map(|exporter| {
            let provider = SdkLoggerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(exporter)
                .build();
            spawn_change_logger(&provider, health.changes.subscribe(), cancel.clone());
            provider
        });
        tracing::info!(
            endpoint = %redact(&settings.metrics_endpoint),
            protocol = settings.protocol.as_str(),
            interval = %humantime::format_duration(settings.interval),
            timeout = %humantime::format_duration(settings.timeout),
            status_change_logs = settings.status_change_logs,
            "OTLP export on."
        );
        Ok(Telemetry {
            settings,
            meters,
            logs,
            cancel,
        })
    }

    pub fn settings(&self) -> &ExportSettings {
        &self.settings
    }

    /// The meter provider, for instruments registered beside the snapshot's (history's).
    pub fn meters(&self) -> &SdkMeterProvider {
        &self.meters
    }

    /// Export once more and stop, bounded by [`SHUTDOWN_BOUND`] even when the collector is
    /// gone. The SDK's shutdown blocks, so it runs on its own thread (not `spawn_blocking`:
    /// a stuck blocking task would hold up the runtime's own shutdown).
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let meters = self.meters;
        let logs = self.logs;
        let spawned = std::thread::Builder::new()
            .name("otlp-shutdown".into())
            .spawn(move || {
                let m = meters.shutdown_with_timeout(SHUTDOWN_BOUND);
                let l = logs.map(|l| l.shutdown_with_timeout(SHUTDOWN_BOUND));
                let _ = tx.send((m, l));
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "Cannot start the OTLP shutdown thread; skipping the final export.");
            return;
        }
        match tokio::time::timeout(SHUTDOWN_BOUND + Duration::from_millis(500), rx).await {
            Ok(Ok((m, l))) => {
                if let Err(e) = m {
                    tracing::debug!(error = %e, "Final OTLP metrics export failed.");
                }
                if let Some(Err(e)) = l {
                    tracing::debug!(error = %e, "Final OTLP logs export failed.");
                }
                tracing::info!("OTLP export stopped.");
            }
            _ => tracing::warn!(
                bound = %humantime::format_duration(SHUTDOWN_BOUND),
                "OTLP export did not stop in time; giving up on the final export."
            ),
        }
    }
}

/// A random id per process (UUID v4 format), kept across exporter rebuilds.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    })
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn resource(settings: &ExportSettings) -> Resource {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    attrs.insert("service.name".into(), "healthd".into());
    attrs.insert("service.version".into(), env!("CARGO_PKG_VERSION").into());
    attrs.insert("service.instance.id".into(), instance_id().into());
    if let Some(h) = read_trimmed("/proc/sys/kernel/hostname") {
        attrs.insert("host.name".into(), h);
    }
    if let Some(id) = read_trimmed("/etc/machine-id") {
        attrs.insert("host.id".into(), id);
    }
    attrs.extend(settings.resource_attributes.clone());
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_is_uuid_shaped_and_stable() {
        let id = instance_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_eq!(instance_id(), id);
    }
}
