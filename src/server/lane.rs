//! The reserved lane for verdicts. The probe endpoints (`/livez`, `/readyz`, `/startupz`,
//! their `/ping` and `/{check}`) and the gRPC health service run on a runtime of their own
//! (threads named `healthd-probes`), which also accepts every connection: a connection
//! whose first request line names a probe path is served there, any other is handed to the
//! main runtime, where `/health`, `/metrics`, the status page and the API do their work. A
//! flood of heavy requests therefore keeps the main runtime's threads busy, never the ones
//! that answer kubelet. On a probe connection the plain group verdicts are read and answered
//! without hyper; on a connection hyper serves, before the router (both in `plain.rs`).

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::runtime::{Handle, Runtime};

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
/// the runtime without waiting (it may be dropped in async code, where a blocking wait
/// panics): its workers drop what is left as they stop. The connections have been drained
/// by then (the listener's task, which runs here, ends first).
pub struct ProbeRuntime {
    runtime: Option<Runtime>,
}

impl ProbeRuntime {
    pub fn start() -> std::io::Result<ProbeRuntime> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("healthd-probes")
            .enable_all()
            .build()?;
        Ok(ProbeRuntime {
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("taken only when dropped")
            .handle()
    }
}

impl Drop for ProbeRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
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
