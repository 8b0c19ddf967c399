//! The HTTP edge's request limits as tower layers, all in [`protect`]. The connection loop
//! that bounds connections and slow clients is in `accept.rs`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use futures_util::StreamExt as _;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;

use super::shed::Shed;
use crate::config::server::LimitsConfig;

/// A turn through the runtime's queue slower than this sheds heavy requests at once.
const SWAMPED: std::time::Duration = std::time::Duration::from_millis(100);

/// Put the limits around the two halves of the router: `probes` (the Kubernetes probe
/// endpoints) and `details` (`/health`, `/metrics`, the status page, the API, pushes) get
/// separate concurrency budgets with load shedding (counted in `shed`); everything gets the
/// request guard, a timeout and panic catching.
pub fn protect<S>(
    probes: Router<S>,
    details: Router<S>,
    limits: &LimitsConfig,
    shed: Arc<Shed>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let budget = |n: usize| {
        let shed = shed.clone();
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(
                move |uri: Uri, _: tower::BoxError| {
                    shed.request(uri.path());
                    async { overloaded() }
                },
            ))
            .load_shed()
            .concurrency_limit(n.max(1))
    };
    let guard_limits = Arc::new(limits.clone());
    let queued = shed.clone();
    let slots = Arc::new(Semaphore::new(limits.detail_concurrency.max(1)));
    let counted = shed.clone();
    let details = details
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let (slots, shed) = (slots.clone(), counted.clone());
            async move { within_budget(slots, &shed, req, next).await }
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let shed = queued.clone();
            async move { unless_swamped(&shed, req, next).await }
        }));
    probes
        .layer(budget(limits.probe_concurrency))
        .merge(details)
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

/// A plain-text answer, typed and uncached as every other one (`server::typed`).
fn plain(code: StatusCode, body: &'static str) -> Response {
    super::typed(
        code,
        axum::body::Bytes::from_static(body.as_bytes()),
        &super::TEXT_PLAIN,
    )
}

fn overloaded() -> Response {
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "overloaded, try again\n");
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

/// Run a heavy request in a slot of the detail budget, or shed it at once (503) when every
/// slot is taken. The slot is held until the body has been sent: a body streamed as it is
/// rendered (`/metrics` with many checks) keeps rendering after the handler returned.
async fn within_budget(slots: Arc<Semaphore>, shed: &Shed, req: Request, next: Next) -> Response {
    let Ok(slot) = slots.try_acquire_owned() else {
        shed.request(req.uri().path());
        return overloaded();
    };
    let r = next.run(req).await;
    if r.body().size_hint().exact().is_some() {
        return r;
    }
    r.map(|body| {
        Body::from_stream(body.into_data_stream().inspect(move |_| {
            let _held = &slot;
        }))
    })
}

/// Shed a heavy request at once when the runtime is swamped: a turn through its run queue
/// (one yield) took longer than [`SWAMPED`]. The concurrency budget cannot see that case: when
/// renders keep every worker busy, requests wait to be read, not in the budget, and would
/// only add renders once read; a `503` costs next to nothing and empties the queue.
async fn unless_swamped(shed: &Shed, req: Request, next: Next) -> Response {
    let asked = std::time::Instant::now();
    tokio::task::yield_now().await;
    if asked.elapsed() > SWAMPED {
        shed.request(req.uri().path());
        return overloaded();
    }
    next.run(req).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::routing::get;
    use std::convert::Infallible;
    use std::time::Duration;
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
        let counted = Arc::new(Shed::default());
        let app: Router = protect(probes, details, &limits, counted.clone()).with_state(());

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
        assert_eq!(counted.total(), 1, "the shed request is counted");
        release.notify_one();
        let Ok(done) = first.await.expect("first request task");
        assert_eq!(done.status(), StatusCode::OK);
    }

    /// A streamed body keeps its slot until it has been sent (or dropped), not only until
    /// the handler returned.
    #[tokio::test]
    async fn a_streamed_body_holds_its_slot_until_it_ends() {
        let (send, recv) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(1);
        let recv = Arc::new(std::sync::Mutex::new(Some(recv)));
        let details: Router = Router::new().route(
            "/metrics",
            get(move || {
                let recv = recv.lock().ok().and_then(|mut r| r.take());
                async move {
                    match recv {
                        Some(r) => {
                            Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(r))
                        }
                        None => Body::from("short"),
                    }
                }
            }),
        );
        let limits = LimitsConfig {
            detail_concurrency: 1,
            ..LimitsConfig::default()
        };
        let app: Router = protect(Router::new(), details, &limits, Arc::default()).with_state(());
        let Ok(streaming) = app.clone().oneshot(get_req("/metrics")).await;
        assert_eq!(streaming.status(), StatusCode::OK);
        // The handler has returned, the body is still open: the only slot is taken.
        let Ok(shed) = app.clone().oneshot(get_req("/metrics")).await;
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        send.send(Ok(Bytes::from("tail"))).await.expect("body open");
        drop(send);
        let body = axum::body::to_bytes(streaming.into_body(), 1024).await;
        assert_eq!(body.ok().as_deref(), Some(&b"tail"[..]));
        // Sent: the slot is free again.
        let Ok(after) = app.clone().oneshot(get_req("/metrics")).await;
        assert_eq!(after.status(), StatusCode::OK);
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
        let app = protect(Router::new(), details, &limits, Arc::default());
        let Ok(r) = app.oneshot(get_req("/health")).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
