//! `[server]`: the HTTP listener, who may see details (`[server.auth]`), TLS
//! (`[server.tls]`) and the request limits (`[server.limits]`). Plain data; each section
//! validates itself here, and the server builds its runtime objects from it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::model::de_duration;

/// Default bound on probes running at once, across all checks.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:9750`; `healthd run --listen` overrides it.
    #[serde(deserialize_with = "de_listen")]
    pub listen: SocketAddr,
    /// After SIGTERM, how long `/readyz` answers 503 while still serving, so load balancers
    /// and Kubernetes stop sending traffic before healthd stops. Default `5s`.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_delay: Duration,
    /// The snapshot loop is considered stalled (liveness fails, watchdog pings stop) when
    /// the snapshot is older than this. Default `10s`.
    #[serde(deserialize_with = "de_duration")]
    pub stall_after: Duration,
    /// Most probes running at once over all checks (the bulkhead); changing it needs a
    /// restart. Default 512.
    pub max_in_flight: usize,
    /// `[server.auth]`: who may see details. Absent: everything is public.
    pub auth: Option<AuthConfig>,
    /// `[server.tls]`: serve HTTPS with this certificate and key. Absent: plain HTTP.
    pub tls: Option<TlsConfig>,
    /// `[server.limits]`: request limits of the HTTP edge.
    pub limits: LimitsConfig,
    /// `[server.grpc]`: serve the verdicts over `grpc.health.v1`. Absent: off.
    pub grpc: Option<GrpcServerConfig>,
    /// `[server.status_page]`: the status page at `/`.
    pub status_page: StatusPageConfig,
}

/// `[server.status_page]`. Read when the listener starts; a change needs a restart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusPageConfig {
    /// Serve the status page, its JSON, login and badges. Default true.
    pub enabled: bool,
}

impl Default for StatusPageConfig {
    fn default() -> Self {
        StatusPageConfig { enabled: true }
    }
}

/// `[server.grpc]`: a plaintext gRPC listener serving `grpc.health.v1.Health` (kubelet's
/// `grpc:` probes cannot do TLS or tokens, so it serves verdicts only, never details).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcServerConfig {
    /// Address to listen on, e.g. `"0.0.0.0:9751"`. Changing it needs a restart.
    #[serde(deserialize_with = "de_listen")]
    pub listen: SocketAddr,
    /// `Watch` streams open at once; more are refused with `RESOURCE_EXHAUSTED`.
    #[serde(default = "default_max_watchers")]
    pub max_watchers: usize,
}

fn default_max_watchers() -> usize {
    256
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9750)),
            shutdown_delay: Duration::from_secs(5),
            stall_after: Duration::from_secs(10),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            auth: None,
            tls: None,
            limits: Default::default(),
            grpc: None,
            status_page: StatusPageConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Semantic problems of `[server]` as (key, reason).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.max_in_flight == 0 {
            problems.push(("server.max_in_flight".into(), "must be at least 1".into()));
        }
        if let Some(a) = &self.auth {
            for (k, r) in a.validate() {
                problems.push((format!("server.auth.{k}"), r));
            }
        }
        if let Some(t) = &self.tls {
            for (k, r) in t.validate() {
                problems.push((format!("server.tls.{k}"), r));
            }
        }
        for (k, r) in self.limits.validate() {
            problems.push((format!("server.limits.{k}"), r));
        }
        if let Some(g) = &self.grpc {
            if g.max_watchers == 0 {
                problems.push((
                    "server.grpc.max_watchers".into(),
                    "must be at least 1".into(),
                ));
            }
            if g.listen == self.listen {
                problems.push((
                    "server.grpc.listen".into(),
                    format!("{} is server.listen already (use another port)", g.listen),
                ));
            }
        }
        problems
    }
}

/// Serde helper for `server.listen`: an IP address and port, with a message that says so.
fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid address \"{text}\" (use IP:port, e.g. \"127.0.0.1:9750\" or \"[::1]:9750\")"
        ))
    })
}

/// `[server.auth]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// File holding the bearer token (surrounding whitespace is ignored). Callers send
    /// `Authorization: Bearer <token>`.
    pub token_file: Option<PathBuf>,
    /// Source networks that are authorised without a token. Default: loopback
    /// (`127.0.0.0/8`, `::1/128`); `[]` requires the token from everyone.
    #[serde(default = "loopback")]
    pub trusted_networks: Vec<String>,
}

fn loopback() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}

impl AuthConfig {
    /// Problems as (key under `server.auth`, reason).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (i, n) in self.trusted_networks.iter().enumerate() {
            if let Err(e) = parse_net(n) {
                problems.push((format!("trusted_networks[{i}]"), e));
            }
        }
        if let Some(path) = &self.token_file {
            match read_token(path) {
                Ok(_) => crate::redact::warn_if_world_readable(path, "server.auth.token_file"),
                Err(e) => problems.push(("token_file".into(), e)),
            }
        }
        problems
    }
}

pub(crate) fn parse_net(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid network \"{t}\" (use CIDR such as 10.0.0.0/8 or an address)"))
}

pub(crate) fn read_token(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    // A bearer token is one line; a second line could never match any request.
    if token.contains(['\n', '\r']) {
        return Err(format!(
            "{} holds more than one line (put one token on one line)",
            path.display()
        ));
    }
    Ok(token.as_bytes().to_vec())
}

/// `[server.tls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl TlsConfig {
    /// Problems as (key under `server.tls`, reason).
    pub fn validate(&self) -> Vec<(String, String)> {
        match self.load() {
            Ok(_) => {
                crate::redact::warn_if_world_readable(&self.key_file, "server.tls.key_file");
                Vec::new()
            }
            Err((key, reason)) => vec![(key.into(), reason)],
        }
    }

    /// Read the certificate and key into a rustls server config; an error names the key
    /// (`cert_file` or `key_file`) and the reason.
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, (&'static str, String)> {
        let read = |key: &'static str, p: &Path| {
            std::fs::read(p).map_err(|e| (key, format!("cannot read {}: {e}", p.display())))
        };
        let cert_pem = read("cert_file", &self.cert_file)?;
        let key_pem = read("key_file", &self.key_file)?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| {
                (
                    "cert_file",
                    format!("bad PEM in {}: {e}", self.cert_file.display()),
                )
            })?;
        if certs.is_empty() {
            return Err((
                "cert_file",
                format!("no certificate in {}", self.cert_file.display()),
            ));
        }
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|e| {
                (
                    "key_file",
                    format!("bad PEM in {}: {e}", self.key_file.display()),
                )
            })?
            .ok_or_else(|| {
                (
                    "key_file",
                    format!("no private key in {}", self.key_file.display()),
                )
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ("cert_file", format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| ("key_file", format!("certificate and key do not fit: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// `[server.limits]`. Read when the listener starts; changing them needs a restart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Bound on handling one request. Default `5s`.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// A client must send its request head within this. Default `5s`.
    #[serde(deserialize_with = "de_duration")]
    pub header_read_timeout: Duration,
    /// Open connections at most; further ones are closed at once. Default 1024.
    pub max_connections: usize,
    /// Requests to `/livez`, `/readyz`, `/startupz` handled at once; more get 503 at once.
    /// Default 256.
    pub probe_concurrency: usize,
    /// Requests to `/health` and `/metrics` handled at once (a separate budget, so a flood
    /// there cannot starve the probe endpoints); more get 503 at once. Default 16.
    pub detail_concurrency: usize,
    /// Total size of the request headers. Default 8192 bytes.
    pub max_header_bytes: usize,
    /// Length of the request target (path and query). Default 2048 bytes.
    pub max_uri_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            request_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            max_connections: 1024,
            probe_concurrency: 256,
            detail_concurrency: 16,
            max_header_bytes: 8192,
            max_uri_bytes: 2048,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (key, v) in [
            ("max_connections", self.max_connections),
            ("probe_concurrency", self.probe_concurrency),
            ("detail_concurrency", self.detail_concurrency),
        ] {
            if v == 0 {
                problems.push((key.to_string(), "must be at least 1".to_string()));
            }
        }
        if self.max_header_bytes < 1024 {
            problems.push(("max_header_bytes".into(), "must be at least 1024".into()));
        }
        if self.max_uri_bytes < 64 {
            problems.push(("max_uri_bytes".into(), "must be at least 64".into()));
        }
        problems
    }
}
