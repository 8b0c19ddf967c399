//! The OTLP receiver the tests export to: gRPC (tonic) and HTTP/protobuf (axum), plain or
//! with mutual TLS against a throwaway PKI, recording every export with its headers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tokio::sync::oneshot;

use crate::support::{eventually_async, install_crypto};

pub(super) type Headers = HashMap<String, String>;

/// How the gRPC receiver answers metric exports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) enum Mode {
    #[default]
    Accept,
    /// Answer only after this long (longer than the exporter's timeout).
    Slow(Duration),
    /// Refuse with `UNAUTHENTICATED`.
    Reject,
}

/// Everything the receiver got, with the request headers of each export.
#[derive(Clone, Default)]
pub(super) struct Inbox {
    pub(super) metrics: Arc<Mutex<Vec<(Headers, ExportMetricsServiceRequest)>>>,
    pub(super) logs: Arc<Mutex<Vec<(Headers, ExportLogsServiceRequest)>>>,
    pub(super) mode: Arc<Mutex<Mode>>,
}

impl Inbox {
    pub(super) fn metric_count(&self) -> usize {
        self.metrics.lock().unwrap().len()
    }
    pub(super) fn last(&self) -> Option<(Headers, ExportMetricsServiceRequest)> {
        self.metrics.lock().unwrap().last().cloned()
    }
}

fn header_map(h: &axum::http::HeaderMap) -> Headers {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tonic::async_trait]
impl MetricsService for Inbox {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Accept => {}
            Mode::Slow(d) => {
                tokio::time::sleep(d).await;
                return Ok(tonic::Response::new(ExportMetricsServiceResponse::default()));
            }
            Mode::Reject => return Err(tonic::Status::unauthenticated("bad token")),
        }
        let headers = header_map(&req.metadata().clone().into_headers());
        self.metrics
            .lock()
            .unwrap()
            .push((headers, req.into_inner()));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Inbox {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let headers = header_map(&req.metadata().clone().into_headers());
        self.logs.lock().unwrap().push((headers, req.into_inner()));
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// A running receiver; `kill` stops it and closes its connections.
pub(super) struct Receiver {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub(super) async fn grpc(addr: SocketAddr, inbox: Inbox) -> Receiver {
        let listener = bind(addr).await;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(inbox.clone()))
                .add_service(LogsServiceServer::new(inbox))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
        });
        Receiver {
            stop: Some(tx),
            task,
        }
    }

    /// gRPC over TLS that requires a client certificate signed by `pki`'s CA.
    pub(super) async fn grpc_mtls(addr: SocketAddr, inbox: Inbox, pki: &Pki) -> Receiver {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let listener = bind(addr).await;
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                pki.read("server.pem"),
                pki.read("server.key"),
            ))
            .client_ca_root(Certificate::from_pem(pki.read("ca.pem")));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .tls_config(tls)
                .expect("server TLS config")
                .add_service(MetricsServiceServer::new(inbox))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
        });
        Receiver {
            stop: Some(tx),
            task,
        }
    }

    pub(super) async fn http(addr: SocketAddr, inbox: Inbox) -> Receiver {
        let listener = bind(addr).await;
        Receiver::serve_http(listener, inbox)
    }

    /// HTTP/protobuf over TLS that requires a client certificate signed by `pki`'s CA.
    pub(super) async fn https_mtls(addr: SocketAddr, inbox: Inbox, pki: &Pki) -> Receiver {
        install_crypto();
        let certs: Vec<_> = rustls_pemfile::certs(&mut pki.read("server.pem").as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut pki.read("server.key").as_slice())
            .unwrap()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut pki.read("ca.pem").as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        let listener = TlsListener {
            tcp: bind(addr).await,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        Receiver::serve_http(listener, inbox)
    }

    fn serve_http<L>(listener: L, inbox: Inbox) -> Receiver
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        use axum::routing::post;
        let (m, l) = (inbox.clone(), inbox);
        let app = axum::Router::new()
            .route(
                "/v1/metrics",
                post(move |h: HeaderMap, b: Bytes| async move {
                    let Ok(req) = ExportMetricsServiceRequest::decode(b) else {
                        return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                    };
                    m.metrics.lock().unwrap().push((header_map(&h), req));
                    (
                        axum::http::StatusCode::OK,
                        ExportMetricsServiceResponse::default().encode_to_vec(),
                    )
                }),
            )
            .route(
                "/v1/logs",
                post(move |h: HeaderMap, b: Bytes| async move {
                    let Ok(req) = ExportLogsServiceRequest::decode(b) else {
                        return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                    };
                    l.logs.lock().unwrap().push((header_map(&h), req));
                    (
                        axum::http::StatusCode::OK,
                        ExportLogsServiceResponse::default().encode_to_vec(),
                    )
                }),
            )
            .layer(axum::middleware::map_response(
                |mut r: axum::response::Response| async move {
                    r.headers_mut().insert(
                        "content-type",
                        axum::http::HeaderValue::from_static("application/x-protobuf"),
                    );
                    r
                },
            ));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver {
            stop: Some(tx),
            task,
        }
    }

    /// Stop serving: the listener closes and open connections are shut down.
    pub(super) async fn kill(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    // The port may still be in use by the previous receiver's last connections.
    eventually_async(
        &format!("{addr} to be free"),
        Duration::from_secs(10),
        || async { tokio::net::TcpListener::bind(addr).await.ok() },
    )
    .await
}

/// A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, made with
/// the openssl command-line tool.
pub(super) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(super) fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"
set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -subj /CN=healthd-test-ca -days 2 -out ca.pem 2>/dev/null
leaf() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=IP:127.0.0.1\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
leaf server serverAuth
leaf client clientAuth
"#;
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .current_dir(dir.path())
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pki { dir }
    }

    pub(super) fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }
}

/// A TLS listener for axum: handshakes that fail (no client certificate) are dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
