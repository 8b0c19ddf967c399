//! rustls client configs for the kinds that do their own TLS (`postgres`, `grpc`, `tls`),
//! written once: the trust store (the system roots plus a `ca_file`), client certificates,
//! and the one verifier that accepts more than rustls does by default — any certificate
//! (`insecure_skip_verify`, libpq's `prefer`/`require`), a chain without its name (libpq's
//! `verify-ca`), or anything while recording what was presented and whether it verified
//! (the `tls` kind, which must read an expired or untrusted chain to report on it).
//! Handshake signatures are always checked.
//!
//! The crypto provider is chosen here (ring), so this works whether or not a process
//! default was installed.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WantsClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};

/// The crypto provider every client config here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file; at least one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no PEM certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("bad PEM in {}: {e}", path.display()))?
        .ok_or_else(|| format!("no private key in {}", path.display()))
}

/// The system's root certificates plus those of `ca_file`.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        for cert in read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// rustls' own chain-and-name verifier over `roots`.
pub fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS setup: {e}"))
}

/// A client config builder with `verifier`, safe protocol versions (TLS 1.2 and 1.3).
pub fn builder(
    provider: &Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, String> {
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier))
}

/// The trust keys a kind offers, as configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrustKeys<'a> {
    /// PEM CA certificates trusted on top of the system roots.
    pub ca_file: Option<&'a Path>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
    /// PEM client certificate (chain) and its key, for servers that ask for one.
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
}

impl TrustKeys<'_> {
    /// Problems with the files, read now so they show in `healthd validate`.
    pub fn validate(&self, problems: &mut Vec<(String, String)>) {
        if let Some(path) = self.ca_file
            && let Err(e) = read_certs(path)
        {
            problems.push(("ca_file".into(), e));
        }
        if self.ca_file.is_some() && self.insecure_skip_verify {
            problems.push((
                "ca_file".into(),
                "has no effect with insecure_skip_verify = true".into(),
            ));
        }
        match (self.client_cert, self.client_key) {
            (Some(cert), Some(key)) => {
                if let Err(e) = read_certs(cert) {
                    problems.push(("client_cert".into(), e));
                }
                if let Err(e) = read_key(key) {
                    problems.push(("client_key".into(), e));
                }
            }
            (Some(_), None) => problems.push((
                "client_key".into(),
                "missing (client_cert needs client_key)".into(),
            )),
            (None, Some(_)) => problems.push((
                "client_cert".into(),
                "missing (client_key needs client_cert)".into(),
            )),
            (None, None) => {}
        }
    }

    /// A client config: the chain and name verified against the system roots and `ca_file`
    /// (or nothing verified), the client certificate when given, and `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<ClientConfig, String> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = if self.insecure_skip_verify {
            Arc::new(Verifier::new(&provider, None, Policy::AcceptAny))
        } else {
            webpki(roots(self.ca_file)?, &provider)?
        };
        let builder = builder(&provider, verifier)?;
        let mut config = match (self.client_cert, self.client_key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// What the server presented and what WebPKI said about it (see [`Policy::Record`]).
#[derive(Debug, Clone)]
pub struct Presented {
    /// The end-entity certificate first, then the rest in the order sent.
    pub chain: Vec<CertificateDer<'static>>,
    /// WebPKI's verdict on the chain and the name.
    pub verdict: Result<(), rustls::Error>,
}

/// Where a [`Policy::Record`] verifier puts what it saw.
pub type Seen = Arc<Mutex<Option<Presented>>>;

/// What [`Verifier`] accepts.
#[derive(Debug)]
pub enum Policy {
    /// Any certificate: encrypt, trust nothing.
    AcceptAny,
    /// The chain must lead to a trusted root; the name in it is not checked.
    IgnoreName,
    /// Anything, after recording the chain and WebPKI's verdict in the slot.
    Record(Seen),
}

/// A certificate verifier for the policies rustls has no builder for.
#[derive(Debug)]
pub struct Verifier {
    provider: Arc<CryptoProvider>,
    /// Needed by `IgnoreName` and `Record`.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    policy: Policy,
}

impl Verifier {
    pub fn new(
        provider: &Arc<CryptoProvider>,
        webpki: Option<Arc<WebPkiServerVerifier>>,
        policy: Policy,
    ) -> Verifier {
        Verifier {
            provider: provider.clone(),
            webpki,
            policy,
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.webpki {
            Some(w) => w
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
            None => Err(rustls::Error::General("no trust store".into())),
        };
        match &self.policy {
            Policy::AcceptAny => Ok(ServerCertVerified::assertion()),
            Policy::IgnoreName => match verdict {
                Ok(())
                | Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                Err(e) => Err(e),
            },
            Policy::Record(slot) => {
                let chain = std::iter::once(end_entity)
                    .chain(intermediates)
                    .map(|c| c.clone().into_owned())
                    .collect();
                // A poisoned slot only means a panic elsewhere; the value is still fine.
                *slot.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Presented { chain, verdict });
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
