//! `kind = "grpc"` against real gRPC servers on loopback: tonic with `tonic-health` switched
//! between SERVING and NOT_SERVING on one kept connection, an unknown service, a server
//! without the health service, SERVICE_UNKNOWN, a server that hangs, TLS and client
//! certificates, `:authority` and metadata (tokens never shown), a server restart, and the
//! reference implementation (Python's `grpcio-health-checking`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use healthd::config::CheckConfig;
use healthd::model::{Level, Outcome, Reason};
use healthd::scheduler::run_once;
use serde_json::Value;
use tonic_health::ServingStatus;

use crate::support::config::{ConfigDir, one_check};
use crate::support::daemon::{Subprocess, assert_no_secret, is};
use crate::support::grpc::{GrpcPeer, HANG, PythonPeer, Scripted, Setup};
use crate::support::peers::{RefusingPort, SilentPeer};
use crate::support::pki::{Pki, Valid};
use crate::support::{toml_path, unique_secret, write_secret};

fn grpc_check(port: u16, extra: &str) -> CheckConfig {
    one_check(&format!(
        "[[checks]]\nname = \"g\"\nkind = \"grpc\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         interval = \"10s\"\ntimeout = \"1s\"\n{extra}\n"
    ))
}

fn detail<'a>(o: &'a Outcome, key: &str) -> &'a Value {
    o.details.get(key).unwrap_or(&Value::Null)
}

#[tokio::test]
async fn serving_and_not_serving_on_one_kept_connection() {
    let peer = GrpcPeer::start().await;
    let check = grpc_check(peer.port(), "");
    let mut probe = None;

    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(
        o.message,
        format!("grpc://127.0.0.1:{} (whole server) is SERVING", peer.port())
    );
    assert_eq!(detail(&o, "serving_status"), "SERVING");
    assert_eq!(detail(&o, "grpc_code"), "OK");
    assert!(detail(&o, "connect_ms").is_number(), "{o:?}");

    peer.set("", ServingStatus::NotServing).await;
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Status));
    assert!(
        o.message.ends_with("(whole server) is NOT_SERVING"),
        "{}",
        o.message
    );
    assert_eq!(detail(&o, "serving_status"), "NOT_SERVING");
    assert!(detail(&o, "connect_ms").is_null(), "kept connection: {o:?}");

    peer.set("", ServingStatus::Unknown).await;
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.reason, Some(Reason::Status), "{o:?}");
    assert!(
        o.message
            .ends_with("answered UNKNOWN (the server does not know its state)"),
        "{}",
        o.message
    );
    assert_eq!(detail(&o, "serving_status"), "UNKNOWN");

    peer.set("", ServingStatus::Serving).await;
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(
        peer.connections.load(Ordering::SeqCst),
        1,
        "one HTTP/2 connection for every run"
    );
}

#[tokio::test]
async fn a_named_service_and_an_unknown_one() {
    let peer = GrpcPeer::start().await;
    peer.set("healthd.test.Api", ServingStatus::Serving).await;
    let o = run_once(
        &mut None,
        &grpc_check(peer.port(), "service = \"healthd.test.Api\""),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert!(
        o.message
            .ends_with("service \"healthd.test.Api\" is SERVING"),
        "{}",
        o.message
    );

    let o = run_once(
        &mut None,
        &grpc_check(peer.port(), "service = \"healthd.test.Nope\""),
    )
    .await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Status));
    assert!(
        o.message.ends_with(
            "service \"healthd.test.Nope\": the server does not know this service (NOT_FOUND)"
        ),
        "{}",
        o.message
    );
    assert_eq!(detail(&o, "grpc_code"), "NOT_FOUND");
}

#[tokio::test]
async fn a_server_without_the_health_service_is_protocol() {
    let peer = GrpcPeer::start_with(Setup {
        no_health: true,
        ..Setup::default()
    })
    .await;
    let o = run_once(&mut None, &grpc_check(peer.port(), "")).await;
    assert_eq!(o.reason, Some(Reason::Protocol), "{o:?}");
    assert_eq!(
        o.message,
        format!(
            "grpc://127.0.0.1:{}: the server does not implement grpc.health.v1",
            peer.port()
        )
    );
    assert_eq!(detail(&o, "grpc_code"), "UNIMPLEMENTED");
}

#[tokio::test]
async fn service_unknown_is_told_apart() {
    let server = Scripted::start(3).await;
    let o = run_once(&mut None, &grpc_check(server.port(), "service = \"x\"")).await;
    assert_eq!(o.reason, Some(Reason::Status), "{o:?}");
    assert!(
        o.message
            .ends_with("answered SERVICE_UNKNOWN (no such service)"),
        "{}",
        o.message
    );
    assert_eq!(detail(&o, "serving_status"), "SERVICE_UNKNOWN");
}

#[tokio::test]
async fn a_hung_server_times_out_and_the_next_run_reconnects() {
    let server = Scripted::start(HANG).await;
    let check = CheckConfig {
        timeout: Duration::from_millis(300),
        ..grpc_check(server.port(), "")
    };
    let mut probe = None;
    let started = Instant::now();
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.reason, Some(Reason::Timeout), "{o:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Answers again: the connection of the cut-off run is replaced.
    server.answer.store(1, Ordering::SeqCst);
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);

    // A peer that accepts TCP and never speaks HTTP/2.
    let silent = SilentPeer::start().await;
    let check = CheckConfig {
        timeout: Duration::from_millis(300),
        ..grpc_check(silent.port(), "")
    };
    let o = run_once(&mut None, &check).await;
    assert_eq!(o.reason, Some(Reason::Timeout), "{o:?}");
}

#[tokio::test]
async fn refused_then_a_restarted_server_is_found_again() {
    let refusing = RefusingPort::new();
    let o = run_once(&mut None, &grpc_check(refusing.port, "")).await;
    assert_eq!(o.reason, Some(Reason::Connect), "{o:?}");

    let peer = GrpcPeer::start().await;
    let addr = peer.addr;
    let check = grpc_check(addr.port(), "");
    let mut probe = None;
    assert_eq!(run_once(&mut probe, &check).await.level, Level::Ok);
    // Shutdown (GOAWAY, connections closed), then up again on the same port: the kept
    // connection is found broken and replaced within the run.
    peer.stop().await;
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.reason, Some(Reason::Connect), "down: {o:?}");
    let peer = GrpcPeer::start_on(addr).await;
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(peer.connections.load(Ordering::SeqCst), 1);

    // Restarted while the check was idle: the run finds its connection gone and succeeds on
    // a new one, without reporting a failure.
    peer.stop().await;
    let peer = GrpcPeer::start_on(addr).await;
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert!(detail(&o, "connect_ms").is_number(), "reconnected: {o:?}");
    assert_eq!(peer.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tls_with_the_ca_a_server_name_or_insecure_skip_verify() {
    let pki = Pki::new("healthd grpc CA");
    let served = pki.server(&["grpc.test"], Valid::for_days(30));
    let peer = GrpcPeer::start_with(Setup {
        tls: Some(&served),
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = format!(
        "ca_file = {}",
        toml_path(&pki.write_ca(dir.path(), "ca.pem"))
    );

    let o = run_once(
        &mut None,
        &grpc_check(
            peer.port(),
            &format!("tls = true\n{ca}\nserver_name = \"grpc.test\""),
        ),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert!(o.message.starts_with("grpcs://127.0.0.1:"), "{}", o.message);

    // The name defaults to the authority's host.
    let o = run_once(
        &mut None,
        &grpc_check(
            peer.port(),
            &format!("tls = true\n{ca}\nauthority = \"grpc.test\""),
        ),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");

    // The certificate does not name 127.0.0.1.
    let o = run_once(
        &mut None,
        &grpc_check(peer.port(), &format!("tls = true\n{ca}")),
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");
    assert!(
        o.message.contains("TLS handshake with 127.0.0.1:"),
        "{}",
        o.message
    );

    // System roots only: the issuer is not trusted.
    let o = run_once(
        &mut None,
        &grpc_check(peer.port(), "tls = true\nserver_name = \"grpc.test\""),
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");

    let o = run_once(
        &mut None,
        &grpc_check(peer.port(), "tls = true\ninsecure_skip_verify = true"),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");

    // Plaintext HTTP/2 to a TLS port is not an answer.
    let o = run_once(&mut None, &grpc_check(peer.port(), "")).await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new("healthd grpc CA");
    let served = pki.server(&["127.0.0.1"], Valid::for_days(30));
    let peer = GrpcPeer::start_with(Setup {
        tls: Some(&served),
        client_ca: Some(&pki),
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = format!(
        "tls = true\nca_file = {}",
        toml_path(&pki.write_ca(dir.path(), "ca.pem"))
    );
    let o = run_once(&mut None, &grpc_check(peer.port(), &ca)).await;
    assert_eq!(o.level, Level::Failed, "no client certificate: {o:?}");

    let (cert, key) = pki.client("healthd").write(dir.path(), "client");
    let o = run_once(
        &mut None,
        &grpc_check(
            peer.port(),
            &format!(
                "{ca}\nclient_cert = {}\nclient_key = {}",
                toml_path(&cert),
                toml_path(&key)
            ),
        ),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
}

#[tokio::test]
async fn authority_and_metadata_reach_the_server() {
    let token = unique_secret("tok");
    let peer = GrpcPeer::start_with(Setup {
        token: Some(format!("Bearer {token}")),
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let good = write_secret(&dir.path().join("good"), &format!("Bearer {token}"));
    let o = run_once(
        &mut None,
        &grpc_check(
            peer.port(),
            &format!(
                "authority = \"api.internal:443\"\nmetadata = {{ x-tenant = \"blue\" }}\n\
                 metadata_file = {{ authorization = {} }}",
                toml_path(&good)
            ),
        ),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    let seen = peer.seen.lock().unwrap().clone();
    assert_eq!(seen, [("api.internal:443".to_string(), "blue".to_string())]);

    // A wrong token: the server's answer echoes it, the message must not.
    let wrong = unique_secret("wrong");
    let bad = write_secret(&dir.path().join("bad"), &wrong);
    let o = run_once(
        &mut None,
        &grpc_check(
            peer.port(),
            &format!("metadata_file = {{ authorization = {} }}", toml_path(&bad)),
        ),
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Auth), "{o:?}");
    assert!(
        o.message.contains("UNAUTHENTICATED bad token \"***\""),
        "{}",
        o.message
    );
    assert!(!format!("{o:?}").contains(&wrong), "{o:?}");
}

/// Through the daemon, with the token in an environment variable: it appears on no surface
/// and in no log line, also when the server echoes it back.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_never_leak() {
    let peer = GrpcPeer::start_with(Setup {
        token: Some("expected".into()),
        ..Setup::default()
    })
    .await;
    let secret = unique_secret("grpctoken");
    let dir = ConfigDir::new(&format!(
        "[[checks]]\nname = \"api\"\nkind = \"grpc\"\nhost = \"127.0.0.1\"\nport = {}\n\
         interval = \"200ms\"\ntimeout = \"150ms\"\nfailure_threshold = 1\n\
         metadata_env = {{ authorization = \"API_TOKEN\" }}\n",
        peer.port()
    ));
    let d = tokio::task::block_in_place(|| {
        Subprocess::start_debug(&dir, &[("API_TOKEN", secret.as_str())])
    });
    let client = d.client();
    let c = client
        .wait_check("api", "unhealthy", Duration::from_secs(15), |c| {
            is(c, "unhealthy")
        })
        .await;
    assert_eq!(c["reason"], "auth", "{c:#}");
    let surfaces = client.every_surface("api").await;
    let logs = d.stop();
    assert_no_secret(&[("endpoints", &surfaces), ("logs", &logs)], &[&secret]);
    assert!(surfaces.contains("bad token"), "{surfaces}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_python_server() {
    let mut py = tokio::task::block_in_place(PythonPeer::start);
    let port = py.port;
    let mut probe = None;
    let check = grpc_check(port, "");
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(detail(&o, "serving_status"), "SERVING");

    tokio::task::block_in_place(|| py.set("", "NOT_SERVING"));
    let o = run_once(&mut probe, &check).await;
    assert_eq!(o.reason, Some(Reason::Status), "{o:?}");
    assert_eq!(detail(&o, "serving_status"), "NOT_SERVING");

    tokio::task::block_in_place(|| py.set("healthd.test.Api", "SERVING"));
    let o = run_once(
        &mut None,
        &grpc_check(port, "service = \"healthd.test.Api\""),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");

    let o = run_once(
        &mut None,
        &grpc_check(port, "service = \"healthd.test.Nope\""),
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Status), "{o:?}");
    assert_eq!(detail(&o, "grpc_code"), "NOT_FOUND");
}
