//! The HTTP edge's protection: request limits as tower layers (all in [`protect`]), and the
//! connection loop that bounds connections and slow clients (in [`serve`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use super::conns::{Budget, Member};
use super::tls::TlsReloader;
use crate::config::server::LimitsConfig;

/// Below this share of free connection slots, the listener counts as crowded.
const CROWDED: f64 = 0.25;
/// The header read timeout of a connection accepted while crowded (unless shorter already).
const CROWDED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Put the limits around the two halves of the router: `probes` (the Kubernetes probe
/// endpoints) and `details` (`/health`, `/metrics`) get separate concurrency budgets with
/// load shedding; everything gets the request guard, a timeout and panic catching.
pub fn protect<S>(probes: Router<S>, details: Router<S>, limits: &LimitsConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let budget = |n: usize| {
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                overloaded()
            }))
            .load_shed()
            .concurrency_limit(n.max(1))
    };
    let guard_limits = Arc::new(limits.clone());
    probes
        .layer(budget(limits.probe_concurrency))
        .merge(details.layer(budget(limits.detail_concurrency)))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let l = guard_limits.clone();
            async move { guard(&l, req, next).await }
        }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            },
        ))
}

fn plain(code: StatusCode, body: &'static str) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn overloaded() -> Response {
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "overloaded, try again\n");
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

/// Reject what no probe client sends: long targets, large headers, request bodies.
async fn guard(limits: &LimitsConfig, req: Request, next: Next) -> Response {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if target > limits.max_uri_bytes {
        return plain(StatusCode::URI_TOO_LONG, "request target too long\n");
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return plain(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large\n",
        );
    }
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    // A push may carry a short failure message; its handler bounds it (413 above 4 KiB).
    // The status page's login form posts the token (its handler bounds the body).
    let path = req.uri().path();
    if has_body && !path.starts_with("/push/") && path != "/login" {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request bodies are not accepted\n",
        );
    }
    next.run(req).await
}

/// Serve `app` on `listener` (with TLS if given) until `stop`, then let open connections
/// finish their current request. Bounds open connections and how long a client may take to
/// send its request head, so idle or slow clients cannot pile up.
pub async fn serve(
    listener: TcpListener,
    app: Router,
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
    let budget = Budget::new(cap);
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
        let Some(member) = budget.admit() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(peer = %peer, refused, "Every connection has a request in progress; closing new ones.");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let close = member.close.clone();
            let serve = async {
                match tls {
                    None => {
                        connection(stream, peer, app, &member, header_timeout, &limits, stop).await
                    }
                    Some(tls) => {
                        let acceptor = tls.acceptor();
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => {
                                connection(s, peer, app, &member, header_timeout, &limits, stop)
                                    .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed.")
                            }
                            Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out."),
                        }
                    }
                }
            };
            // Closed to make room for a newcomer: dropping the connection closes it.
            tokio::select! {
                _ = serve => {}
                _ = close.cancelled() => tracing::debug!(peer = %peer, "Idle connection closed to make room."),
            }
        });
    }
    // Wait for open connections to finish (the caller bounds this wait).
    budget.drained().await;
}

async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    member: &Member,
    header_timeout: Duration,
    limits: &LimitsConfig,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = member.activity.clone();
    let service = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        // Busy from the complete request head until the response is handed over: a
        // connection in a request is never closed to make room.
        let busy = activity.request();
        async move {
            let r: Result<Response, Infallible> =
                tower::ServiceExt::oneshot(app, req.map(Body::new)).await;
            drop(busy);
            r
        }
    });
    // HTTP/1.1 only: every probe client speaks it, and it lets the header read timeout run
    // from the first byte (HTTP/2 version detection would wait for a silent client forever).
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size((limits.max_header_bytes + limits.max_uri_bytes + 1024).max(8192));
    let conn = builder.serve_connection(
        TokioIo::new(io),
        hyper_util::service::TowerToHyperService::new(service),
    );
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "Connection ended with an error.");
            }
            return;
        }
        _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::sync::Notify;
    use tower::ServiceExt;

    fn get_req(path: &str) -> Request {
        Request::builder()
            .uri(path)
            .body(Body::empty())
            .unwrap_or_default()
    }

    /// The real layers around routes that can be held busy: a full detail budget sheds at
    /// once with 503, while the probe budget is untouched.
    #[tokio::test]
    async fn a_full_budget_sheds_at_once_and_budgets_are_separate() {
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let (held, inside) = (release.clone(), entered.clone());
        let details: Router = Router::new().route(
            "/health",
            get(move || {
                let (held, inside) = (held.clone(), inside.clone());
                async move {
                    inside.notify_one();
                    held.notified().await;
                    "done"
                }
            }),
        );
        let probes: Router = Router::new().route("/livez", get(|| async { "ok" }));
        let limits = LimitsConfig {
            detail_concurrency: 1,
            ..LimitsConfig::default()
        };
        // As `server::router` does: `with_state` turns the handlers into routes once, so the
        // budget's semaphore is shared by every request (without it, axum builds the route
        // per request).
        let app: Router = protect(probes, details, &limits).with_state(());

        let first = tokio::spawn(app.clone().oneshot(get_req("/health")));
        // The first request holds the only slot…
        entered.notified().await;
        // … so the next is shed at once, not queued.
        let Ok(shed) = app.clone().oneshot(get_req("/health")).await;
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            shed.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let Ok(live) = app.clone().oneshot(get_req("/livez")).await;
        assert_eq!(live.status(), StatusCode::OK, "probe budget unaffected");
        release.notify_one();
        let Ok(done) = first.await.expect("first request task");
        assert_eq!(done.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_slow_handler_times_out_with_503() {
        let details: Router = Router::new().route(
            "/health",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        );
        let limits = LimitsConfig {
            request_timeout: Duration::from_millis(50),
            ..LimitsConfig::default()
        };
        let app = protect(Router::new(), details, &limits);
        let Ok(r) = app.oneshot(get_req("/health")).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
