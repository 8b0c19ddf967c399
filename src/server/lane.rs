//! The reserved lane for verdicts. The probe endpoints (`/livez`, `/readyz`, `/startupz`,
//! their `/ping` and `/{check}`) and the gRPC health service run on a runtime of their own
//! (threads named `healthd-probes`), which also accepts every connection: a connection
//! whose first request line names a probe path is served there, any other is handed to the
//! main runtime, where `/health`, `/metrics`, the status page and the API do their work. A
//! flood of heavy requests therefore keeps the main runtime's threads busy, never the ones
//! that answer kubelet. On a probe connection the plain group verdicts are read and answered
//! without hyper (`plain.rs`); on a connection hyper serves, before the router ([`fast`]).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};
use tokio::net::TcpStream;
use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;

use super::{CLOSE, NO_STORE, TEXT_PLAIN};
use crate::health::{Verdicts, verdict};
use crate::model::Group;

/// Which runtime serves a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The probe endpoints' reserved runtime.
    Probe,
    /// Everything else.
    Main,
}

/// The two runtimes a listener hands connections to.
#[derive(Debug, Clone)]
pub struct Lanes {
    pub probe: Handle,
    pub main: Handle,
}

/// The probe lane's runtime: one worker per core, on threads of its own. Dropping it stops
/// the runtime (its thread drops it, outside any async context).
pub struct ProbeRuntime {
    handle: Handle,
    stop: CancellationToken,
}

impl ProbeRuntime {
    pub fn start() -> std::io::Result<ProbeRuntime> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rt: Runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("healthd-probes")
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("healthd-probes".into())
            .spawn(move || {
                rt.block_on(stopped.cancelled());
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(ProbeRuntime { handle, stop })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for ProbeRuntime {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The probe paths, as the first segment of a request target.
const PROBE_PATHS: [&str; 3] = ["/livez", "/readyz", "/startupz"];

/// Whether a request target (path and query) is a probe endpoint's.
pub fn is_probe_target(target: &[u8]) -> bool {
    PROBE_PATHS.iter().any(|p| {
        target.starts_with(p.as_bytes()) && matches!(target.get(p.len()), None | Some(b'/' | b'?'))
    })
}

/// The lane of a connection from the first bytes it sent: `Probe` when they hold a complete
/// `GET` or `HEAD` request target of a probe endpoint; `Main` otherwise (a partial line too).
pub fn classify(head: &[u8]) -> Lane {
    let rest = head
        .strip_prefix(b"GET ")
        .or_else(|| head.strip_prefix(b"HEAD "));
    let Some(rest) = rest else {
        return Lane::Main;
    };
    match rest.iter().position(|b| *b == b' ') {
        Some(end) if is_probe_target(&rest[..end]) => Lane::Probe,
        _ => Lane::Main,
    }
}

/// Wait (at most `within`) for the connection's first bytes and say which lane serves it;
/// `None` when it sent nothing in time or is gone.
pub async fn lane_of(stream: &TcpStream, within: Duration) -> Option<Lane> {
    let mut head = [0u8; 64];
    match tokio::time::timeout(within, stream.peek(&mut head)).await {
        Ok(Ok(n)) if n > 0 => Some(classify(&head[..n])),
        _ => None,
    }
}

/// The plain verdict of a whole group (`GET /readyz`, no query, no JSON asked for, no body),
/// answered without the router; `None` for anything else, which the router then serves.
/// The answer is the same as the router's (`probe::probe`): `ok`/the verdict word, `200` or
/// `503`, `Connection: close` while draining.
pub fn fast<B>(
    verdicts: &Verdicts,
    req: &Request<B>,
    max_header_bytes: usize,
) -> Option<Response<Body>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let uri = req.uri();
    if uri.query().is_some() {
        return None;
    }
    let group = match uri.path() {
        "/livez" => Group::Liveness,
        "/readyz" => Group::Readiness,
        "/startupz" => Group::Startup,
        _ => return None,
    };
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
        || headers.get(header::ACCEPT).is_some_and(|a| {
            a.as_bytes().len() >= 16
                && a.as_bytes()
                    .windows(16)
                    .any(|w| w.eq_ignore_ascii_case(b"application/json"))
        })
    {
        return None;
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > max_header_bytes {
        return None;
    }
    // As `Verdicts::group`, with borrowed guards instead of a reference count per request.
    let (snap, policy) = (verdicts.snapshot.load(), verdicts.policy.load());
    let v = verdict(&snap, group, None, &[], &policy, verdicts.draining(), false);
    let (pass, word) = (v.pass, v.word);
    let mut r = Response::new(Body::from(word_line(word)));
    *r.status_mut() = if pass {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
    h.insert(header::CACHE_CONTROL, NO_STORE.clone());
    if verdicts.draining() {
        h.insert(header::CONNECTION, CLOSE.clone());
    }
    Some(r)
}

/// `word` and a newline, without an allocation for the usual words.
fn word_line(word: &'static str) -> axum::body::Bytes {
    match word {
        "ok" => axum::body::Bytes::from_static(b"ok\n"),
        other => axum::body::Bytes::from(format!("{other}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_goes_to_the_probe_lane_only_for_a_complete_probe_target() {
        for head in [
            &b"GET /livez HTTP/1.1\r\n"[..],
            b"GET /readyz?verbose HTTP/1.1\r\n",
            b"HEAD /startupz/ping HTTP/1.1\r\n",
            b"GET /readyz/db HTTP/1.1",
        ] {
            assert_eq!(
                classify(head),
                Lane::Probe,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        for head in [
            &b"GET /health HTTP/1.1\r\n"[..],
            b"GET /livezz HTTP/1.1\r\n",
            b"GET /readyz",
            b"POST /readyz HTTP/1.1\r\n",
            b"GET /metrics?x=/readyz HTTP/1.1\r\n",
            b"",
        ] {
            assert_eq!(
                classify(head),
                Lane::Main,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
