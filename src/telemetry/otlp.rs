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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_otlp::{
    LogExporter, MetricExporter, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::check::Reason;
use crate::config::Config;
use crate::health::{Event, HealthHandle, LATENCY_BUCKETS, SharedSnapshot, Status, StatusChange};
use crate::telemetry::config::{ExportSettings, Protocol};
use crate::telemetry::host::{self, Host};

/// Name of the self-check that reports export health.
pub const TELEMETRY_CHECK: &str = "telemetry";
/// Bound on the final flush at shutdown (and on stopping an old exporter at reload).
pub const SHUTDOWN_BOUND: Duration = Duration::from_millis(2500);
/// While exports keep failing, at most one log line per this period.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(60);

/// A running OTLP exporter.
pub struct Telemetry {
    settings: ExportSettings,
    meters: SdkMeterProvider,
    logs: Option<SdkLoggerProvider>,
    cancel: CancellationToken,
}

/// The settings the config and environment give, or `None` when export is off.
pub fn settings_of(config: &Config, env: &HashMap<String, String>) -> Option<ExportSettings> {
    match crate::telemetry::config::resolve(&config.telemetry, env) {
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
        Some(settings) => match Telemetry::start(settings, health) {
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

fn report(events: &mpsc::Sender<Event>, status: Status, reason: Option<Reason>, message: String) {
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
    pub fn start(settings: ExportSettings, health: &HealthHandle) -> Result<Telemetry, String> {
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
        register_instruments(&meters, health.snapshot.clone());
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

/// The endpoint without credentials in its authority, for logs and messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn tonic_tls(
    s: &ExportSettings,
) -> Result<Option<opentelemetry_otlp::tonic_types::transport::ClientTlsConfig>, String> {
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
    if !s.metrics_endpoint.starts_with("https://") {
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    tls = match &s.ca_file {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read_file(ca)?)),
        None => tls.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&s.client_cert, &s.client_key) {
        tls = tls.identity(Identity::from_pem(read_file(cert)?, read_file(key)?));
    }
    Ok(Some(tls))
}

fn metadata(
    s: &ExportSettings,
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, String> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in &s.headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("header {k}: {e}"))?;
        let value = reqwest::header::HeaderValue::from_str(v)
            .map_err(|e| format!("header {k}: invalid value: {e}"))?;
        map.insert(name, value);
    }
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
}

/// A blocking reqwest client with the configured CA and client certificate, built on its
/// own thread (building a blocking client inside the async runtime is not allowed).
fn http_client(s: &ExportSettings) -> Result<Option<reqwest::blocking::Client>, String> {
    if s.ca_file.is_none() && s.client_cert.is_none() {
        return Ok(None);
    }
    let ca = s.ca_file.as_deref().map(read_file).transpose()?;
    let identity = match (&s.client_cert, &s.client_key) {
        (Some(c), Some(k)) => {
            let mut pem = read_file(c)?;
            pem.push(b'\n');
            pem.extend(read_file(k)?);
            Some(pem)
        }
        _ => None,
    };
    let timeout = s.timeout;
    std::thread::spawn(move || -> Result<reqwest::blocking::Client, String> {
        let mut b = reqwest::blocking::Client::builder().timeout(timeout);
        if let Some(ca) = ca {
            let certs =
                reqwest::Certificate::from_pem_bundle(&ca).map_err(|e| format!("CA file: {e}"))?;
            b = b.tls_certs_only(certs);
        }
        if let Some(pem) = identity {
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("client certificate: {e}"))?,
            );
        }
        b.build().map_err(|e| format!("HTTP client: {e}"))
    })
    .join()
    .map_err(|_| "building the HTTP client panicked".to_string())?
    .map(Some)
}

/// Build an OTLP exporter of one signal: the metrics and logs builders are distinct types
/// with the same methods, so one macro keeps their settings from drifting apart.
macro_rules! build_exporter {
    ($exporter:ty, $s:expr, $endpoint:expr) => {{
        let s: &ExportSettings = $s;
        match s.protocol {
            Protocol::Grpc => {
                let mut b = <$exporter>::builder()
                    .with_tonic()
                    .with_endpoint($endpoint)
                    .with_timeout(s.timeout)
                    .with_metadata(metadata(s)?)
                    .with_retry_policy(RetryPolicy::disabled());
                if let Some(tls) = tonic_tls(s)? {
                    b = b.with_tls_config(tls);
                }
                b.build()
            }
            Protocol::HttpProtobuf => {
                let mut b = <$exporter>::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint($endpoint)
                    .with_timeout(s.timeout)
                    .with_headers(s.headers.clone().into_iter().collect())
                    .with_retry_policy(RetryPolicy::disabled());
                if let Some(client) = http_client(s)? {
                    b = b.with_http_client(client);
                }
                b.build()
            }
        }
    }};
}

fn metric_exporter(s: &ExportSettings) -> Result<MetricExporter, String> {
    build_exporter!(MetricExporter, s, &s.metrics_endpoint)
        .map_err(|e| format!("metrics exporter: {e}"))
}

fn log_exporter(s: &ExportSettings) -> Result<LogExporter, String> {
    build_exporter!(LogExporter, s, &s.logs_endpoint).map_err(|e| format!("logs exporter: {e}"))
}

fn status_attrs(name: &str, kind: &'static str) -> [KeyValue; 2] {
    [
        KeyValue::new("healthd.check.name", name.to_string()),
        KeyValue::new("healthd.check.kind", kind),
    ]
}

/// Observable instruments over the snapshot; the callbacks run on the reader's thread at
/// each collection and only load the latest published snapshot.
fn register_instruments(provider: &SdkMeterProvider, snapshot: SharedSnapshot) {
    let meter = provider.meter("healthd");

    let snap = snapshot.clone();
    let _ = meter
        .i64_observable_gauge(host::CHECK_STATUS.otlp)
        .with_unit(host::CHECK_STATUS.unit)
        .with_description(host::CHECK_STATUS.help)
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
    let _ = meter
        .i64_observable_gauge(host::GROUP_STATUS.otlp)
        .with_unit(host::GROUP_STATUS.unit)
        .with_description(host::GROUP_STATUS.help)
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
    let _ = meter
        .u64_observable_counter(host::CHECK_RUNS.otlp)
        .with_unit(host::CHECK_RUNS.unit)
        .with_description(host::CHECK_RUNS.help)
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
    let _ = meter
        .f64_observable_gauge(host::CPU_UTILIZATION.otlp)
        .with_unit(host::CPU_UTILIZATION.unit)
        .with_description(host::CPU_UTILIZATION.help)
        .with_callback(move |o| {
            let s = snap.load();
            if let Some(c) = Host::of(&s).cpu {
                o.observe(c.utilization, &[]);
            }
        })
        .build();

    for (i, name) in [host::LOAD_1M, host::LOAD_5M, host::LOAD_15M]
        .into_iter()
        .enumerate()
    {
        let snap = snapshot.clone();
        let _ = meter
            .f64_observable_gauge(name.otlp)
            .with_unit(name.unit)
            .with_description(name.help)
            .with_callback(move |o| {
                let s = snap.load();
                if let Some(loads) = Host::of(&s).load_average() {
                    o.observe(loads[i].1, &[]);
                }
            })
            .build();
    }

    let snap = snapshot.clone();
    let _ = meter
        .f64_observable_gauge(host::UPTIME.otlp)
        .with_unit(host::UPTIME.unit)
        .with_description(host::UPTIME.help)
        .with_callback(move |o| {
            let s = snap.load();
            if let Some(up) = Host::of(&s).cpu.and_then(|c| c.uptime_seconds) {
                o.observe(up as f64, &[]);
            }
        })
        .build();

    let snap = snapshot.clone();
    let _ = meter
        .i64_observable_up_down_counter(host::MEMORY_USAGE.otlp)
        .with_unit(host::MEMORY_USAGE.unit)
        .with_description(host::MEMORY_USAGE.help)
        .with_callback(move |o| {
            let s = snap.load();
            if let Some((states, _)) = Host::of(&s).memory_states() {
                for (state, v) in states {
                    o.observe(
                        i64::try_from(v).unwrap_or(i64::MAX),
                        &[KeyValue::new("system.memory.state", state)],
                    );
                }
            }
        })
        .build();

    let snap = snapshot.clone();
    let _ = meter
        .f64_observable_gauge(host::MEMORY_UTILIZATION.otlp)
        .with_unit(host::MEMORY_UTILIZATION.unit)
        .with_description(host::MEMORY_UTILIZATION.help)
        .with_callback(move |o| {
            let s = snap.load();
            if let Some((states, total)) = Host::of(&s).memory_states() {
                for (state, v) in states {
                    o.observe(
                        host::ratio(v, total),
                        &[KeyValue::new("system.memory.state", state)],
                    );
                }
            }
        })
        .build();

    fn fs_attrs(d: &crate::check::system::DiskSample) -> Vec<KeyValue> {
        vec![
            KeyValue::new("system.device", d.device.clone()),
            KeyValue::new("system.filesystem.mountpoint", d.mountpoint.clone()),
            KeyValue::new("system.filesystem.type", d.fs_type.clone()),
        ]
    }
    let snap = snapshot.clone();
    let _ = meter
        .i64_observable_up_down_counter(host::FS_USAGE.otlp)
        .with_unit(host::FS_USAGE.unit)
        .with_description(host::FS_USAGE.help)
        .with_callback(move |o| {
            let s = snap.load();
            for d in Host::of(&s).filesystems {
                for (state, v) in host::filesystem_states(d) {
                    let mut attrs = fs_attrs(d);
                    attrs.push(KeyValue::new("system.filesystem.state", state));
                    o.observe(i64::try_from(v).unwrap_or(i64::MAX), &attrs);
                }
            }
        })
        .build();

    let snap = snapshot;
    let _ = meter
        .f64_observable_gauge(host::FS_UTILIZATION.otlp)
        .with_unit(host::FS_UTILIZATION.unit)
        .with_description(host::FS_UTILIZATION.help)
        .with_callback(move |o| {
            let s = snap.load();
            for d in Host::of(&s).filesystems {
                o.observe(host::filesystem_utilization(d), &fs_attrs(d));
            }
        })
        .build();
}

/// Record each accepted run's latency into the duration histogram as it happens.
fn spawn_duration_recorder(
    provider: &SdkMeterProvider,
    mut runs: broadcast::Receiver<crate::health::RunRecord>,
    cancel: CancellationToken,
) {
    let histogram = provider
        .meter("healthd")
        .f64_histogram(host::CHECK_DURATION.otlp)
        .with_unit(host::CHECK_DURATION.unit)
        .with_description(host::CHECK_DURATION.help)
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
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(
                        missed = n,
                        "Duration recorder fell behind; runs not recorded."
                    );
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// Emit one OTLP log record per check status change.
fn spawn_change_logger(
    provider: &SdkLoggerProvider,
    mut changes: broadcast::Receiver<StatusChange>,
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
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "Status-change log records dropped.");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
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

/// What the export watcher remembers between exports.
#[derive(Default)]
struct WatchState {
    /// `Some(true)` while failing, `Some(false)` while succeeding, `None` before the first.
    failing: Option<bool>,
    /// Failures since the last log line.
    unlogged: u64,
    /// Failures in the current streak.
    streak: u64,
    /// The reason the self-check last reported for this streak.
    reason: Option<Reason>,
    last_log: Option<Instant>,
}

struct ExportWatch {
    events: mpsc::Sender<Event>,
    endpoint: String,
    state: Mutex<WatchState>,
}

impl ExportWatch {
    fn record(&self, result: &OTelSdkResult) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match result {
            Ok(()) => {
                if st.failing != Some(false) {
                    if st.failing == Some(true) {
                        tracing::info!(endpoint = %self.endpoint, failed_exports = st.streak, "OTLP export recovered.");
                    }
                    report(
                        &self.events,
                        Status::Healthy,
                        None,
                        format!("exporting to {}", self.endpoint),
                    );
                }
                *st = WatchState {
                    failing: Some(false),
                    ..WatchState::default()
                };
            }
            Err(e) => {
                let text = truncate(&e.to_string(), 300);
                st.streak += 1;
                st.unlogged += 1;
                let due = st
                    .last_log
                    .is_none_or(|t| t.elapsed() >= FAILURE_LOG_PERIOD);
                let reason = classify(&text);
                if st.reason != Some(reason) {
                    // A new streak, or the failure changed nature (say refused → rejected).
                    st.reason = Some(reason);
                    report(
                        &self.events,
                        Status::Degraded,
                        Some(reason),
                        format!("exports to {} failing: {text}", self.endpoint),
                    );
                }
                if st.failing != Some(true) {
                    tracing::warn!(endpoint = %self.endpoint, error = %text, "OTLP export failed; retrying every period, further failures logged at most once a minute.");
                    st.unlogged = 0;
                    st.last_log = Some(Instant::now());
                } else if due {
                    tracing::warn!(endpoint = %self.endpoint, failures = st.unlogged, streak = st.streak, error = %text, "OTLP export still failing.");
                    st.unlogged = 0;
                    st.last_log = Some(Instant::now());
                }
                st.failing = Some(true);
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A bounded reason for the self-check from the exporter's error text.
fn classify(text: &str) -> Reason {
    let t = text.to_ascii_lowercase();
    if t.contains("timed out") || t.contains("timeout") || t.contains("deadline") {
        Reason::Timeout
    } else if t.contains("unauthenticated")
        || t.contains("permissiondenied")
        || t.contains("permission denied")
        || t.contains("401")
        || t.contains("403")
    {
        Reason::Auth
    } else if t.contains("certificate") || t.contains("tls") || t.contains("handshake") {
        Reason::Tls
    } else if t.contains("dns") || t.contains("resolve") || t.contains("lookup") {
        Reason::Dns
    } else if t.contains("connect")
        || t.contains("transport")
        || t.contains("refused")
        || t.contains("sending request")
        || t.contains("network error")
    {
        Reason::Connect
    } else if t.contains("status") {
        Reason::Status
    } else {
        Reason::Protocol
    }
}

/// The OTLP exporter, reporting each export's outcome to the watcher.
struct Watched<E> {
    inner: E,
    watch: Arc<ExportWatch>,
}

impl<E: PushMetricExporter> PushMetricExporter for Watched<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.watch.record(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
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

    #[test]
    fn redact_drops_credentials() {
        assert_eq!(
            redact("https://user:pw@collector:4318/v1/metrics"),
            "https://collector:4318/v1/metrics"
        );
        assert_eq!(redact("http://c:4317"), "http://c:4317");
    }

    #[test]
    fn classify_errors() {
        assert_eq!(
            classify("transport error: Connection refused"),
            Reason::Connect
        );
        assert_eq!(classify("request timed out"), Reason::Timeout);
        assert_eq!(classify("status: Unauthenticated"), Reason::Auth);
    }
}
