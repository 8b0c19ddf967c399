//! The accept path: bounds open connections and how long a client may take to send its
//! request head, and sends each connection to its lane (`lane.rs`): probe connections are
//! served on the probe runtime, the rest on the main one. Runs on the probe runtime itself,
//! so that accepting never waits behind heavy work.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::conns::{Activity, Budget, Member};
use super::lane::{self, Lane, Lanes};
use super::plain::{self, Ended, Plain};
use super::prefixed::Prefixed;
use super::shed::Shed;
use super::tls::TlsReloader;
use crate::config::server::LimitsConfig;
use crate::health::Verdicts;

/// Below this share of free connection slots, the listener counts as crowded.
const CROWDED: f64 = 0.25;
/// The header read timeout of a connection accepted while crowded (unless shorter already).
const CROWDED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections kept for probe clients beyond `max_connections`: when every regular slot has
/// a request in progress, a connection whose first request is a probe's still gets in.
pub const PROBE_RESERVE: usize = 32;

/// Connections the kernel may hold for `accept`. With the usual 1,024, a burst of heavy
/// clients (re)connecting at once overflows the queue; a probe's connection attempt then
/// waits for the 1 s SYN retransmission, as long as kubelet's whole probe timeout. (The
/// kernel caps it at `net.core.somaxconn`, 4,096 by default.)
const BACKLOG: u32 = 4096;

/// Bind a listener with room for [`BACKLOG`] pending connections.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// What the listener needs besides the router.
#[derive(Clone)]
pub struct Edge {
    pub lanes: Lanes,
    /// The plain group verdicts are answered from here, before the router.
    pub verdicts: Verdicts,
    pub shed: Arc<Shed>,
}

/// Serve `app` on `listener` (with TLS if given) until `stop`, then let open connections
/// finish their current request. Bounds open connections and how long a client may take to
/// send its request head, so idle or slow clients cannot pile up. Run it on the probe lane:
/// the listener is registered with the runtime it runs on.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    edge: Edge,
    tls: Option<Arc<TlsReloader>>,
    limits: LimitsConfig,
    stop: CancellationToken,
) {
    let cap = crate::descriptors::client_cap(limits.max_connections);
    if cap < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            cap,
            "server.limits.max_connections is above a quarter of the file descriptor limit; capped."
        );
    }
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "Cannot serve on the listener.");
            return;
        }
    };
    let budget = Budget::new(cap, &stop);
    let reserve = Budget::new(PROBE_RESERVE, &stop);
    let limits = Arc::new(limits);
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "Cannot accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Nearly full: new connections get little time to send their request head.
        let header_timeout = if budget.free_share() < CROWDED {
            limits.header_read_timeout.min(CROWDED_HEADER_TIMEOUT)
        } else {
            limits.header_read_timeout
        };
        // Every regular slot busy: only a probe's connection may come in, on the reserve.
        let (member, reserved) = match budget.admit() {
            Some(m) => (m, false),
            None => match reserve.admit() {
                Some(m) => (m, true),
                None => {
                    refuse(&edge.shed, &mut refused, peer);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (app, edge, stop, limits, tls) = (
            app.clone(),
            edge.clone(),
            stop.clone(),
            limits.clone(),
            tls.clone(),
        );
        tokio::spawn(async move {
            // TLS hides the request line until the handshake: such connections go to main.
            let lane = match tls {
                Some(_) => Lane::Main,
                None => tokio::select! {
                    lane = lane::lane_of(&stream, header_timeout) => match lane {
                        Some(lane) => lane,
                        // Silent for the whole header read timeout, or gone.
                        None => return,
                    },
                    // Closed to make room before it said anything.
                    _ = member.close.cancelled() => return,
                },
            };
            if lane == Lane::Main && reserved {
                edge.shed.connection();
                return;
            }
            let conn = Conn {
                peer,
                app,
                verdicts: edge.verdicts,
                member,
                header_timeout,
                limits,
                tls,
                stop,
            };
            match lane {
                Lane::Probe => serve_one(stream, conn, Lane::Probe).await,
                // Moved to the main runtime's I/O driver too, so that its readiness events
                // are not the probe lane's work.
                Lane::Main => {
                    let Ok(std) = stream.into_std() else { return };
                    drop(edge.lanes.main.spawn(async move {
                        if let Ok(stream) = TcpStream::from_std(std) {
                            serve_one(stream, conn, Lane::Main).await
                        }
                    }));
                }
            }
        });
    }
    // Wait for open connections to finish (the caller bounds this wait).
    budget.drained().await;
    reserve.drained().await;
}

fn refuse(shed: &Shed, refused: &mut u64, peer: SocketAddr) {
    shed.connection();
    *refused += 1;
    if refused.is_power_of_two() {
        tracing::warn!(peer = %peer, refused, "Every connection has a request in progress; closing new ones.");
    }
}

/// An accepted connection and what serving it needs.
struct Conn {
    peer: SocketAddr,
    app: Router,
    verdicts: Verdicts,
    member: Member,
    header_timeout: Duration,
    limits: Arc<LimitsConfig>,
    tls: Option<Arc<TlsReloader>>,
    stop: CancellationToken,
}

/// One connection, over TLS when given, until it ends or is closed to make room.
async fn serve_one(stream: TcpStream, c: Conn, lane: Lane) {
    match &c.tls {
        None if lane == Lane::Probe => probe_connection(stream, &c).await,
        None => connection(stream, &c).await,
        Some(tls) => {
            let handshake = tokio::time::timeout(c.header_timeout, tls.acceptor().accept(stream));
            let handshake = tokio::select! {
                r = handshake => r,
                _ = c.member.close.cancelled() => return,
            };
            match handshake {
                Ok(Ok(s)) => connection(s, &c).await,
                Ok(Err(e)) => tracing::debug!(peer = %c.peer, error = %e, "TLS handshake failed."),
                Err(_) => tracing::debug!(peer = %c.peer, "TLS handshake timed out."),
            }
        }
    }
}

/// A probe lane connection: its plain verdict requests answered by [`Plain`], the rest (from
/// the first request that is not plain on) by hyper and the router.
async fn probe_connection(mut stream: TcpStream, c: &Conn) {
    let plain = Plain {
        verdicts: &c.verdicts,
        activity: &c.member.activity,
        header_timeout: c.header_timeout,
        max_header_bytes: c.limits.max_header_bytes,
        max_head: max_head(&c.limits),
        close: &c.member.close,
        stop: &c.stop,
    };
    if let Ended::ToRouter(read) = plain.serve(&mut stream).await {
        connection(Prefixed::new(read, stream), c).await
    }
}

/// The largest request head hyper reads (the request line and headers).
fn max_head(limits: &LimitsConfig) -> usize {
    (limits.max_header_bytes + limits.max_uri_bytes + 1024).max(8192)
}

async fn connection<I>(io: I, c: &Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &c.limits;
    let (header_timeout, peer) = (c.header_timeout, c.peer);
    let service = Handler {
        peer,
        app: c.app.clone(),
        verdicts: c.verdicts.clone(),
        activity: c.member.activity.clone(),
        max_header_bytes: limits.max_header_bytes,
    };
    // HTTP/1.1 only: every probe client speaks it, and it lets the header read timeout run
    // from the first byte (HTTP/2 version detection would wait for a silent client forever).
    // hyper's own HTTP/1 connection, not hyper-util's version-detecting wrapper around it:
    // that wrapper was the costliest user-space frame of a `/readyz` flood.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_head(limits));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // The connection's own token (a child of the listener's): polled each time the
    // connection wakes, and a token's waiting list is behind a lock, which every connection
    // would otherwise share.
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "Connection ended with an error.");
            }
            return;
        }
        _ = c.member.close.cancelled() => {}
    }
    if !c.stop.is_cancelled() {
        // Closed to make room for a newcomer: dropping the connection closes it.
        tracing::debug!(peer = %peer, "Idle connection closed to make room.");
        return;
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// One connection's requests: the plain group verdicts answered at once, the rest by the
/// router. Called by reference for each request (hyper's own service trait), so a request
/// clones nothing of the connection's state unless it goes to the router.
struct Handler {
    peer: SocketAddr,
    app: Router,
    verdicts: Verdicts,
    activity: Arc<Activity>,
    max_header_bytes: usize,
}

type Routed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Handler {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, Routed>;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        // A client that has had a probe answered here is a prober: its connection is the
        // last one closed to make room (a half-sent probe head does not count).
        if lane::is_probe_target(req.uri().path().as_bytes()) {
            self.activity.mark_probe();
            // The plain verdict needs no layer of the router: answered here, at once.
            if let Some(r) = plain::fast(&self.verdicts, &req, self.max_header_bytes) {
                return Either::Left(ready(Ok(r)));
            }
        }
        let app = self.app.clone();
        // Busy from the complete request head until the response is handed over: a
        // connection in a request is never closed to make room.
        let busy = self.activity.request();
        req.extensions_mut().insert(ConnectInfo(self.peer));
        Either::Right(Box::pin(async move {
            let Ok(r) = tower::ServiceExt::oneshot(app, req.map(Body::new)).await;
            drop(busy);
            Ok(r)
        }))
    }
}
