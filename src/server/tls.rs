//! Optional TLS for the listener. The certificate and key are re-read when either file
//! changes (checked at most once a second, on new connections), so a renewed certificate
//! is picked up without a restart, whether or not healthd is sent SIGHUP.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;

use crate::config::server::TlsConfig;

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
        let server = config
            .load()
            .map_err(|(k, r)| format!("server.tls.{k}: {r}"))?;
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
        match self.config.load() {
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
