//! The gRPC half of a kept connection: how to open one (TCP, TLS with ALPN `h2`, HTTP/2 by
//! tonic on that very socket) and what to ask on it (`Health/Check`). tonic is handed the
//! socket once and cannot dial again: a broken connection comes back as an error, and the
//! driver in `check::session` reconnects, backs off and times connecting.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::metadata::{Metadata, Resolved};
use crate::check::session::{Connector, scrub};
use crate::check::tcp::connect;
use crate::model::{Outcome, Reason, classify, error_chain, one_line};

type Io = Either<TcpStream, TlsStream<TcpStream>>;

/// One open HTTP/2 connection and the metadata read when it was opened.
pub struct Conn {
    client: HealthClient<Channel>,
    metadata: Resolved,
}

/// What a gRPC check keeps between runs, apart from the connection.
pub struct Grpc {
    pub(super) host: String,
    pub(super) port: u16,
    /// `grpc://host:port` or `grpcs://…`, for messages.
    pub(super) shown: String,
    pub(super) origin: Uri,
    pub(super) service: String,
    pub(super) tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub(super) metadata: Metadata,
    /// Sent as `grpc-timeout`, so the server can give up too.
    pub(super) timeout: Duration,
}

impl Connector for Grpc {
    type Conn = Conn;

    fn target(&self) -> &str {
        &self.shown
    }

    async fn open(&mut self, _password: Option<&str>) -> Result<Conn, Outcome> {
        let metadata = self
            .metadata
            .resolve()
            .map_err(|e| Outcome::failed(Reason::Config, format!("{}: {e}", self.shown)))?;
        let (tcp, addr) = connect(&self.host, self.port).await?;
        // HTTP/2 frames (and TLS records) go in small writes: no Nagle delay between them.
        let _ = tcp.set_nodelay(true);
        let io: Io = match &self.tls {
            None => Either::Left(tcp),
            Some((config, name)) => {
                let tls = TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        Outcome::failed(
                            classify(&e).unwrap_or(Reason::Tls),
                            format!("TLS handshake with {addr}: {}", one_line(&error_chain(&e))),
                        )
                    })?;
                Either::Right(tls)
            }
        };
        let slot = Arc::new(Mutex::new(Some(io)));
        let once = tower::service_fn(move |_: Uri| {
            // A poisoned slot only means a panic elsewhere; the value is still fine.
            let io = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            async move {
                io.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotConnected, "connection closed")
                })
            }
        });
        // The endpoint's URI is only handed to `once`, which ignores it; an `https` one would
        // make tonic want to do TLS itself. Requests carry `origin`.
        let channel = Endpoint::from_static("http://socket.invalid")
            .origin(self.origin.clone())
            .user_agent(concat!("healthd/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| Outcome::failed(Reason::Config, e.to_string()))?
            .connect_with_connector(once)
            .await
            .map_err(|e| {
                Outcome::failed(
                    classify(&e).unwrap_or(Reason::Protocol),
                    format!("{}: HTTP/2 handshake: {}", self.shown, one_line(&error_chain(&e))),
                )
            })?;
        tracing::debug!(target = %self.shown, tls = self.tls.is_some(), "Connected to gRPC server.");
        Ok(Conn {
            client: HealthClient::new(channel),
            metadata,
        })
    }

    async fn probe(&mut self, conn: &mut Conn) -> (Outcome, bool) {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: self.service.clone(),
        });
        request.set_timeout(self.timeout);
        for kv in conn.metadata.map.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv {
                request.metadata_mut().insert(k.clone(), v.clone());
            }
        }
        let started = Instant::now();
        let answer = conn.client.check(request).await;
        let elapsed = started.elapsed();
        let (out, broken) = match answer {
            Ok(response) => (self.serving(response.into_inner().status), false),
            Err(status) => self.refused(&status),
        };
        let secrets: Vec<&str> = conn.metadata.secrets.iter().map(String::as_str).collect();
        let out = Outcome {
            message: scrub(&out.message, &secrets),
            ..out
        };
        (out.answered_in(elapsed), broken)
    }
}

impl Grpc {
    /// What is asked about, for messages.
    fn subject(&self) -> String {
        if self.service.is_empty() {
            format!("{} (whole server)", self.shown)
        } else {
            format!("{} service \"{}\"", self.shown, self.service)
        }
    }

    /// The judgement on an answer.
    fn serving(&self, status: i32) -> Outcome {
        let subject = self.subject();
        let (out, name) = match ServingStatus::try_from(status) {
            Ok(ServingStatus::Serving) => (Outcome::ok(format!("{subject} is SERVING")), "SERVING"),
            Ok(ServingStatus::NotServing) => (
                Outcome::failed(Reason::Status, format!("{subject} is NOT_SERVING")),
                "NOT_SERVING",
            ),
            Ok(ServingStatus::Unknown) => (
                Outcome::failed(
                    Reason::Status,
                    format!("{subject} answered UNKNOWN (the server does not know its state)"),
                ),
                "UNKNOWN",
            ),
            Ok(ServingStatus::ServiceUnknown) => (
                Outcome::failed(
                    Reason::Status,
                    format!("{subject} answered SERVICE_UNKNOWN (no such service)"),
                ),
                "SERVICE_UNKNOWN",
            ),
            Err(_) => {
                return Outcome::failed(
                    Reason::Protocol,
                    format!("{subject} answered an unknown serving status {status}"),
                )
                .with_detail("grpc_code", "OK")
                .with_detail("serving_status", status);
            }
        };
        out.with_detail("grpc_code", "OK")
            .with_detail("serving_status", name)
    }

    /// The judgement on a gRPC error, and whether the connection must be replaced.
    fn refused(&self, status: &Status) -> (Outcome, bool) {
        // No answer at all (the connection broke, or tonic's deadline from `grpc-timeout`
        // fired): tonic synthesizes a status and attaches the cause. The connection is in
        // doubt, and there is no gRPC code from the server to report.
        if let Some(cause) = status.source() {
            let reason = classify(status).unwrap_or(Reason::Connect);
            let message = match reason {
                Reason::Timeout => format!(
                    "{}: no answer within {}",
                    self.shown,
                    humantime::format_duration(self.timeout)
                ),
                _ => format!("{}: {}", self.shown, one_line(&error_chain(cause))),
            };
            return (Outcome::failed(reason, message), true);
        }
        let code = status.code();
        let text = one_line(status.message());
        let (reason, message) = match code {
            Code::NotFound => (
                Reason::Status,
                format!(
                    "{}: the server does not know this service (NOT_FOUND)",
                    self.subject()
                ),
            ),
            Code::Unimplemented => (
                Reason::Protocol,
                format!(
                    "{}: the server does not implement grpc.health.v1",
                    self.shown
                ),
            ),
            Code::Unauthenticated | Code::PermissionDenied => (
                Reason::Auth,
                format!("{}: {} {text}", self.shown, code_name(code)),
            ),
            Code::DeadlineExceeded => (
                Reason::Timeout,
                format!("{}: DEADLINE_EXCEEDED {text}", self.shown),
            ),
            _ => (
                Reason::Protocol,
                format!("{}: {} {text}", self.shown, code_name(code)),
            ),
        };
        let out = Outcome::failed(reason, message).with_detail("grpc_code", code_name(code));
        (out, code == Code::DeadlineExceeded)
    }
}

/// The canonical name of a gRPC status code (`NOT_FOUND`).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
