//! Optional TLS for the listener. The certificate and key are re-read when either file
//! changes (checked at most once a second, on new connections), so a renewed certificate
//! is picked up without a restart, whether or not healthd is sent SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

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
        match server_config(self) {
            Ok(_) => {
                crate::redact::warn_if_world_readable(&self.key_file, "server.tls.key_file");
                Vec::new()
            }
            Err((key, reason)) => vec![(key.into(), reason)],
        }
    }
}

fn server_config(c: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, (&'static str, String)> {
    let read = |key: &'static str, p: &Path| {
        std::fs::read(p).map_err(|e| (key, format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read("cert_file", &c.cert_file)?;
    let key_pem = read("key_file", &c.key_file)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            (
                "cert_file",
                format!("bad PEM in {}: {e}", c.cert_file.display()),
            )
        })?;
    if certs.is_empty() {
        return Err((
            "cert_file",
            format!("no certificate in {}", c.cert_file.display()),
        ));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| {
            (
                "key_file",
                format!("bad PEM in {}: {e}", c.key_file.display()),
            )
        })?
        .ok_or_else(|| {
            (
                "key_file",
                format!("no private key in {}", c.key_file.display()),
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

/// Modification times of the certificate and key files.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn mtimes(c: &TlsConfig) -> Stamp {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(&c.cert_file), m(&c.key_file))
}

const RECHECK: Duration = Duration::from_secs(1);

/// The current acceptor, swapped when the files change.
pub struct TlsReloader {
    config: TlsConfig,
    acceptor: ArcSwap<TlsAcceptor>,
    seen: Mutex<(Instant, Stamp)>,
}

impl TlsReloader {
    pub fn new(config: TlsConfig) -> Result<TlsReloader, String> {
        let stamp = mtimes(&config);
        let server = server_config(&config).map_err(|(k, r)| format!("server.tls.{k}: {r}"))?;
        Ok(TlsReloader {
            config,
            acceptor: ArcSwap::from_pointee(TlsAcceptor::from(server)),
            seen: Mutex::new((Instant::now(), stamp)),
        })
    }

    /// The acceptor to use for a new connection, re-reading the files if they changed.
    pub fn acceptor(&self) -> Arc<TlsAcceptor> {
        self.refresh();
        self.acceptor.load_full()
    }

    fn refresh(&self) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.0.elapsed() < RECHECK {
            return;
        }
        seen.0 = Instant::now();
        let stamp = mtimes(&self.config);
        if stamp == seen.1 {
            return;
        }
        match server_config(&self.config) {
            Ok(server) => {
                self.acceptor.store(Arc::new(TlsAcceptor::from(server)));
                seen.1 = stamp;
                tracing::info!(cert = %self.config.cert_file.display(), "TLS certificate reloaded.");
            }
            // Half-written files during a renewal: keep the old pair and try again later.
            Err((key, reason)) => {
                tracing::warn!(key, error = %reason, "TLS files changed but cannot be loaded; keeping the previous certificate.");
            }
        }
    }
}
