//! OTLP export against a real receiver built from the official protocol definitions
//! (opentelemetry-proto): a tonic gRPC server and an axum HTTP/protobuf route. Also
//! `promtool check metrics` on the daemon's real `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthd::config::{self, Sources};
use healthd::health::LATENCY_BUCKETS;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::support::daemon::{TestDaemon, is, reason};
use crate::support::{
    eventually_async, free_port, install_crypto, promtool_check_metrics, unique_secret,
};

// ---------------------------------------------------------------- the receiver

type Headers = HashMap<String, String>;

/// How the gRPC receiver answers metric exports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Mode {
    #[default]
    Accept,
    /// Answer only after this long (longer than the exporter's timeout).
    Slow(Duration),
    /// Refuse with `UNAUTHENTICATED`.
    Reject,
}

/// Everything the receiver got, with the request headers of each export.
#[derive(Clone, Default)]
struct Inbox {
    metrics: Arc<Mutex<Vec<(Headers, ExportMetricsServiceRequest)>>>,
    logs: Arc<Mutex<Vec<(Headers, ExportLogsServiceRequest)>>>,
    mode: Arc<Mutex<Mode>>,
}

impl Inbox {
    fn metric_count(&self) -> usize {
        self.metrics.lock().unwrap().len()
    }
    fn last(&self) -> Option<(Headers, ExportMetricsServiceRequest)> {
        self.metrics.lock().unwrap().last().cloned()
    }
}

fn header_map(h: &axum::http::HeaderMap) -> Headers {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tonic::async_trait]
impl MetricsService for Inbox {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Accept => {}
            Mode::Slow(d) => {
                tokio::time::sleep(d).await;
                return Ok(tonic::Response::new(ExportMetricsServiceResponse::default()));
            }
            Mode::Reject => return Err(tonic::Status::unauthenticated("bad token")),
        }
        let headers = header_map(&req.metadata().clone().into_headers());
        self.metrics
            .lock()
            .unwrap()
            .push((headers, req.into_inner()));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Inbox {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let headers = header_map(&req.metadata().clone().into_headers());
        self.logs.lock().unwrap().push((headers, req.into_inner()));
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// A running receiver; `kill` stops it and closes its connections.
struct Receiver {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn grpc(addr: SocketAddr, inbox: Inbox) -> Receiver {
        let listener = bind(addr).await;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(inbox.clone()))
                .add_service(LogsServiceServer::new(inbox))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
        });
        Receiver {
            stop: Some(tx),
            task,
        }
    }

    /// gRPC over TLS that requires a client certificate signed by `pki`'s CA.
    async fn grpc_mtls(addr: SocketAddr, inbox: Inbox, pki: &Pki) -> Receiver {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let listener = bind(addr).await;
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                pki.read("server.pem"),
                pki.read("server.key"),
            ))
            .client_ca_root(Certificate::from_pem(pki.read("ca.pem")));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .tls_config(tls)
                .expect("server TLS config")
                .add_service(MetricsServiceServer::new(inbox))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
        });
        Receiver {
            stop: Some(tx),
            task,
        }
    }

    async fn http(addr: SocketAddr, inbox: Inbox) -> Receiver {
        let listener = bind(addr).await;
        Receiver::serve_http(listener, inbox)
    }

    /// HTTP/protobuf over TLS that requires a client certificate signed by `pki`'s CA.
    async fn https_mtls(addr: SocketAddr, inbox: Inbox, pki: &Pki) -> Receiver {
        install_crypto();
        let certs: Vec<_> = rustls_pemfile::certs(&mut pki.read("server.pem").as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut pki.read("server.key").as_slice())
            .unwrap()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut pki.read("ca.pem").as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        let listener = TlsListener {
            tcp: bind(addr).await,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        Receiver::serve_http(listener, inbox)
    }

    fn serve_http<L>(listener: L, inbox: Inbox) -> Receiver
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        use axum::routing::post;
        let (m, l) = (inbox.clone(), inbox);
        let app = axum::Router::new()
            .route(
                "/v1/metrics",
                post(move |h: HeaderMap, b: Bytes| async move {
                    let Ok(req) = ExportMetricsServiceRequest::decode(b) else {
                        return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                    };
                    m.metrics.lock().unwrap().push((header_map(&h), req));
                    (
                        axum::http::StatusCode::OK,
                        ExportMetricsServiceResponse::default().encode_to_vec(),
                    )
                }),
            )
            .route(
                "/v1/logs",
                post(move |h: HeaderMap, b: Bytes| async move {
                    let Ok(req) = ExportLogsServiceRequest::decode(b) else {
                        return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                    };
                    l.logs.lock().unwrap().push((header_map(&h), req));
                    (
                        axum::http::StatusCode::OK,
                        ExportLogsServiceResponse::default().encode_to_vec(),
                    )
                }),
            )
            .layer(axum::middleware::map_response(
                |mut r: axum::response::Response| async move {
                    r.headers_mut().insert(
                        "content-type",
                        axum::http::HeaderValue::from_static("application/x-protobuf"),
                    );
                    r
                },
            ));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver {
            stop: Some(tx),
            task,
        }
    }

    /// Stop serving: the listener closes and open connections are shut down.
    async fn kill(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    // The port may still be in use by the previous receiver's last connections.
    eventually_async(
        &format!("{addr} to be free"),
        Duration::from_secs(10),
        || async { tokio::net::TcpListener::bind(addr).await.ok() },
    )
    .await
}

// ---------------------------------------------------------------- decoding

#[derive(Debug, Clone)]
struct Point {
    metric: String,
    unit: String,
    kind: &'static str,
    attrs: BTreeMap<String, String>,
    value: f64,
    /// Histograms: count and explicit bounds.
    count: u64,
    bounds: Vec<f64>,
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

fn attrs(kv: &[KeyValue]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|k| (k.key.clone(), any_str(&k.value)))
        .collect()
}

fn resource_of(req: &ExportMetricsServiceRequest) -> BTreeMap<String, String> {
    req.resource_metrics
        .first()
        .and_then(|r| r.resource.as_ref())
        .map(|r| attrs(&r.attributes))
        .unwrap_or_default()
}

fn points(req: &ExportMetricsServiceRequest) -> Vec<Point> {
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

fn names(points: &[Point]) -> Vec<String> {
    let mut n: Vec<String> = points.iter().map(|p| p.metric.clone()).collect();
    n.sort();
    n.dedup();
    n
}

/// The OTLP → Prometheus name translation (unit suffix, `_total` on counters).
fn prometheus_name(p: &Point) -> String {
    let mut n = p.metric.replace('.', "_");
    match p.unit.as_str() {
        "By" => n.push_str("_bytes"),
        "s" => n.push_str("_seconds"),
        "1" => n.push_str("_ratio"),
        _ => {}
    }
    if p.kind == "counter" {
        n.push_str("_total");
    }
    n
}

// ---------------------------------------------------------------- the daemon

async fn stop(d: TestDaemon) {
    tokio::time::timeout(
        Duration::from_secs(30),
        d.daemon.drain(std::future::pending()),
    )
    .await
    .expect("drain finishes even when the collector is gone");
}

/// A TCP listener for the tcp check; accepts and drops connections until aborted.
async fn tcp_target() -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            if let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }
    });
    (port, task)
}

fn checks_config(tcp_port: u16) -> String {
    format!(
        r#"
[server]
shutdown_delay = "10ms"

[defaults]
interval = "300ms"
timeout = "250ms"
failure_threshold = 1

[[checks]]
name = "cpu"
kind = "cpu"
critical = false
degraded_above = 99.5
unhealthy_above = 100

[[checks]]
name = "memory"
kind = "memory"
degraded_above = 99.5
unhealthy_above = 100

[[checks]]
name = "disk"
kind = "disk"
mounts = ["/"]
degraded_above = 99.5
unhealthy_above = 100

[[checks]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = {tcp_port}
"#
    )
}

const HOST_METRICS: [&str; 9] = [
    "system.cpu.utilization",
    "system.cpu.load_average.1m",
    "system.cpu.load_average.5m",
    "system.cpu.load_average.15m",
    "system.uptime",
    "system.memory.usage",
    "system.memory.utilization",
    "system.filesystem.usage",
    "system.filesystem.utilization",
];
const CHECK_METRICS: [&str; 4] = [
    "healthd.check.status",
    "healthd.group.status",
    "healthd.check.runs",
    "healthd.check.duration",
];

/// Wait for an export holding every metric (the duration histogram needs a run first).
async fn full_export(inbox: &Inbox, after: usize) -> (Headers, ExportMetricsServiceRequest) {
    eventually_async("a complete export", Duration::from_secs(30), || async {
        let all = inbox.metrics.lock().unwrap();
        all.iter()
            .skip(after)
            .rev()
            .find(|(_, r)| {
                let n = names(&points(r));
                HOST_METRICS
                    .iter()
                    .chain(CHECK_METRICS.iter())
                    .all(|m| n.iter().any(|x| x == m))
            })
            .cloned()
    })
    .await
}

/// Assert the export against `/health` and `/metrics` taken around it.
async fn assert_export_matches(d: &TestDaemon, inbox: &Inbox) {
    let before = d.health().await;
    let (_, req) = full_export(inbox, inbox.metric_count()).await;
    let after = d.health().await;
    let pts = points(&req);

    // Units and kinds as the conventions give them.
    let unit_of = |m: &str| {
        pts.iter()
            .find(|p| p.metric == m)
            .map(|p| (p.unit.clone(), p.kind))
    };
    assert_eq!(
        unit_of("system.cpu.utilization"),
        Some(("1".into(), "gauge"))
    );
    assert_eq!(
        unit_of("system.memory.usage"),
        Some(("By".into(), "updowncounter"))
    );
    assert_eq!(
        unit_of("system.filesystem.usage"),
        Some(("By".into(), "updowncounter"))
    );
    assert_eq!(unit_of("system.uptime"), Some(("s".into(), "gauge")));
    assert_eq!(
        unit_of("healthd.check.duration"),
        Some(("s".into(), "histogram"))
    );
    assert_eq!(unit_of("healthd.check.runs").map(|u| u.1), Some("counter"));

    // Check status: four series per check, exactly one at 1, matching /health wherever
    // the status did not change around the export.
    let status_in = |h: &Value, name: &str| {
        h["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["status"].as_str().map(str::to_string))
    };
    for name in ["cpu", "memory", "disk", "db", "healthd"] {
        let series: Vec<&Point> = pts
            .iter()
            .filter(|p| {
                p.metric == "healthd.check.status"
                    && p.attrs.get("healthd.check.name").map(String::as_str) == Some(name)
            })
            .collect();
        assert_eq!(series.len(), 4, "{name}: {series:?}");
        let keys: Vec<&str> = series[0].attrs.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "healthd.check.kind",
                "healthd.check.name",
                "healthd.check.status"
            ]
        );
        let current: Vec<&str> = series
            .iter()
            .filter(|p| p.value == 1.0)
            .map(|p| p.attrs["healthd.check.status"].as_str())
            .collect();
        assert_eq!(current.len(), 1, "{name}: {series:?}");
        let (b, a) = (status_in(&before, name), status_in(&after, name));
        if b == a {
            assert_eq!(Some(current[0].to_string()), a, "{name} status");
        }
    }
    assert_eq!(status_in(&after, "db").as_deref(), Some("healthy"));

    // Group status.
    let readiness: Vec<&Point> = pts
        .iter()
        .filter(|p| {
            p.metric == "healthd.group.status" && p.attrs["healthd.group.name"] == "readiness"
        })
        .collect();
    assert_eq!(readiness.len(), 4);

    // Runs: successes of the tcp check, no error.type on success.
    let db_runs: Vec<&Point> = pts
        .iter()
        .filter(|p| p.metric == "healthd.check.runs" && p.attrs["healthd.check.name"] == "db")
        .collect();
    assert!(!db_runs.is_empty());
    for p in &db_runs {
        assert_eq!(p.attrs["healthd.check.result"], "success", "{p:?}");
        assert!(!p.attrs.contains_key("error.type"));
        assert!(p.value >= 1.0);
    }

    // Duration: a histogram per check with healthd's buckets.
    let dur = pts
        .iter()
        .find(|p| p.metric == "healthd.check.duration" && p.attrs["healthd.check.name"] == "db")
        .expect("db duration");
    assert!(dur.count >= 1);
    assert_eq!(dur.bounds, LATENCY_BUCKETS.to_vec());
    assert_eq!(dur.attrs.len(), 2);

    // Memory: usage/utilization of "used" give the total the memory check reports.
    let mem_state = |m: &str, s: &str| {
        pts.iter()
            .find(|p| {
                p.metric == m && p.attrs.get("system.memory.state").map(String::as_str) == Some(s)
            })
            .map(|p| p.value)
            .unwrap_or_else(|| panic!("{m} {s}"))
    };
    let total =
        mem_state("system.memory.usage", "used") / mem_state("system.memory.utilization", "used");
    let reported = status_check_detail(&after, "memory", "total_bytes");
    assert!(
        (total - reported).abs() / reported < 1e-6,
        "memory total {total} vs /health {reported}"
    );

    // File systems: the root mount with the semconv attributes and states.
    let root: Vec<&Point> = pts
        .iter()
        .filter(|p| {
            p.metric == "system.filesystem.usage"
                && p.attrs
                    .get("system.filesystem.mountpoint")
                    .map(String::as_str)
                    == Some("/")
        })
        .collect();
    assert!(root.len() >= 2, "{root:?}");
    for p in &root {
        for k in [
            "system.device",
            "system.filesystem.type",
            "system.filesystem.state",
        ] {
            assert!(p.attrs.contains_key(k), "{k} in {p:?}");
        }
    }
    let util = pts
        .iter()
        .find(|p| p.metric == "system.filesystem.utilization")
        .unwrap();
    assert!((0.0..=1.0).contains(&util.value));

    // No unbounded attribute values: nothing that looks like an address or error text.
    for p in &pts {
        for v in p.attrs.values() {
            assert!(!v.contains("127.0.0.1") && !v.contains(' '), "{p:?}");
        }
    }

    // The same families on /metrics, under the translated names.
    let (_, text) = d.get("/metrics").await;
    for p in &pts {
        let name = prometheus_name(p);
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{} should be {name} on /metrics",
            p.metric
        );
    }
}

fn status_check_detail(h: &Value, check: &str, key: &str) -> f64 {
    h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .and_then(|c| c["details"][key].as_f64())
        .unwrap_or_else(|| panic!("{check}.details.{key} in {h}"))
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_matches_snapshot_with_resource_headers_and_logs() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::grpc(addr, inbox.clone()).await;
    let (tcp_port, tcp) = tcp_target().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "from-a-file\n").unwrap();
    let token = unique_secret("tok");
    let config = format!(
        r#"{}
[telemetry]
endpoint = "http://{addr}"
protocol = "grpc"
interval = "400ms"
timeout = "350ms"
status_change_logs = true
[telemetry.headers]
"x-literal" = "plain"
authorization = {{ env = "OTLP_TOKEN", prefix = "Bearer " }}
"x-api-key" = {{ file = "{}" }}
[telemetry.resource_attributes]
"deployment.environment.name" = "test"
"#,
        checks_config(tcp_port),
        key_file.display()
    );
    let d = TestDaemon::start_with_env(&config, &[("OTLP_TOKEN", &token)]).await;

    let (headers, req) = full_export(&inbox, 0).await;
    assert_eq!(headers.get("x-literal").map(String::as_str), Some("plain"));
    assert_eq!(
        headers.get("authorization"),
        Some(&format!("Bearer {token}"))
    );
    assert_eq!(
        headers.get("x-api-key").map(String::as_str),
        Some("from-a-file")
    );

    let res = resource_of(&req);
    assert_eq!(res["service.name"], "healthd");
    assert_eq!(res["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(res["service.instance.id"].len(), 36);
    assert!(!res["host.name"].is_empty());
    assert_eq!(res["deployment.environment.name"], "test");
    if std::fs::read_to_string("/etc/machine-id").is_ok_and(|s| !s.trim().is_empty()) {
        assert!(res.contains_key("host.id"));
    }

    assert_export_matches(&d, &inbox).await;
    d.wait_check(
        "telemetry",
        "telemetry self-check healthy",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;

    // A status change of the tcp check arrives as a log record.
    tcp.abort();
    d.wait_check("db", "db unhealthy", Duration::from_secs(20), |c| {
        is(c, "unhealthy")
    })
    .await;
    eventually_async(
        "status-change log record",
        Duration::from_secs(20),
        || async {
            ({
                let logs = inbox.logs.lock().unwrap();
                logs.iter().any(|(_, r)| {
                    r.resource_logs.iter().any(|rl| {
                        rl.scope_logs.iter().any(|sl| {
                            sl.log_records.iter().any(|l| {
                                let a = attrs(&l.attributes);
                                a.get("healthd.check.name").map(String::as_str) == Some("db")
                                    && a.get("healthd.check.status").map(String::as_str)
                                        == Some("unhealthy")
                                    && a.get("healthd.check.status.previous").map(String::as_str)
                                        == Some("healthy")
                                    && a.get("error.type").map(String::as_str) == Some("connect")
                                    && l.event_name == "healthd.check.status_change"
                            })
                        })
                    })
                })
            })
            .then_some(())
        },
    )
    .await;
    // Failed runs are counted with their reason.
    eventually_async("failed runs exported", Duration::from_secs(20), || async {
        ({
            inbox.last().is_some_and(|(_, r)| {
                points(&r).iter().any(|p| {
                    p.metric == "healthd.check.runs"
                        && p.attrs["healthd.check.name"] == "db"
                        && p.attrs["healthd.check.result"] == "failure"
                        && p.attrs.get("error.type").map(String::as_str) == Some("connect")
                })
            })
        })
        .then_some(())
    })
    .await;

    stop(d).await;
    receiver.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_export_from_env_starts_when_collector_comes_up() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (tcp_port, _tcp) = tcp_target().await;
    // Export configured only through the standard variables.
    let endpoint = format!("http://{addr}");
    let d = TestDaemon::start_with_env(
        &checks_config(tcp_port),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=ops,x-other=a%20b"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "350"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "400"),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=sre"),
        ],
    )
    .await;

    // Collector down: the self-check says so, endpoints are unaffected.
    d.wait_check(
        "telemetry",
        "telemetry degraded while the collector is down",
        Duration::from_secs(20),
        |c| is(c, "degraded"),
    )
    .await;
    let t = d.find_check("telemetry").await.unwrap();
    assert_eq!(t["reason"], "connect", "{t}");
    eventually_async(
        "ready with the collector down",
        Duration::from_secs(20),
        || async { (d.get("/readyz").await.0 == 200).then_some(()) },
    )
    .await;

    // Collector up: exports begin without restarting healthd.
    let inbox = Inbox::default();
    let receiver = Receiver::http(addr, inbox.clone()).await;
    let (headers, req) = full_export(&inbox, 0).await;
    assert_eq!(headers.get("x-tenant").map(String::as_str), Some("ops"));
    assert_eq!(headers.get("x-other").map(String::as_str), Some("a b"));
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/x-protobuf")
    );
    let res = resource_of(&req);
    assert_eq!(res["service.name"], "healthd");
    assert_eq!(res["team"], "sre");
    assert!(res.contains_key("service.instance.id"));
    assert_export_matches(&d, &inbox).await;
    d.wait_check(
        "telemetry",
        "telemetry healthy once exports succeed",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;

    stop(d).await;
    receiver.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_mid_run_does_not_affect_checks() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::grpc(addr, inbox.clone()).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"http://{addr}\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n",
        checks_config(tcp_port)
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    full_export(&inbox, 0).await;
    d.wait_check(
        "telemetry",
        "telemetry healthy",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;

    receiver.kill().await;
    d.wait_check(
        "telemetry",
        "telemetry degraded after the collector died",
        Duration::from_secs(20),
        |c| is(c, "degraded"),
    )
    .await;
    // Checks keep running and endpoints keep answering while exports fail.
    let runs_of = |c: &Value| c["last_run"].as_str().map(str::to_string);
    let first = runs_of(&d.find_check("db").await.unwrap());
    let mut seen_new_run = false;
    for _ in 0..20 {
        let (code, _) = d.get("/readyz").await;
        assert_eq!(code, 200, "readiness unaffected by the collector");
        let c = d.find_check("db").await.unwrap();
        assert_eq!(c["status"], "healthy");
        seen_new_run |= runs_of(&c) != first;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_new_run, "the tcp check kept running");
    assert_eq!(d.get("/metrics").await.0, 200);
    let exported_while_down = inbox.metric_count();

    // The collector returns: exports resume and the self-check recovers.
    let receiver = Receiver::grpc(addr, inbox.clone()).await;
    eventually_async("exports resume", Duration::from_secs(30), || async {
        (inbox.metric_count() > exported_while_down).then_some(())
    })
    .await;
    d.wait_check(
        "telemetry",
        "telemetry healthy again",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;

    // Shutdown with the collector gone again is bounded.
    receiver.kill().await;
    stop(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_metrics() {
    let (tcp_port, _tcp) = tcp_target().await;
    let d = TestDaemon::start_with_env(&checks_config(tcp_port), &[]).await;
    eventually_async("every check reported", Duration::from_secs(20), || async {
        ({
            let h = d.health().await;
            ["cpu", "memory", "disk", "db"].iter().all(|n| {
                h["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["name"] == *n && c["status"] != "unknown")
            })
        })
        .then_some(())
    })
    .await;
    let r = d
        .client
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for family in [
        "healthd_check_status",
        "healthd_group_status",
        "healthd_check_runs_total",
        "healthd_check_duration_seconds",
        "system_cpu_utilization_ratio",
        "system_cpu_load_average_1m",
        "system_uptime_seconds",
        "system_memory_usage_bytes",
        "system_memory_utilization_ratio",
        "system_filesystem_usage_bytes",
        "system_filesystem_utilization_ratio",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    let out = promtool_check_metrics(&text);
    assert!(out.0, "promtool check metrics failed:\n{}\n{text}", out.1);

    // OpenMetrics for scrapers that ask for it.
    let r = d
        .client
        .get(format!("{}/metrics", d.base))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(r.text().await.unwrap().ends_with("# EOF\n"));
    stop(d).await;
}

#[test]
fn validate_reports_telemetry_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthd.toml");
    let probes = dir.path().join("probes.d");
    std::fs::create_dir(&probes).unwrap();
    std::fs::write(
        &path,
        r#"
[telemetry]
endpoint = "collector:4317"
protocol = "thrift"
interval = "1s"
timeout = "2s"
ca_file = "/nonexistent/ca.pem"
[telemetry.headers]
authorization = { env = "HEALTHD_TEST_NO_SUCH_VAR" }
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_healthd"))
        .args(["validate", "--config"])
        .arg(&path)
        .arg("--probes-dir")
        .arg(&probes)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("5 configuration problem(s)"), "{err}");
    for key in [
        "telemetry.endpoint",
        "telemetry.protocol",
        "telemetry.timeout",
        "telemetry.ca_file",
        "telemetry.headers.\"authorization\"",
    ] {
        assert!(
            err.contains(&format!("{}: {key}: ", path.display())),
            "{key} not reported:\n{err}"
        );
    }
    // The config sets the interval, so the bad variable is not even looked at.
    assert!(!err.contains("OTEL_METRIC_EXPORT_INTERVAL"), "{err}");

    // A variable that is used and bad is named as the source.
    std::fs::write(&path, "").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_healthd"))
        .args(["validate", "--config"])
        .arg(&path)
        .arg("--probes-dir")
        .arg(&probes)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "udp://x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment (OTEL_EXPORTER_OTLP_ENDPOINT): telemetry.endpoint: "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rebuilds_the_exporter_when_the_section_changes() {
    let (addr_a, addr_b): (SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    );
    let (inbox_a, inbox_b) = (Inbox::default(), Inbox::default());
    let a = Receiver::grpc(addr_a, inbox_a.clone()).await;
    let b = Receiver::http(addr_b, inbox_b.clone()).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let section = |endpoint: String, protocol: &str, tag: &str| {
        format!(
            "{}\n[telemetry]\nendpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n[telemetry.headers]\nx-tag = \"{tag}\"\n",
            checks_config(tcp_port)
        )
    };
    let mut d =
        TestDaemon::start_with_env(&section(format!("http://{addr_a}"), "grpc", "one"), &[]).await;
    let (h, _) = full_export(&inbox_a, 0).await;
    assert_eq!(h["x-tag"], "one");

    // Same section: the exporter is kept (exports to A go on).
    d.daemon.reload().await.unwrap();
    let n = inbox_a.metric_count();
    eventually_async("exports to A continue", Duration::from_secs(20), || async {
        (inbox_a.metric_count() > n + 1).then_some(())
    })
    .await;

    // Changed section: the exporter is rebuilt for B, and A hears no more.
    let path = d.dir.dir.path().join("healthd.toml");
    std::fs::write(
        &path,
        section(format!("http://{addr_b}"), "http/protobuf", "two"),
    )
    .unwrap();
    d.daemon.reload().await.unwrap();
    let (h, _) = full_export(&inbox_b, 0).await;
    assert_eq!(h["x-tag"], "two");
    let n = inbox_a.metric_count();
    let m = inbox_b.metric_count();
    eventually_async("exports to B continue", Duration::from_secs(20), || async {
        (inbox_b.metric_count() > m + 2).then_some(())
    })
    .await;
    assert_eq!(inbox_a.metric_count(), n, "the old exporter stopped");

    // Section removed: export stops.
    std::fs::write(&path, checks_config(tcp_port)).unwrap();
    d.daemon.reload().await.unwrap();
    let m = inbox_b.metric_count();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(inbox_b.metric_count() <= m + 1, "export off after reload");
    assert_eq!(d.check("telemetry").await["status"], "healthy");

    stop(d).await;
    a.kill().await;
    b.kill().await;
}

#[test]
fn otlp_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let sources = Sources {
        config: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/healthd-otlp.toml").into()),
        probes_dir: Some(dir.path().to_path_buf()),
        env: Some(HashMap::new()),
    };
    let cfg = config::load(&sources).expect("examples/healthd-otlp.toml is valid");
    let s = config::telemetry::resolve(&cfg.telemetry, &HashMap::new())
        .unwrap()
        .expect("export on");
    assert_eq!(s.metrics_endpoint, "http://127.0.0.1:4317");
    assert_eq!(s.headers["x-scope-orgid"], "platform");
    assert!(s.status_change_logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_or_slow_collector_degrades_only_the_telemetry_self_check() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let inbox = Inbox::default();
    *inbox.mode.lock().unwrap() = Mode::Reject;
    let receiver = Receiver::grpc(addr, inbox.clone()).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"http://{addr}\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n",
        checks_config(tcp_port)
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    eventually_async("ready", Duration::from_secs(20), || async {
        (d.get("/readyz").await.0 == 200).then_some(())
    })
    .await;

    d.wait_check(
        "telemetry",
        "telemetry degraded (auth) while the collector rejects",
        Duration::from_secs(20),
        |c| reason(c) == "auth",
    )
    .await;
    assert_eq!(d.check("telemetry").await["status"], "degraded");
    assert_eq!(d.get("/readyz").await.0, 200);

    // A collector slower than the timeout: exports are cut off at the timeout.
    *inbox.mode.lock().unwrap() = Mode::Slow(Duration::from_secs(3));
    d.wait_check(
        "telemetry",
        "telemetry degraded (timeout) while the collector is slow",
        Duration::from_secs(20),
        |c| reason(c) == "timeout",
    )
    .await;
    let first = d.find_check("db").await.unwrap()["last_run"].clone();
    eventually_async(
        "the tcp check keeps running",
        Duration::from_secs(10),
        || async {
            ({
                let c = d.find_check("db").await.unwrap();
                assert_eq!(c["status"], "healthy");
                assert_eq!(d.get("/livez").await.0, 200);
                c["last_run"] != first
            })
            .then_some(())
        },
    )
    .await;

    *inbox.mode.lock().unwrap() = Mode::Accept;
    full_export(&inbox, 0).await;
    d.wait_check(
        "telemetry",
        "telemetry healthy once the collector accepts",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;
    stop(d).await;
    receiver.kill().await;
}

/// A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, made with
/// the openssl command-line tool.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"
set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -subj /CN=healthd-test-ca -days 2 -out ca.pem 2>/dev/null
leaf() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=IP:127.0.0.1\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
leaf server serverAuth
leaf client clientAuth
"#;
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .current_dir(dir.path())
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_mutual_tls_with_configured_ca_and_client_certificate() {
    let pki = Pki::new();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::grpc_mtls(addr, inbox.clone(), &pki).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"https://{addr}\"\ninterval = \"400ms\"\ntimeout = \"350ms\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        checks_config(tcp_port),
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    let (_, req) = full_export(&inbox, 0).await;
    assert_eq!(resource_of(&req)["service.name"], "healthd");
    d.wait_check(
        "telemetry",
        "telemetry healthy over TLS",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;
    stop(d).await;

    // Without the client certificate the collector refuses the handshake.
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"https://{addr}\"\ninterval = \"400ms\"\ntimeout = \"350ms\"\nca_file = \"{}\"\n",
        checks_config(tcp_port),
        pki.path("ca.pem"),
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    d.wait_check(
        "telemetry",
        "telemetry degraded without a client certificate",
        Duration::from_secs(20),
        |c| is(c, "degraded"),
    )
    .await;
    stop(d).await;
    receiver.kill().await;
}

/// A TLS listener for axum: handshakes that fail (no client certificate) are dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_mutual_tls_with_configured_ca_and_client_certificate() {
    let pki = Pki::new();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::https_mtls(addr, inbox.clone(), &pki).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"https://{addr}/v1/metrics\"\nprotocol = \"http/protobuf\"\ninterval = \"400ms\"\ntimeout = \"350ms\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        checks_config(tcp_port),
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    let (_, req) = full_export(&inbox, 0).await;
    assert_eq!(resource_of(&req)["service.name"], "healthd");
    d.wait_check(
        "telemetry",
        "telemetry healthy over HTTPS",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;
    stop(d).await;
    receiver.kill().await;
}

#[test]
fn healthd_env_overrides_reach_the_telemetry_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("healthd.toml");
    std::fs::write(&path, "[telemetry]\nprotocol = \"grpc\"\n").unwrap();
    let probes = dir.path().join("probes.d");
    std::fs::create_dir(&probes).unwrap();
    let sources = |env: &[(&str, &str)]| Sources {
        config: Some(path.clone()),
        probes_dir: Some(probes.clone()),
        env: Some(
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    };
    let env = [("HEALTHD_TELEMETRY__ENDPOINT", "http://127.0.0.1:4317")];
    let cfg = config::load(&sources(&env)).unwrap();
    assert_eq!(
        cfg.telemetry.endpoint.as_deref(),
        Some("http://127.0.0.1:4317")
    );

    let errs = config::load(&sources(&[("HEALTHD_TELEMETRY__ENDPOINT", "nope")])).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].file, "environment (HEALTHD_TELEMETRY__ENDPOINT)");
    assert_eq!(errs[0].key, "telemetry.endpoint");
}
