//! Certificates made in the test with rcgen, valid for chosen days around now ([`Pki`],
//! [`Served`]), and a rustls server that presents a chain and counts its handshakes
//! ([`TlsPeer`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration as Days, OffsetDateTime};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::install_crypto;

/// Validity from `from` days to `to` days from now (negative: in the past).
#[derive(Debug, Clone, Copy)]
pub struct Valid {
    pub from: i64,
    pub to: i64,
}

impl Valid {
    /// Valid since yesterday, for `days` more days.
    pub fn for_days(days: i64) -> Valid {
        Valid { from: -1, to: days }
    }
}

fn params(cn: &str, names: &[&str], valid: Valid) -> CertificateParams {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("certificate names");
    p.distinguished_name.push(DnType::CommonName, cn);
    let now = OffsetDateTime::now_utc();
    p.not_before = now + Days::days(valid.from);
    p.not_after = now + Days::days(valid.to);
    p
}

/// A test CA.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A CA named `cn`, valid from yesterday for a year.
    pub fn new(cn: &str) -> Pki {
        Self::with_validity(cn, Valid::for_days(365))
    }

    pub fn with_validity(cn: &str, valid: Valid) -> Pki {
        install_crypto();
        let mut p = params(cn, &[], valid);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().expect("CA key"))
            .expect("self-sign the CA");
        Pki { ca }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Write the CA certificate to `dir/<file>` and return the path.
    pub fn write_ca(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, self.ca_pem()).expect("write CA file");
        path
    }

    /// A server certificate for `names` (host names or IP addresses), CN = the first name;
    /// the chain served is the leaf then this CA.
    pub fn server(&self, names: &[&str], valid: Valid) -> Served {
        let cn = names.first().copied().unwrap_or("healthd test server");
        self.issue(params(cn, names, valid))
    }

    /// A client certificate with CN `cn` (extended key usage clientAuth).
    pub fn client(&self, cn: &str) -> Served {
        let mut p = params(cn, &[], Valid::for_days(30));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(p)
    }

    fn issue(&self, p: CertificateParams) -> Served {
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.ca).expect("sign the leaf");
        Served {
            chain: vec![cert.der().clone(), self.ca.der().clone()],
            cert_pem: cert.pem() + &self.ca.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

/// A self-signed certificate for `names`, the whole chain served.
pub fn self_signed(names: &[&str], valid: Valid) -> Served {
    install_crypto();
    let key = KeyPair::generate().expect("key");
    let cert = params(names.first().copied().unwrap_or("self"), names, valid)
        .self_signed(&key)
        .expect("self-sign");
    Served {
        chain: vec![cert.der().clone()],
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

/// A certificate chain and its key, as a server (or a client) presents them.
#[derive(Clone)]
pub struct Served {
    /// The leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The chain as PEM (leaf first) and the key as PEM (PKCS#8).
    pub cert_pem: String,
    pub key_pem: String,
    key_der: Vec<u8>,
}

impl Served {
    /// A rustls server config presenting this chain.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        install_crypto();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
            )
            .expect("server config");
        Arc::new(config)
    }

    /// Write `dir/<stem>.pem` (chain) and `dir/<stem>.key`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write certificate");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}

/// A rustls server on 127.0.0.1 that completes handshakes with `config`, records the SNI
/// each client sent, then reads until the client closes. Stops when dropped.
pub struct TlsPeer {
    pub addr: SocketAddr,
    pub handshakes: Arc<AtomicUsize>,
    pub sni: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsPeer {
    pub async fn start(config: Arc<rustls::ServerConfig>) -> TlsPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let sni = Arc::new(Mutex::new(Vec::new()));
        let acceptor = TlsAcceptor::from(config);
        let (count, names) = (handshakes.clone(), sni.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, count, names) = (acceptor.clone(), count.clone(), names.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let name = tls.get_ref().1.server_name().map(str::to_string);
                    names.lock().unwrap_or_else(|e| e.into_inner()).push(name);
                    let mut buf = [0u8; 256];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        TlsPeer {
            addr,
            handshakes,
            sni,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
