//! Tests of the `[telemetry]` resolution.

use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn off_without_endpoint() {
    assert_eq!(resolve(&TelemetryConfig::default(), &env(&[])), Ok(None));
}

#[test]
fn env_applies_where_config_is_silent() {
    let e = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=x%3Dy"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "2000"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=ops,service.name=x"),
        ("OTEL_SERVICE_NAME", "hd"),
    ]);
    let s = resolve(&TelemetryConfig::default(), &e).unwrap().unwrap();
    assert_eq!(s.protocol, Protocol::HttpProtobuf);
    assert_eq!(s.metrics_endpoint, "http://c:4318/v1/metrics");
    assert_eq!(s.logs_endpoint, "http://c:4318/v1/logs");
    assert_eq!(s.headers["b"], "x=y");
    assert_eq!(s.interval, Duration::from_secs(2));
    assert_eq!(s.timeout, Duration::from_secs(2));
    assert_eq!(s.resource_attributes["service.name"], "hd");
    assert_eq!(s.resource_attributes["team"], "ops");

    let cfg = TelemetryConfig {
        endpoint: Some("http://mine:4317".into()),
        protocol: Some("grpc".into()),
        ..Default::default()
    };
    let s = resolve(&cfg, &e).unwrap().unwrap();
    assert_eq!(
        (s.protocol, s.metrics_endpoint.as_str()),
        (Protocol::Grpc, "http://mine:4317")
    );
}

#[test]
fn problems_name_key_and_variable() {
    let cfg = TelemetryConfig {
        endpoint: Some("collector:4317".into()),
        protocol: Some("http/json".into()),
        interval: Some(Duration::from_secs(1)),
        timeout: Some(Duration::from_secs(1)),
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..Default::default()
    };
    let errs = resolve(&cfg, &env(&[])).unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "telemetry.endpoint",
        "telemetry.protocol",
        "telemetry.timeout",
        "telemetry.ca_file",
    ] {
        assert!(keys.contains(&k), "{k} missing in {errs:?}");
    }
    let errs = resolve(
        &TelemetryConfig::default(),
        &env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ]),
    )
    .unwrap_err();
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].var.as_deref(), Some("OTEL_EXPORTER_OTLP_ENDPOINT"));
}

#[test]
fn header_sources() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("key");
    std::fs::write(&f, "s3cret\n").unwrap();
    let mut headers = BTreeMap::new();
    headers.insert("X-Lit".to_string(), HeaderSource::Literal("v".into()));
    headers.insert(
        "authorization".to_string(),
        HeaderSource::From(HeaderFrom {
            env: Some("TOK".into()),
            file: None,
            prefix: "Bearer ".into(),
        }),
    );
    headers.insert(
        "x-key".to_string(),
        HeaderSource::From(HeaderFrom {
            env: None,
            file: Some(f),
            prefix: String::new(),
        }),
    );
    let cfg = TelemetryConfig {
        endpoint: Some("http://c:4317".into()),
        headers: Some(headers.clone()),
        ..Default::default()
    };
    let s = resolve(&cfg, &env(&[("TOK", "abc")])).unwrap().unwrap();
    assert_eq!(s.headers["x-lit"], "v");
    assert_eq!(s.headers["authorization"], "Bearer abc");
    assert_eq!(s.headers["x-key"], "s3cret");
    let errs = resolve(&cfg, &env(&[])).unwrap_err();
    assert_eq!(errs[0].key, "telemetry.headers.\"authorization\"");
}
