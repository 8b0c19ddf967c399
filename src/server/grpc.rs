//! `grpc.health.v1.Health` served from the snapshot (`[server.grpc]`), for kubelet's `grpc:`
//! probes and any gRPC-aware load balancer. Verdicts only, never details: kubelet cannot
//! send TLS or tokens on gRPC probes.
//!
//! Service names: `""` (ready), `liveness`/`livez`, `readiness`/`readyz`, `startup`/`startupz`,
//! and one check in a group as `GROUP/NAME` (`readiness/db`). A verdict that passes is
//! `SERVING`, anything else `NOT_SERVING`, judged exactly as the HTTP endpoints judge it
//! ([`crate::health::verdict`]). An unknown service is `NOT_FOUND` on `Check` and
//! `SERVICE_UNKNOWN` on `Watch` (which stays open, as the protocol asks). `Watch` streams are
//! fed by one follower task from the snapshot, at most `max_watchers` at once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status as GrpcStatus};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::health::{Verdicts, verdict};
use crate::model::Group;

/// Least time between two refreshes of the watched services: the follower (one task,
/// whatever the number of watchers) wakes when a snapshot is published or the drain flag or
/// policy changes, and at most this often; nothing wakes it while nothing changes.
const FOLLOW_GAP: Duration = Duration::from_millis(100);

/// The verdict of one service name now; `None` for a service that does not exist.
pub fn serving(verdicts: &Verdicts, service: &str) -> Option<ServingStatus> {
    let (group, check) = match service.split_once('/') {
        Some((g, name)) => (Group::named(g)?, Some(name)),
        None if service.is_empty() => (Group::Readiness, None),
        None => (Group::named(service)?, None),
    };
    let snap = verdicts.snapshot.load_full();
    let policy = verdicts.policy.load();
    let only = match check {
        Some(name) => Some(snap.members(group).find(|c| c.name == name)?.clone()),
        None => None,
    };
    let v = verdict(
        &snap,
        group,
        only.as_ref(),
        &[],
        &policy,
        verdicts.draining(),
        false,
    );
    Some(if v.pass {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    })
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

/// The health service: verdicts from the snapshot, watchers fed by the follower.
#[derive(Clone)]
struct HealthFromSnapshot {
    verdicts: Verdicts,
    watched: Arc<Mutex<HashMap<String, watch::Sender<ServingStatus>>>>,
    watchers: Arc<Semaphore>,
}

impl HealthFromSnapshot {
    fn watched(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<ServingStatus>>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self, service: &str) -> ServingStatus {
        serving(&self.verdicts, service).unwrap_or(ServingStatus::ServiceUnknown)
    }

    /// Bring every watched service up to date; forget the ones nobody watches any more.
    fn refresh(&self) {
        let mut watched = self.watched();
        watched.retain(|_, tx| tx.receiver_count() > 0);
        for (service, tx) in watched.iter() {
            let now = self.current(service);
            tx.send_if_modified(|s| std::mem::replace(s, now) != now);
        }
    }

    /// Follow the verdicts until `stop`: refresh the watched services when a snapshot is
    /// published or the drain flag or policy changes (at most once per [`FOLLOW_GAP`]).
    async fn follow(self, stop: CancellationToken) {
        let mut published = self.verdicts.snapshot.load().pulse.subscribe();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = published.changed() => if changed.is_err() { return },
            }
            if !self.watched().is_empty() {
                self.refresh();
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(FOLLOW_GAP) => {}
            }
        }
    }
}

type WatchResponses = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, GrpcStatus>> + Send>>;

#[tonic::async_trait]
impl Health for HealthFromSnapshot {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, GrpcStatus> {
        let service = &request.get_ref().service;
        match serving(&self.verdicts, service) {
            Some(s) => Ok(Response::new(response(s))),
            None => Err(GrpcStatus::not_found(format!(
                "unknown service \"{}\" (use \"\", liveness, readiness, startup or GROUP/CHECK)",
                service
                    .escape_debug()
                    .to_string()
                    .chars()
                    .take(64)
                    .collect::<String>()
            ))),
        }
    }

    type WatchStream = WatchResponses;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, GrpcStatus> {
        let permit: OwnedSemaphorePermit =
            self.watchers.clone().try_acquire_owned().map_err(|_| {
                GrpcStatus::resource_exhausted("too many Watch streams open; try again later")
            })?;
        let service = request.into_inner().service;
        let rx = {
            let mut watched = self.watched();
            match watched.get(&service) {
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = watch::channel(self.current(&service));
                    watched.insert(service, tx);
                    rx
                }
            }
        };
        let stream = WatchStream::new(rx).map(move |s| {
            let _held = &permit;
            Ok(response(s))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Serve `grpc.health.v1` on `listener` until `stop`; open `Watch` streams end then too.
/// Run it on the probe lane (`lane.rs`): the listener is registered with the runtime it runs
/// on.
pub async fn serve(
    listener: std::net::TcpListener,
    verdicts: Verdicts,
    max_watchers: usize,
    stop: CancellationToken,
) {
    let service = HealthFromSnapshot {
        verdicts,
        watched: Arc::default(),
        watchers: Arc::new(Semaphore::new(max_watchers.max(1))),
    };
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot serve gRPC health on the listener.");
            return;
        }
    };
    tokio::spawn(service.clone().follow(stop.clone()));
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let ended = stop.clone();
    let server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(256)
        .timeout(Duration::from_secs(5))
        .add_service(HealthServer::new(WatchesEndOn {
            inner: service,
            stop: ended,
        }))
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned());
    if let Err(e) = server.await {
        tracing::warn!(error = %e, "The gRPC health server stopped.");
    }
}

/// The service with every `Watch` stream ending when the server stops (a graceful shutdown
/// waits for open streams, and a watch never ends by itself).
#[derive(Clone)]
struct WatchesEndOn {
    inner: HealthFromSnapshot,
    stop: CancellationToken,
}

#[tonic::async_trait]
impl Health for WatchesEndOn {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, GrpcStatus> {
        self.inner.check(request).await
    }

    type WatchStream = WatchResponses;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, GrpcStatus> {
        let stream = self.inner.watch(request).await?.into_inner();
        let stop = self.stop.clone().cancelled_owned();
        Ok(Response::new(Box::pin(stream.take_until(stop))))
    }
}
