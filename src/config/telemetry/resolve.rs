//! Resolving `[telemetry]` against the standard `OTEL_EXPORTER_OTLP_*` environment variables,
//! which apply only where the config is silent, into the [`ExportSettings`] the exporter uses.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::*;

/// A value and where it came from (`None`: the config file).
struct Sourced<T> {
    value: T,
    var: Option<String>,
}

fn from_env<'a>(env: &'a HashMap<String, String>, vars: &[&str]) -> Option<(&'a str, String)> {
    vars.iter().find_map(|v| {
        env.get(*v)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| (s, v.to_string()))
    })
}

fn pick<T>(
    configured: Option<T>,
    env: &HashMap<String, String>,
    vars: &[&str],
    parse: impl Fn(&str) -> Result<T, String>,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<Sourced<T>> {
    if let Some(value) = configured {
        return Some(Sourced { value, var: None });
    }
    let (raw, var) = from_env(env, vars)?;
    match parse(raw) {
        Ok(value) => Some(Sourced {
            value,
            var: Some(var),
        }),
        Err(reason) => {
            problems.push(Problem {
                key: key.into(),
                var: Some(var),
                reason,
            });
            None
        }
    }
}

fn parse_millis(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("\"{s}\" is not a number of milliseconds"))
}

/// `k1=v1,k2=v2` with percent-encoded values (the W3C baggage-like form the OTel spec uses).
fn parse_pairs(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("\"{part}\" is not key=value"));
        };
        let decode = |x: &str| {
            form_urlencoded::parse(format!("x={}", x.trim().replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        out.insert(decode(k), decode(v));
    }
    Ok(out)
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Err("http/json is not supported (use grpc or http/protobuf)".into()),
        other => Err(format!(
            "unknown protocol \"{other}\" (expected grpc or http/protobuf)"
        )),
    }
}

fn check_url(s: &str) -> Result<String, String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("\"{s}\" is not a URL (expected http://host:port or https://…)"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "unsupported scheme \"{scheme}\" (expected http or https)"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("\"{s}\" has no host"));
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !port.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("\"{s}\" has an invalid port"));
    }
    Ok(s.to_string())
}

fn check_readable(path: &Path) -> Result<(), String> {
    std::fs::read(path)
        .map(|_| ())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn check_pem(path: &Path, what: &str) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !String::from_utf8_lossy(&data).contains("-----BEGIN ") {
        return Err(format!("{} holds no PEM {what}", path.display()));
    }
    Ok(())
}

/// The effective settings, `Ok(None)` when export is off, or every problem found.
///
/// `env` is the process environment (tests pass their own map).
pub fn resolve(
    cfg: &TelemetryConfig,
    env: &HashMap<String, String>,
) -> Result<Option<ExportSettings>, Vec<Problem>> {
    let mut problems = Vec::new();
    let key = |k: &str| format!("telemetry.{k}");

    let endpoint = pick(
        cfg.endpoint.clone(),
        env,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ],
        check_url,
        &key("endpoint"),
        &mut problems,
    );
    if let Some(Sourced { value, var: None }) = &endpoint
        && let Err(reason) = check_url(value)
    {
        problems.push(Problem {
            key: key("endpoint"),
            var: None,
            reason,
        });
    }
    let protocol = match &cfg.protocol {
        Some(p) => match parse_protocol(p) {
            Ok(p) => Some(p),
            Err(reason) => {
                problems.push(Problem {
                    key: key("protocol"),
                    var: None,
                    reason,
                });
                None
            }
        },
        None => pick(
            None,
            env,
            &[
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
            parse_protocol,
            &key("protocol"),
            &mut problems,
        )
        .map(|s| s.value),
    }
    .unwrap_or(Protocol::Grpc);

    let interval = pick(
        cfg.interval,
        env,
        &["OTEL_METRIC_EXPORT_INTERVAL"],
        parse_millis,
        &key("interval"),
        &mut problems,
    );
    let timeout = pick(
        cfg.timeout,
        env,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ],
        parse_millis,
        &key("timeout"),
        &mut problems,
    );
    let interval_v = interval.as_ref().map_or(DEFAULT_INTERVAL, |s| s.value);
    if interval_v.is_zero() {
        problems.push(Problem {
            key: key("interval"),
            var: interval.as_ref().and_then(|s| s.var.clone()),
            reason: "must be above zero".into(),
        });
    }
    let timeout_v = match &timeout {
        Some(t) => {
            if t.value.is_zero() {
                problems.push(Problem {
                    key: key("timeout"),
                    var: t.var.clone(),
                    reason: "must be above zero".into(),
                });
            } else if t.value >= interval_v {
                problems.push(Problem {
                    key: key("timeout"),
                    var: t.var.clone(),
                    reason: format!(
                        "must be below the export interval ({})",
                        humantime::format_duration(interval_v)
                    ),
                });
            }
            t.value
        }
        None => DEFAULT_TIMEOUT.min(interval_v),
    };

    // The environment's headers are always sent (the OTLP library adds them from the process
    // environment too); the config's are merged over them.
    let mut headers = BTreeMap::new();
    if let Some(s) = pick(
        None,
        env,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ],
        parse_pairs,
        &key("headers"),
        &mut problems,
    ) {
        for (name, v) in s.value {
            if let Err(reason) = check_header_name(&name) {
                problems.push(Problem {
                    key: key("headers"),
                    var: s.var.clone(),
                    reason,
                });
            }
            headers.insert(name.to_ascii_lowercase(), v);
        }
    }
    for (name, source) in cfg.headers.iter().flatten() {
        let k = format!("telemetry.headers.\"{name}\"");
        if let Err(reason) = check_header_name(name) {
            problems.push(Problem {
                key: k.clone(),
                var: None,
                reason,
            });
        }
        match header_value(source, env) {
            Ok(v) => {
                headers.insert(name.to_ascii_lowercase(), v);
            }
            Err(reason) => problems.push(Problem {
                key: k,
                var: None,
                reason,
            }),
        }
    }

    let file_opt = |c: &Option<PathBuf>, vars: &[&str]| -> Option<Sourced<PathBuf>> {
        match c {
            Some(p) => Some(Sourced {
                value: p.clone(),
                var: None,
            }),
            None => from_env(env, vars).map(|(v, var)| Sourced {
                value: PathBuf::from(v),
                var: Some(var),
            }),
        }
    };
    let ca = file_opt(
        &cfg.ca_file,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ],
    );
    let cert = file_opt(
        &cfg.client_cert,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        ],
    );
    let client_key = file_opt(
        &cfg.client_key,
        &[
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ],
    );
    for (name, f, what) in [
        ("ca_file", &ca, "certificate"),
        ("client_cert", &cert, "certificate"),
        ("client_key", &client_key, "private key"),
    ] {
        if let Some(s) = f
            && let Err(reason) = check_pem(&s.value, what)
        {
            problems.push(Problem {
                key: key(name),
                var: s.var.clone(),
                reason,
            });
        }
    }
    if cert.is_some() != client_key.is_some() {
        problems.push(Problem {
            key: key(if cert.is_some() {
                "client_key"
            } else {
                "client_cert"
            }),
            var: None,
            reason: "client_cert and client_key go together".into(),
        });
    }

    let mut resource = BTreeMap::new();
    if let Some(s) = pick(
        None,
        env,
        &["OTEL_RESOURCE_ATTRIBUTES"],
        parse_pairs,
        &key("resource_attributes"),
        &mut problems,
    ) {
        resource.extend(s.value);
    }
    if let Some((name, _)) = from_env(env, &["OTEL_SERVICE_NAME"]) {
        resource.insert("service.name".into(), name.to_string());
    }
    for (k, v) in &cfg.resource_attributes {
        if k.is_empty() {
            problems.push(Problem {
                key: key("resource_attributes"),
                var: None,
                reason: "attribute names must not be empty".into(),
            });
        }
        resource.insert(k.clone(), v.clone());
    }

    if let Some(endpoint) = &endpoint
        && let Some(p) = [&ca, &cert]
            .into_iter()
            .flatten()
            .next()
            .filter(|_| endpoint.value.starts_with("http://"))
    {
        problems.push(Problem {
            key: key("endpoint"),
            var: endpoint.var.clone(),
            reason: format!(
                "TLS files are set ({}) but the endpoint is plain http://; use https://",
                p.value.display()
            ),
        });
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    let disabled = from_env(env, &["OTEL_SDK_DISABLED"]).is_some_and(|(v, _)| v == "true");
    let Some(endpoint) = endpoint.filter(|_| !disabled) else {
        return Ok(None);
    };
    let (metrics_endpoint, logs_endpoint) = match protocol {
        Protocol::Grpc => (endpoint.value.clone(), endpoint.value.clone()),
        Protocol::HttpProtobuf => http_endpoints(&endpoint.value, endpoint.var.as_deref()),
    };
    Ok(Some(ExportSettings {
        protocol,
        metrics_endpoint,
        logs_endpoint,
        headers,
        timeout: timeout_v,
        interval: interval_v,
        ca_file: ca.map(|s| s.value),
        client_cert: cert.map(|s| s.value),
        client_key: client_key.map(|s| s.value),
        resource_attributes: resource,
        status_change_logs: cfg.status_change_logs,
    }))
}

/// The signal URLs for HTTP: a signal-specific variable is used verbatim; a base URL gets
/// `/v1/metrics` and `/v1/logs`; a config URL already ending in `/v1/metrics` is kept.
fn http_endpoints(endpoint: &str, var: Option<&str>) -> (String, String) {
    let base = endpoint.trim_end_matches('/');
    if var == Some("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        let logs = base
            .strip_suffix("/v1/metrics")
            .map(|b| format!("{b}/v1/logs"))
            .unwrap_or_else(|| base.to_string());
        return (endpoint.to_string(), logs);
    }
    match base.strip_suffix("/v1/metrics") {
        Some(b) => (base.to_string(), format!("{b}/v1/logs")),
        None => (format!("{base}/v1/metrics"), format!("{base}/v1/logs")),
    }
}

/// Whether a header name is one healthd sends (also for notification receivers).
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("\"{name}\" is not a valid header name"))
    }
}

/// A header's value now (also for notification receivers); errors never hold the value.
pub(crate) fn header_value(
    source: &HeaderSource,
    env: &HashMap<String, String>,
) -> Result<String, String> {
    let value = match source {
        HeaderSource::Literal(v) => v.clone(),
        HeaderSource::From(HeaderFrom {
            env: Some(_),
            file: Some(_),
            ..
        }) => {
            return Err("set either env or file, not both".into());
        }
        HeaderSource::From(HeaderFrom {
            env: Some(var),
            prefix,
            ..
        }) => match env.get(var) {
            Some(v) if !v.is_empty() => format!("{prefix}{v}"),
            _ => return Err(format!("environment variable {var} is not set")),
        },
        HeaderSource::From(HeaderFrom {
            file: Some(path),
            prefix,
            ..
        }) => {
            check_readable(path)?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            format!("{prefix}{}", text.trim())
        }
        HeaderSource::From(_) => return Err("set env = \"VAR\" or file = \"/path\"".into()),
    };
    if value.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("the value holds control characters (a newline in the file?)".into());
    }
    Ok(value)
}
