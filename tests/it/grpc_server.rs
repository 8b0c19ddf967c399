//! healthd's own verdicts over `grpc.health.v1` (`[server.grpc]`), with a tonic client as
//! kubelet's `grpc:` probe (and once the official Python client): every service name, unknown
//! services, `Watch` following a dependency down and back, draining, and a thousand
//! concurrent `Check` calls.

use std::time::Duration;

use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::support::config::tcp_toml as tcp;
use crate::support::daemon::TestDaemon;
use crate::support::peers::{RefusingPort, Switch};

const MAIN: &str = "[server]\nshutdown_delay = \"2s\"\n\n[server.grpc]\nlisten = \"127.0.0.1:0\"\n\n[defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n";

async fn client(d: &TestDaemon) -> HealthClient<Channel> {
    let addr = d.daemon.grpc_addr.expect("grpc listener");
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the gRPC health server");
    HealthClient::new(channel)
}

async fn check(c: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, Code> {
    c.check(HealthCheckRequest {
        service: service.into(),
    })
    .await
    .map(|r| status_of(&r.into_inner()))
    .map_err(|s| s.code())
}

fn status_of(r: &HealthCheckResponse) -> ServingStatus {
    ServingStatus::try_from(r.status).expect("a known serving status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_answers_every_service_name_as_the_http_endpoints_do() {
    let up = Switch::new_up().await;
    let down = RefusingPort::new();
    let d = TestDaemon::start(&format!(
        "{MAIN}{}{}",
        tcp("api", up.port, ""),
        tcp("db", down.port, ""),
    ))
    .await;
    d.started().await;
    let mut c = client(&d).await;
    use ServingStatus::{NotServing, Serving};
    for (service, want) in [
        ("", NotServing),
        ("readiness", NotServing),
        ("readyz", NotServing),
        ("liveness", Serving),
        ("livez", Serving),
        ("startup", Serving),
        ("startupz", Serving),
        ("readiness/api", Serving),
        ("readiness/db", NotServing),
    ] {
        assert_eq!(
            check(&mut c, service).await,
            Ok(want),
            "service {service:?}"
        );
    }
    let (code, _) = d.get("/readyz").await;
    assert_eq!(code, 503, "HTTP agrees");
    for unknown in ["nope", "readiness/nope", "liveness/api", "readiness/"] {
        assert_eq!(
            check(&mut c, unknown).await,
            Err(Code::NotFound),
            "service {unknown:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_dependency_down_and_back_and_unknown_services_stay_open() {
    let mut peer = Switch::new_up().await;
    let d = TestDaemon::start(&format!("{MAIN}{}", tcp("db", peer.port, ""))).await;
    d.started().await;
    let mut c = client(&d).await;
    let mut ready = open_watch(&mut c, "readiness").await;
    let mut unknown = open_watch(&mut c, "readiness/later").await;
    assert_eq!(next(&mut ready).await, ServingStatus::Serving);
    assert_eq!(next(&mut unknown).await, ServingStatus::ServiceUnknown);
    peer.down().await;
    assert_eq!(next(&mut ready).await, ServingStatus::NotServing);
    peer.up().await;
    assert_eq!(next(&mut ready).await, ServingStatus::Serving);
}

/// A `Watch` stream on `service` (an unknown service is not an error: the stream stays open).
async fn open_watch(
    c: &mut HealthClient<Channel>,
    service: &str,
) -> tonic::Streaming<HealthCheckResponse> {
    c.watch(HealthCheckRequest {
        service: service.into(),
    })
    .await
    .expect("open a Watch stream")
    .into_inner()
}

/// The next message of a Watch stream, within 10 s.
async fn next(s: &mut tonic::Streaming<HealthCheckResponse>) -> ServingStatus {
    let m = tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("a Watch message within 10 s")
        .expect("stream ok")
        .expect("stream open");
    status_of(&m)
}

/// The follower wakes on publications, not on a timer: with a check that runs once an hour
/// nothing is published after start-up, and the drain alone must reach an open `Watch`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_the_drain_when_nothing_else_is_published() {
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!(
        "{MAIN}{}",
        tcp("api", up.port, "interval = \"1h\"")
    ))
    .await;
    d.started().await;
    let mut c = client(&d).await;
    let mut ready = open_watch(&mut c, "readiness").await;
    assert_eq!(next(&mut ready).await, ServingStatus::Serving);
    d.daemon.state.verdicts.start_draining();
    assert_eq!(next(&mut ready).await, ServingStatus::NotServing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_fails_readiness_but_not_liveness() {
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!("{MAIN}{}", tcp("api", up.port, ""))).await;
    d.started().await;
    let mut c = client(&d).await;
    assert_eq!(check(&mut c, "").await, Ok(ServingStatus::Serving));
    d.daemon.state.verdicts.start_draining();
    assert_eq!(check(&mut c, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&mut c, "readiness/api").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(check(&mut c, "liveness").await, Ok(ServingStatus::Serving));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_checks_leave_readyz_answering() {
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!("{MAIN}{}", tcp("api", up.port, ""))).await;
    d.started().await;
    let c = client(&d).await;
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move { check(&mut c, "readiness").await })
        })
        .collect();
    // While they run, the HTTP probe keeps answering.
    let (code, _) = d.get("/readyz").await;
    assert_eq!(code, 200);
    let mut serving = 0;
    for call in calls {
        if call.await.expect("task") == Ok(ServingStatus::Serving) {
            serving += 1;
        }
    }
    assert_eq!(serving, 1000, "every Check answered SERVING");
    assert_eq!(d.get("/readyz").await.0, 200);
}

/// The reference implementation's client (Python `grpcio-health-checking`) as kubelet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_python_client_reads_the_verdicts() {
    let up = Switch::new_up().await;
    let down = RefusingPort::new();
    let d = TestDaemon::start(&format!(
        "{MAIN}{}{}",
        tcp("api", up.port, ""),
        tcp("db", down.port, "critical = false"),
    ))
    .await;
    d.started().await;
    let addr = d.daemon.grpc_addr.expect("grpc listener");
    let python = crate::support::grpc::python_venv().join("bin/python3");
    let script = crate::support::repo_path("tests/it/support/grpc_health_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(addr.to_string())
        .args(["", "readiness", "liveness", "readiness/db", "nope"])
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "run {}: {e} (scripts/test creates the venv)",
                python.display()
            )
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text,
        "(overall) SERVING\nreadiness SERVING\nliveness SERVING\nreadiness/db SERVING\nnope NOT_FOUND\n"
    );
}
