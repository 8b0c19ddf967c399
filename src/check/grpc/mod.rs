//! `kind = "grpc"`: `grpc.health.v1.Health/Check` over one kept HTTP/2 connection (plaintext
//! or TLS), as kubelet's gRPC probe and `grpc_health_probe` ask it. The connection is opened
//! here (TCP, then TLS with the shared client configs) and handed to tonic, so reconnecting
//! and backoff stay with the kept-connection driver in `check::session`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;

use metadata::Metadata;
use probe::Grpc;

use super::Kind;
use super::session::{Passwords, Session};
use super::tls_client::TrustKeys;

mod metadata;
mod probe;

/// Settings of a gRPC health check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Host name or IP address of the server.
    pub host: String,
    /// Port, 1 to 65535.
    #[serde(deserialize_with = "crate::model::de_port")]
    pub port: u16,
    /// The service asked about; `""` (the default) asks about the whole server.
    #[serde(default)]
    pub service: String,
    /// Connect with TLS (HTTP/2 over TLS, ALPN `h2`). Default false: plaintext HTTP/2.
    #[serde(default)]
    pub tls: bool,
    /// PEM CA certificates trusted on top of the system roots (TLS only).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for servers that ask for one (TLS only).
    pub client_cert: Option<PathBuf>,
    /// The client certificate's PEM private key.
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate. For testing only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The name the certificate must hold (and SNI). Default: the host of `authority`, else
    /// `host`.
    pub server_name: Option<String>,
    /// The requests' `:authority` (virtual host). Default `host:port`.
    pub authority: Option<String>,
    /// Request metadata (headers) with the value written here: not for secrets.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Request metadata whose value is the content of a file (one trailing newline
    /// ignored), read at every connect: for tokens.
    #[serde(default)]
    pub metadata_file: BTreeMap<String, PathBuf>,
    /// Request metadata whose value is an environment variable's.
    #[serde(default)]
    pub metadata_env: BTreeMap<String, String>,
}

impl GrpcConfig {
    fn authority(&self) -> String {
        self.authority.clone().unwrap_or_else(|| {
            if self.host.contains(':') {
                format!("[{}]:{}", self.host, self.port)
            } else {
                format!("{}:{}", self.host, self.port)
            }
        })
    }

    /// `scheme://authority`, the origin tonic puts on every request.
    fn origin(&self) -> Result<tonic::codegen::http::Uri, String> {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
            .parse()
            .map_err(|e| format!("\"{}\" is not a valid authority: {e}", self.authority()))
    }

    fn server_name(&self) -> Result<ServerName<'static>, String> {
        let name = match (&self.server_name, &self.authority) {
            (Some(n), _) => n.clone(),
            (None, Some(_)) => self.origin()?.host().unwrap_or(&self.host).to_string(),
            (None, None) => self.host.clone(),
        };
        let bare = name.trim_start_matches('[').trim_end_matches(']').to_string();
        ServerName::try_from(bare).map_err(|e| format!("\"{name}\" is not a valid TLS name: {e}"))
    }

    fn trust(&self) -> TrustKeys<'_> {
        TrustKeys {
            ca_file: self.ca_file.as_deref(),
            insecure_skip_verify: self.insecure_skip_verify,
            client_cert: self.client_cert.as_deref(),
            client_key: self.client_key.as_deref(),
        }
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            inline: self.metadata.clone(),
            file: self.metadata_file.clone(),
            env: self.metadata_env.clone(),
        }
    }
}

impl Kind for GrpcConfig {
    type Probe = Session<Grpc>;

    fn build(&self, timeout: Duration) -> Result<Session<Grpc>, String> {
        let tls = match self.tls {
            true => Some((
                Arc::new(self.trust().client_config(&[b"h2"])?),
                self.server_name()?,
            )),
            false => None,
        };
        let grpc = Grpc {
            host: self.host.clone(),
            port: self.port,
            shown: format!(
                "{}://{}:{}",
                if self.tls { "grpcs" } else { "grpc" },
                self.host,
                self.port
            ),
            origin: self.origin()?,
            service: self.service.clone(),
            tls,
            metadata: self.metadata(),
            timeout,
        };
        Ok(Session::new(grpc, Passwords::default(), None, timeout))
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        if self.host.trim().is_empty() {
            problems.push(("host".into(), "must not be empty".into()));
        }
        if let Err(e) = self.origin() {
            problems.push(("authority".into(), e));
        }
        self.metadata().validate(problems);
        if self.tls {
            if let Err(e) = self.server_name() {
                problems.push(("server_name".into(), e));
            }
            self.trust().validate(problems);
            return;
        }
        for (key, set) in [
            ("ca_file", self.ca_file.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
            ("insecure_skip_verify", self.insecure_skip_verify),
            ("server_name", self.server_name.is_some()),
        ] {
            if set {
                problems.push((key.into(), "has no effect without tls = true".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> GrpcConfig {
        toml::from_str(&format!("host = \"127.0.0.1\"\nport = 50051\n{text}")).unwrap()
    }

    fn problems(c: &GrpcConfig) -> Vec<(String, String)> {
        let mut p = Vec::new();
        c.validate(Duration::from_secs(1), &mut p);
        p
    }

    #[test]
    fn authority_and_server_name_defaults() {
        let c = cfg("");
        assert_eq!(c.origin().unwrap().to_string(), "http://127.0.0.1:50051/");
        assert!(problems(&c).is_empty());
        let c = cfg("tls = true\nauthority = \"api.example.com\"");
        assert_eq!(c.origin().unwrap().to_string(), "https://api.example.com/");
        assert_eq!(
            c.server_name().unwrap(),
            ServerName::try_from("api.example.com").unwrap()
        );
        let c: GrpcConfig = toml::from_str("host = \"::1\"\nport = 1").unwrap();
        assert_eq!(c.authority(), "[::1]:1");
        assert_eq!(
            c.server_name().unwrap(),
            ServerName::try_from("::1").unwrap()
        );
    }

    #[test]
    fn tls_keys_need_tls() {
        let p = problems(&cfg("insecure_skip_verify = true"));
        assert_eq!(p[0].0, "insecure_skip_verify", "{p:?}");
        let p = problems(&cfg("tls = true\nclient_cert = \"/nonexistent.pem\""));
        assert_eq!(p[0].0, "client_key", "{p:?}");
        let p = problems(&cfg("authority = \"bad authority\""));
        assert_eq!(p[0].0, "authority", "{p:?}");
    }
}
