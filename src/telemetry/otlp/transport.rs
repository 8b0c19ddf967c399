//! How exports travel: the gRPC or HTTP/protobuf exporter of each signal, with TLS,
//! client certificates and headers.

use opentelemetry_otlp::{
    LogExporter, MetricExporter, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig,
};

use crate::config::telemetry::{ExportSettings, Protocol};

/// The endpoint without credentials in its authority, for logs and messages.
pub(super) fn redact(url: &str) -> String {
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

pub(super) fn metric_exporter(s: &ExportSettings) -> Result<MetricExporter, String> {
    build_exporter!(MetricExporter, s, &s.metrics_endpoint)
        .map_err(|e| format!("metrics exporter: {e}"))
}

pub(super) fn log_exporter(s: &ExportSettings) -> Result<LogExporter, String> {
    build_exporter!(LogExporter, s, &s.logs_endpoint).map_err(|e| format!("logs exporter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_credentials() {
        assert_eq!(
            redact("https://user:pw@collector:4318/v1/metrics"),
            "https://collector:4318/v1/metrics"
        );
        assert_eq!(redact("http://c:4317"), "http://c:4317");
    }
}
