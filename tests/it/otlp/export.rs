//! What an export holds, over gRPC and HTTP/protobuf: resource, headers, every metric
//! matching `/health` and `/metrics`, and status-change log records.

use std::net::SocketAddr;
use std::time::Duration;

use healthd::health::LATENCY_BUCKETS;
use serde_json::Value;

use super::decode::{Point, attrs, points, prometheus_name, resource_of};
use super::receiver::{Inbox, Receiver};
use super::{checks_config, full_export, stop, tcp_target};
use crate::support::daemon::{TestDaemon, is};
use crate::support::{eventually_async, free_port, unique_secret};

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
        // The same status and the same `since` before and after: it did not change in
        // between (a busy CPU can flip the cpu check there and back).
        let since = |h: &Value| {
            h["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .map(|c| c["since"].clone())
        };
        let (b, a) = (status_in(&before, name), status_in(&after, name));
        if b == a && since(&before) == since(&after) {
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
