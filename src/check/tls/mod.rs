//! `kind = "tls"`: connect, read the certificate chain the server presents — also when it
//! has expired or does not verify — and judge its dates and whether it verifies for the
//! name. STARTTLS (SMTP, PostgreSQL, …) is not supported: the TLS handshake starts as soon
//! as the TCP connection is open.

use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;

use probe::TlsProbe;

use super::Kind;
use super::tls_client::{TrustKeys, provider, roots, webpki};
use crate::model::de_duration;

mod cert;
mod judge;
mod probe;

/// Settings of a TLS certificate check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Host name or IP address to connect to.
    pub host: String,
    /// Port. Default 443.
    #[serde(
        default = "default_port",
        deserialize_with = "crate::model::de_port"
    )]
    pub port: u16,
    /// Name sent as SNI and looked for in the certificate. Default: `host` (an IP address is
    /// sent no SNI and looked for among the certificate's IP addresses).
    pub server_name: Option<String>,
    /// PEM CA certificates trusted on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Do not fail when the chain does not verify (the dates are still judged, and
    /// `details.verified` still says whether it did).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Degraded (reason `threshold`) when the earliest `not_after` in the chain is this
    /// close. Default 21 days.
    #[serde(default = "default_degraded", deserialize_with = "de_duration")]
    pub degraded_within: Duration,
    /// Failed (reason `threshold`) when it is this close. Default 7 days.
    #[serde(default = "default_unhealthy", deserialize_with = "de_duration")]
    pub unhealthy_within: Duration,
}

fn default_port() -> u16 {
    443
}

const DAY: u64 = 86_400;

fn default_degraded() -> Duration {
    Duration::from_secs(21 * DAY)
}

fn default_unhealthy() -> Duration {
    Duration::from_secs(7 * DAY)
}

impl TlsConfig {
    fn name(&self) -> Result<ServerName<'static>, String> {
        let name = self.server_name.as_deref().unwrap_or(&self.host);
        ServerName::try_from(name.to_string()).map_err(|e| format!("\"{name}\": {e}"))
    }

    fn trust(&self) -> TrustKeys<'_> {
        TrustKeys {
            ca_file: self.ca_file.as_deref(),
            insecure_skip_verify: self.insecure_skip_verify,
            ..TrustKeys::default()
        }
    }
}

impl Kind for TlsConfig {
    type Probe = TlsProbe;

    fn build(&self, _timeout: Duration) -> Result<TlsProbe, String> {
        let provider = provider();
        Ok(TlsProbe {
            host: self.host.clone(),
            port: self.port,
            server_name: self.name()?,
            webpki: webpki(roots(self.ca_file.as_deref())?, &provider)?,
            provider,
            insecure_skip_verify: self.insecure_skip_verify,
            degraded_within: self.degraded_within,
            unhealthy_within: self.unhealthy_within,
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        if self.host.trim().is_empty() {
            problems.push(("host".into(), "must not be empty".into()));
        } else if let Err(e) = self.name() {
            let key = if self.server_name.is_some() {
                "server_name"
            } else {
                "host"
            };
            problems.push((key.into(), format!("not a valid TLS server name: {e}")));
        }
        if self.degraded_within <= self.unhealthy_within {
            problems.push((
                "degraded_within".into(),
                format!(
                    "must be longer than unhealthy_within ({} is not longer than {})",
                    humantime::format_duration(self.degraded_within),
                    humantime::format_duration(self.unhealthy_within)
                ),
            ));
        }
        // A `ca_file` is still used with insecure_skip_verify here: it decides `verified`.
        TrustKeys {
            insecure_skip_verify: false,
            ..self.trust()
        }
        .validate(problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> TlsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        let c = cfg("host = \"example.com\"");
        assert_eq!(c.port, 443);
        assert_eq!(c.degraded_within, Duration::from_secs(21 * DAY));
        assert_eq!(c.unhealthy_within, Duration::from_secs(7 * DAY));
        let mut problems = Vec::new();
        c.validate(Duration::from_secs(5), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");

        let c = cfg("host = \"a\"\ndegraded_within = \"7d\"\nunhealthy_within = \"10d\"");
        let mut problems = Vec::new();
        c.validate(Duration::from_secs(5), &mut problems);
        assert_eq!(problems[0].0, "degraded_within", "{problems:?}");

        let c = cfg("host = \"a\"\nserver_name = \"bad name!\"");
        let mut problems = Vec::new();
        c.validate(Duration::from_secs(5), &mut problems);
        assert_eq!(problems[0].0, "server_name", "{problems:?}");
        assert!(toml::from_str::<TlsConfig>("host = \"a\"\nstarttls = \"smtp\"").is_err());
    }
}
