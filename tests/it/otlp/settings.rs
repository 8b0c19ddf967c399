//! The `[telemetry]` section: `healthd validate` problems, `HEALTHD_*` overrides, the example
//! config, and a reload rebuilding the exporter only when the section changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use healthd::config::{self, Sources};

use super::receiver::{Inbox, Receiver};
use super::{checks_config, full_export, stop, tcp_target};
use crate::support::daemon::TestDaemon;
use crate::support::{eventually_async, free_port};

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
