//! The `tls` kind's certificate expiry over OTLP: `healthd.tls.cert.not_after` (unit `s`, a
//! gauge) per tls check, exported while the certificate is expired, under the name
//! `/metrics` translates to `healthd_tls_cert_not_after_seconds`.

use std::net::SocketAddr;
use std::time::Duration;

use super::decode::{points, prometheus_name};
use super::receiver::{Inbox, Receiver};
use super::stop;
use crate::support::daemon::TestDaemon;
use crate::support::pki::{Pki, TlsPeer, Valid};
use crate::support::{eventually_async, free_port, toml_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_after_is_exported_while_expired() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::grpc(addr, inbox.clone()).await;
    let pki = Pki::new("healthd test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path(), "ca.pem");
    let expired = pki.server(&["127.0.0.1"], Valid { from: -30, to: -2 });
    let peer = TlsPeer::start(expired.server_config()).await;
    let d = TestDaemon::start(&format!(
        "[[checks]]\nname = \"old-cert\"\nkind = \"tls\"\nhost = \"127.0.0.1\"\nport = {}\n\
         ca_file = {}\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\n\
         [telemetry]\nendpoint = \"http://{addr}\"\nprotocol = \"grpc\"\ninterval = \"300ms\"\n\
         timeout = \"250ms\"\n",
        peer.port(),
        toml_path(&ca)
    ))
    .await;

    let point = eventually_async("a not_after point", Duration::from_secs(20), || async {
        let all = inbox.metrics.lock().unwrap();
        all.iter()
            .flat_map(|(_, r)| points(r))
            .find(|p| p.metric == "healthd.tls.cert.not_after")
    })
    .await;
    assert_eq!(point.unit, "s");
    assert_eq!(point.kind, "gauge");
    assert_eq!(point.attrs["healthd.check.name"], "old-cert");
    assert_eq!(point.attrs["healthd.check.kind"], "tls");
    assert_eq!(
        prometheus_name(&point),
        "healthd_tls_cert_not_after_seconds"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let days_ago = (now - point.value) / 86_400.0;
    assert!((1.9..2.1).contains(&days_ago), "{point:?}");
    let c = d.check("old-cert").await;
    assert_eq!(c["reason"], "tls", "{c:#}");
    stop(d).await;
    receiver.kill().await;
}
