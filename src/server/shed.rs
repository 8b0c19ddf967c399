//! What the edge turned away at once under load, by route: requests shed by a full
//! concurrency budget (`503` + `Retry-After`), and connections closed at accept because every
//! slot had a request in progress. Shown in `/metrics` as `healthd_http_shed_total{route}`.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// The `route` label's values: a fixed set, whatever paths clients send.
const ROUTES: [&str; 9] = [
    "/livez",
    "/readyz",
    "/startupz",
    "/health",
    "/metrics",
    "/api/v1",
    "/push",
    "/",
    "connection",
];
/// Index of the `connection` value.
const CONNECTION: usize = 8;

/// The shed counters.
#[derive(Debug, Default)]
pub struct Shed {
    counts: [AtomicU64; ROUTES.len()],
}

impl Shed {
    /// A request to `path` was shed.
    pub fn request(&self, path: &str) {
        self.counts[route_of(path)].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed at accept.
    pub fn connection(&self) {
        self.counts[CONNECTION].fetch_add(1, Ordering::Relaxed);
    }

    /// Everything shed so far.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The label value of a request path (the status page, its assets, login and badges: `/`).
fn route_of(path: &str) -> usize {
    let first = |p: &str| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    ROUTES[..CONNECTION - 1]
        .iter()
        .position(|r| first(r))
        .unwrap_or(CONNECTION - 1)
}

/// [`Shed`] as a Prometheus collector (every route shows, at 0 at first).
#[derive(Debug)]
pub struct ShedMetrics(pub std::sync::Arc<Shed>);

impl Collector for ShedMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = enc.encode_descriptor(
            "healthd_http_shed",
            "Requests answered 503 at once by a full concurrency budget, and connections closed at accept (route=\"connection\")",
            None,
            MetricType::Counter,
        )?;
        for (route, n) in ROUTES.iter().zip(&self.0.counts) {
            let labels = [("route", *route)];
            ConstCounter::new(n.load(Ordering::Relaxed)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_fixed_set_of_routes() {
        for (path, route) in [
            ("/health", "/health"),
            ("/metrics", "/metrics"),
            ("/api/v1/checks/db/history", "/api/v1"),
            ("/push/db", "/push"),
            ("/readyz/db", "/readyz"),
            ("/healthz", "/"),
            ("/assets/page.css", "/"),
            ("/", "/"),
        ] {
            assert_eq!(ROUTES[route_of(path)], route, "{path}");
        }
    }
}
