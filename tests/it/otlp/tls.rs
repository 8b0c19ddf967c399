//! Export over mutual TLS, gRPC and HTTP/protobuf, with the configured CA and client
//! certificate; without the client certificate the collector refuses the handshake.

use std::net::SocketAddr;
use std::time::Duration;

use super::decode::resource_of;
use super::receiver::{Inbox, Pki, Receiver};
use super::{checks_config, full_export, stop, tcp_target};
use crate::support::daemon::{TestDaemon, is};
use crate::support::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_mutual_tls_with_configured_ca_and_client_certificate() {
    let pki = Pki::new();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::grpc_mtls(addr, inbox.clone(), &pki).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"https://{addr}\"\ninterval = \"400ms\"\ntimeout = \"350ms\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        checks_config(tcp_port),
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    let (_, req) = full_export(&inbox, 0).await;
    assert_eq!(resource_of(&req)["service.name"], "healthd");
    d.wait_check(
        "telemetry",
        "telemetry healthy over TLS",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;
    stop(d).await;

    // Without the client certificate the collector refuses the handshake.
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"https://{addr}\"\ninterval = \"400ms\"\ntimeout = \"350ms\"\nca_file = \"{}\"\n",
        checks_config(tcp_port),
        pki.path("ca.pem"),
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    d.wait_check(
        "telemetry",
        "telemetry degraded without a client certificate",
        Duration::from_secs(20),
        |c| is(c, "degraded"),
    )
    .await;
    stop(d).await;
    receiver.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_mutual_tls_with_configured_ca_and_client_certificate() {
    let pki = Pki::new();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::https_mtls(addr, inbox.clone(), &pki).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"https://{addr}/v1/metrics\"\nprotocol = \"http/protobuf\"\ninterval = \"400ms\"\ntimeout = \"350ms\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        checks_config(tcp_port),
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    let (_, req) = full_export(&inbox, 0).await;
    assert_eq!(resource_of(&req)["service.name"], "healthd");
    d.wait_check(
        "telemetry",
        "telemetry healthy over HTTPS",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;
    stop(d).await;
    receiver.kill().await;
}
