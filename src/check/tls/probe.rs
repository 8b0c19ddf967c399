//! One run of a `tls` check: TCP connect, a TLS handshake whose verifier records the chain
//! and WebPKI's verdict instead of deciding, then the judgement (`judge`).

use std::sync::Arc;
use std::time::Duration;

use rustls::ProtocolVersion;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use super::judge::{Handshake, judge};
use crate::check::Run;
use crate::check::tcp::connect;
use crate::check::tls_client::{Policy, Seen, Verifier, builder};
use crate::model::{Outcome, Reason, classify, error_chain, one_line};

pub struct TlsProbe {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) server_name: ServerName<'static>,
    /// Built once: loading the system roots costs milliseconds.
    pub(super) webpki: Arc<WebPkiServerVerifier>,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) insecure_skip_verify: bool,
    pub(super) degraded_within: Duration,
    pub(super) unhealthy_within: Duration,
}

impl TlsProbe {
    /// A client config for one handshake, recording into `seen`. A new one per run, with
    /// session resumption off: a resumed session presents no certificate, and each run must
    /// see the one served now.
    fn client_config(&self, seen: Seen) -> Result<rustls::ClientConfig, String> {
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(Verifier::new(
            &self.provider,
            Some(self.webpki.clone()),
            Policy::Record(seen),
        ));
        let mut config = builder(&self.provider, verifier)?.with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }
}

impl Run for TlsProbe {
    async fn run(&mut self) -> Outcome {
        let (stream, addr) = match connect(&self.host, self.port).await {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        // The handshake's flights are small writes: no Nagle delay between them.
        let _ = stream.set_nodelay(true);
        let seen = Seen::default();
        let config = match self.client_config(seen.clone()) {
            Ok(c) => c,
            Err(e) => return Outcome::failed(Reason::Internal, e),
        };
        let shake = TlsConnector::from(Arc::new(config))
            .connect(self.server_name.clone(), stream)
            .await;
        let (version, error) = match shake {
            Ok(mut tls) => {
                let version = tls.get_ref().1.protocol_version();
                // close_notify, then our FIN: the TIME_WAIT stays here.
                let _ = tls.shutdown().await;
                (version.map(version_name), None)
            }
            Err(e) => (
                None,
                Some((classify(&e), one_line(&error_chain(&e)))),
            ),
        };
        // A poisoned slot only means a panic elsewhere; the value is still fine.
        let presented = seen.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(presented) = presented else {
            let (reason, text) = error.unwrap_or((None, "no certificate presented".into()));
            return Outcome::failed(
                reason.unwrap_or(Reason::Tls),
                format!("TLS handshake with {addr}: {text}"),
            )
            .with_detail("address", addr.to_string());
        };
        judge(Handshake {
            server_name: name_text(&self.server_name),
            presented,
            version,
            error: error.map(|(_, text)| text),
            insecure_skip_verify: self.insecure_skip_verify,
            degraded_within: self.degraded_within,
            unhealthy_within: self.unhealthy_within,
        })
        .with_detail("address", addr.to_string())
    }
}

fn version_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

fn name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}
