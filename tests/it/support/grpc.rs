//! gRPC servers on loopback for `kind = "grpc"`: tonic with the `tonic-health` service
//! ([`GrpcPeer`]; switchable, with TLS and client certificates, without the health service,
//! with a metadata check that echoes what it got), a tonic server whose health handler
//! answers a chosen raw status or never answers ([`Scripted`]), and the reference
//! implementation: Python's `grpcio-health-checking` ([`PythonPeer`], in the venv that
//! `scripts/test` creates).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::HealthReporter;

use super::pki::{Pki, Served};
use super::{START_TIMEOUT, wait_for_exit};

/// How a [`GrpcPeer`] is set up.
#[derive(Default)]
pub struct Setup<'a> {
    /// Serve TLS with this chain.
    pub tls: Option<&'a Served>,
    /// Require a client certificate issued by this CA (with `tls`).
    pub client_ca: Option<&'a Pki>,
    /// Serve no health service at all (every method is UNIMPLEMENTED).
    pub no_health: bool,
    /// Refuse calls whose `authorization` is not this (UNAUTHENTICATED, echoing what came).
    pub token: Option<String>,
}

/// A tonic server with `tonic-health`, switched with [`GrpcPeer::set`]. Records the
/// connections it accepted and the `:authority` and `x-tenant` of each request.
pub struct GrpcPeer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<(String, String)>>>,
    reporter: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl GrpcPeer {
    /// Plaintext, the whole server ("") SERVING.
    pub async fn start() -> GrpcPeer {
        Self::start_with(Setup::default()).await
    }

    pub async fn start_with(setup: Setup<'_>) -> GrpcPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, setup).await
    }

    /// On `addr` again (a restart after [`GrpcPeer::stop`]).
    pub async fn start_on(addr: SocketAddr) -> GrpcPeer {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the same port again");
        Self::serve(listener, Setup::default()).await
    }

    async fn serve(listener: TcpListener, setup: Setup<'_>) -> GrpcPeer {
        let addr = listener.local_addr().expect("addr");
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let mut server = Server::builder();
        if let Some(served) = setup.tls {
            let mut tls = ServerTlsConfig::new()
                .identity(Identity::from_pem(&served.cert_pem, &served.key_pem));
            if let Some(ca) = setup.client_ca {
                tls = tls.client_ca_root(Certificate::from_pem(ca.ca_pem()));
            }
            server = server.tls_config(tls).expect("server TLS config");
        }
        let record = seen.clone();
        let mut server = server.layer(tower::util::MapRequestLayer::new(
            move |req: tonic::codegen::http::Request<tonic::body::Body>| {
                let header = |n: &str| {
                    req.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let authority = req
                    .uri()
                    .authority()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                record
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((authority, header("x-tenant")));
                req
            },
        ));
        let router = if setup.no_health {
            server.add_routes(tonic::service::Routes::default())
        } else {
            let token = setup.token;
            server.add_service(tonic::service::interceptor::InterceptedService::new(
                health,
                move |req: Request<()>| match &token {
                    None => Ok(req),
                    Some(t) => {
                        let got = req
                            .metadata()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        if got == t {
                            Ok(req)
                        } else {
                            Err(Status::unauthenticated(format!("bad token \"{got}\"")))
                        }
                    }
                },
            ))
        };
        let (incoming, connections) = counted(listener);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        GrpcPeer {
            addr,
            connections,
            seen,
            reporter,
            stop: Some(stop),
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub async fn set(&self, service: &str, status: ServingStatus) {
        self.reporter.set_service_status(service, status).await;
    }

    /// Stop as a server does on shutdown: stop listening, send GOAWAY on every connection,
    /// close them; returns once all are closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for GrpcPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The listener's connections for tonic, and how many it accepted.
fn counted(
    listener: TcpListener,
) -> (
    impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>>,
    Arc<AtomicUsize>,
) {
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let incoming = TcpIncoming::from(listener).inspect(move |c| {
        if c.is_ok() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (incoming, connections)
}

/// A raw serving status for [`Scripted`] to answer, or [`HANG`].
pub type Answer = Arc<AtomicI32>;
/// [`Scripted`] never answers Check.
pub const HANG: i32 = -1;

/// A tonic server whose `Health/Check` answers the raw serving status in `answer` (so also
/// SERVICE_UNKNOWN, which tonic-health never sends for Check), or never answers while it is
/// [`HANG`]: a server that accepted the call and hangs, which a real one does only by bug.
pub struct Scripted {
    pub addr: SocketAddr,
    pub answer: Answer,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

struct ScriptedHealth(Answer);

#[tonic::async_trait]
impl Health for ScriptedHealth {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        loop {
            let status = self.0.load(Ordering::SeqCst);
            if status != HANG {
                return Ok(Response::new(HealthCheckResponse { status }));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    type WatchStream = futures_util::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not in this test server"))
    }
}

impl Scripted {
    pub async fn start(status: i32) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let answer = Arc::new(AtomicI32::new(status));
        let (incoming, connections) = counted(listener);
        let router =
            Server::builder().add_service(HealthServer::new(ScriptedHealth(answer.clone())));
        let task = tokio::spawn(async move {
            let _ = router.serve_with_incoming(incoming).await;
        });
        Scripted {
            addr,
            answer,
            connections,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The venv `scripts/test` creates with `grpcio-health-checking` (beside the build's target
/// directory).
pub fn python_venv() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    target
        .parent()
        .map(|t| t.join("venv"))
        .unwrap_or_else(|| target.join("venv"))
}

/// `tests/it/support/grpc_health_server.py` under the venv's Python: the official
/// `grpcio-health-checking` servicer on a free port, statuses set through stdin. Killed on
/// drop.
pub struct PythonPeer {
    child: Child,
    stdin: ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    pub port: u16,
}

impl PythonPeer {
    pub fn start() -> PythonPeer {
        let python = python_venv().join("bin/python3");
        assert!(
            python.exists(),
            "{} is missing: run scripts/test, which creates the venv with grpcio-health-checking",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(super::repo_path("tests/it/support/grpc_health_server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
        let stdin = child.stdin.take().expect("stdin");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the Python gRPC server printed no port within {START_TIMEOUT:?}")
        });
        let port = line
            .strip_prefix("port ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the Python server: {line}"));
        PythonPeer {
            child,
            stdin,
            lines: rx,
            port,
        }
    }

    /// `servicer.set(service, status)` in the server (`SERVING`, `NOT_SERVING`, …); returns
    /// once the server says it is done.
    pub fn set(&mut self, service: &str, status: &str) {
        writeln!(self.stdin, "{status} {service}").expect("write to the Python server");
        self.stdin.flush().expect("flush");
        let ack = self.lines.recv_timeout(START_TIMEOUT);
        assert_eq!(
            ack.as_deref(),
            Ok("ok"),
            "the Python server did not confirm"
        );
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = wait_for_exit(&mut self.child, START_TIMEOUT);
    }
}
