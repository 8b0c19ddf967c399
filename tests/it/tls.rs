//! `kind = "tls"` against rustls servers on loopback presenting certificates made in the test
//! (rcgen): 60, 15 and 3 days left, expired, not yet valid, self-signed, the wrong name, an
//! untrusted CA; SNI; a port that is not TLS, one that refuses and one that never answers;
//! and the `not_after` gauge on `/metrics`, kept while the certificate is expired.

use std::time::Duration;

use healthd::config::CheckConfig;
use healthd::model::{Level, Outcome, Reason};
use healthd::scheduler::run_once;
use serde_json::Value;

use crate::support::config::one_check;
use crate::support::daemon::{TestDaemon, is};
use crate::support::peers::{HttpPeer, RefusingPort, SilentPeer};
use crate::support::pki::{Pki, Served, TlsPeer, Valid, self_signed};
use crate::support::{eventually_async, promtool_check_metrics, toml_path};

fn tls_check(port: u16, extra: &str) -> CheckConfig {
    one_check(&format!(
        "[[checks]]\nname = \"cert\"\nkind = \"tls\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         interval = \"10s\"\ntimeout = \"1s\"\n{extra}\n"
    ))
}

async fn probe(port: u16, extra: &str) -> Outcome {
    run_once(&mut None, &tls_check(port, extra)).await
}

fn detail<'a>(o: &'a Outcome, key: &str) -> &'a Value {
    o.details.get(key).unwrap_or(&Value::Null)
}

/// A CA and `ca_file = …` for it (the temp dir lives as long as the returned guard).
fn trusted(pki: &Pki) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.write_ca(dir.path(), "ca.pem");
    (dir, format!("ca_file = {}", toml_path(&ca)))
}

async fn serve(served: &Served) -> TlsPeer {
    TlsPeer::start(served.server_config()).await
}

#[tokio::test]
async fn sixty_days_left_is_healthy_with_every_detail() {
    let pki = Pki::new("healthd test CA");
    let served = pki.server(&["127.0.0.1", "localhost"], Valid::for_days(60));
    let peer = serve(&served).await;
    let (_dir, ca) = trusted(&pki);

    let o = probe(peer.port(), &ca).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert!(o.message.contains("expires in 60.0 days"), "{}", o.message);
    assert!(o.message.ends_with("verified"), "{}", o.message);
    assert_eq!(detail(&o, "verified"), true);
    assert_eq!(detail(&o, "subject"), "CN=127.0.0.1");
    assert_eq!(detail(&o, "issuer"), "CN=healthd test CA");
    assert_eq!(
        detail(&o, "sans"),
        &serde_json::json!(["127.0.0.1", "localhost"])
    );
    assert_eq!(detail(&o, "tls_version"), "TLSv1.3");
    assert_eq!(detail(&o, "chain_length"), 2);
    assert_eq!(detail(&o, "server_name"), "127.0.0.1");
    let days = detail(&o, "days_left").as_f64().unwrap_or(0.0);
    assert!((59.9..=60.0).contains(&days), "{days}");
    let sha = ring::digest::digest(&ring::digest::SHA256, served.chain[0].as_ref());
    let hex: String = sha.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(detail(&o, "sha256"), hex.as_str());
    let serial = detail(&o, "serial").as_str().unwrap_or("");
    assert!(
        !serial.is_empty() && serial.chars().all(|c| c.is_ascii_hexdigit()),
        "{serial}"
    );
    assert!(
        detail(&o, "not_after")
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{o:?}"
    );
    assert!(o.sample.is_some(), "the not_after sample is set");
}

#[tokio::test]
async fn fifteen_days_left_is_degraded_and_three_fail() {
    let pki = Pki::new("healthd test CA");
    let (_dir, ca) = trusted(&pki);
    let fifteen = serve(&pki.server(&["127.0.0.1"], Valid::for_days(15))).await;
    let three = serve(&pki.server(&["127.0.0.1"], Valid::for_days(3))).await;

    let o = probe(fifteen.port(), &ca).await;
    assert_eq!(o.level, Level::Degraded, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Threshold));
    assert!(
        o.message.contains("expires in 15.0 days")
            && o.message.contains("degraded_within (21days)"),
        "{}",
        o.message
    );

    let o = probe(three.port(), &ca).await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Threshold));
    assert!(
        o.message.contains("unhealthy_within (7days)"),
        "{}",
        o.message
    );

    // The thresholds are the check's to set.
    let o = probe(
        fifteen.port(),
        &format!("{ca}\ndegraded_within = \"10d\"\nunhealthy_within = \"2d\""),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    let o = probe(
        three.port(),
        &format!("{ca}\ndegraded_within = \"10d\"\nunhealthy_within = \"2d\""),
    )
    .await;
    assert_eq!(o.level, Level::Degraded, "{o:?}");
}

#[tokio::test]
async fn expired_certificate_fails_and_is_still_read() {
    let pki = Pki::new("healthd test CA");
    let (_dir, ca) = trusted(&pki);
    let peer = serve(&pki.server(&["127.0.0.1"], Valid { from: -30, to: -2 })).await;

    let o = probe(peer.port(), &ca).await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Tls));
    assert!(
        o.message
            .starts_with("certificate for 127.0.0.1 expired 2.0 days ago"),
        "{}",
        o.message
    );
    // The chain was read: everything is still reported.
    assert_eq!(detail(&o, "subject"), "CN=127.0.0.1");
    assert_eq!(detail(&o, "verified"), false);
    assert!(
        detail(&o, "days_left")
            .as_f64()
            .is_some_and(|d| d < -1.9 && d > -2.1)
    );
    assert!(o.sample.is_some());
}

#[tokio::test]
async fn an_expired_ca_in_the_chain_is_named() {
    let pki = Pki::with_validity("old CA", Valid { from: -400, to: -1 });
    let (_dir, ca) = trusted(&pki);
    let peer = serve(&pki.server(&["127.0.0.1"], Valid::for_days(60))).await;
    let o = probe(peer.port(), &ca).await;
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");
    assert!(
        o.message
            .starts_with("chain certificate CN=old CA expired 1 day ago"),
        "{}",
        o.message
    );
    assert_eq!(detail(&o, "earliest_expiring"), "CN=old CA");
}

#[tokio::test]
async fn not_yet_valid_fails() {
    let pki = Pki::new("healthd test CA");
    let (_dir, ca) = trusted(&pki);
    let peer = serve(&pki.server(&["127.0.0.1"], Valid { from: 2, to: 90 })).await;
    let o = probe(peer.port(), &ca).await;
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");
    assert!(
        o.message
            .starts_with("certificate for 127.0.0.1 is not valid yet (not before "),
        "{}",
        o.message
    );
}

#[tokio::test]
async fn self_signed_fails_unless_insecure_skip_verify() {
    let peer = serve(&self_signed(&["127.0.0.1"], Valid::for_days(60))).await;

    let o = probe(peer.port(), "").await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Tls));
    assert_eq!(
        o.message,
        "certificate for 127.0.0.1 does not verify: self-signed, and not a trusted root"
    );
    assert_eq!(detail(&o, "verified"), false);
    assert_eq!(detail(&o, "chain_length"), 1);

    // Dates still judged; `verified` still says the truth.
    let o = probe(peer.port(), "insecure_skip_verify = true").await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert!(
        o.message.ends_with("not verified (insecure_skip_verify)"),
        "{}",
        o.message
    );
    assert_eq!(detail(&o, "verified"), false);
    assert!(
        detail(&o, "verify_error")
            .as_str()
            .is_some_and(|e| e.contains("self-signed"))
    );
}

#[tokio::test]
async fn untrusted_ca_and_wrong_name_fail_saying_which() {
    let pki = Pki::new("healthd test CA");
    let (_dir, ca) = trusted(&pki);
    let wrong_name = serve(&pki.server(&["other.example"], Valid::for_days(60))).await;
    let o = probe(wrong_name.port(), &ca).await;
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");
    assert_eq!(
        o.message,
        "certificate for 127.0.0.1 does not verify: not valid for this name (valid for other.example)"
    );

    // The right name, given as server_name (sent as SNI), verifies.
    let o = probe(
        wrong_name.port(),
        &format!("{ca}\nserver_name = \"other.example\""),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    // The server records a handshake when it completes on its side, a moment later.
    let sni = eventually_async("two handshakes seen", Duration::from_secs(5), || async {
        let sni = wrong_name.sni.lock().unwrap().clone();
        (sni.len() == 2).then_some(sni)
    })
    .await;
    assert_eq!(sni[1], Some("other.example".to_string()), "{sni:?}");
    // An IP address is sent no SNI.
    assert_eq!(sni[0], None, "{sni:?}");

    // Without the CA (system roots only): an issuer nobody here trusts.
    let o = probe(wrong_name.port(), "server_name = \"other.example\"").await;
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");
    assert_eq!(
        o.message,
        "certificate for other.example does not verify: issuer not trusted (CN=healthd test CA)"
    );
}

#[tokio::test]
async fn each_run_reads_the_certificate_again() {
    let pki = Pki::new("healthd test CA");
    let (_dir, ca) = trusted(&pki);
    let peer = serve(&pki.server(&["127.0.0.1"], Valid::for_days(60))).await;
    let check = tls_check(peer.port(), &ca);
    let mut p = None;
    for _ in 0..3 {
        let o = run_once(&mut p, &check).await;
        assert_eq!(o.level, Level::Ok, "{o:?}");
    }
    // No session resumption: three full handshakes, three chains read.
    let handshakes = || peer.handshakes.load(std::sync::atomic::Ordering::SeqCst);
    eventually_async("three handshakes", Duration::from_secs(5), || async {
        (handshakes() >= 3).then_some(())
    })
    .await;
    assert_eq!(handshakes(), 3);
}

#[tokio::test]
async fn not_tls_refused_and_silent_ports() {
    let http = HttpPeer::start().await;
    let o = probe(http.addr.port(), "").await;
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");
    assert!(
        o.message.starts_with("TLS handshake with 127.0.0.1:"),
        "{}",
        o.message
    );
    assert!(o.sample.is_none());

    let refusing = RefusingPort::new();
    let o = probe(refusing.port, "").await;
    assert_eq!(o.reason, Some(Reason::Connect), "{o:?}");

    let silent = SilentPeer::start().await;
    let started = std::time::Instant::now();
    let o = probe(silent.port(), "").await;
    assert_eq!(o.reason, Some(Reason::Timeout), "{o:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let errors = crate::support::config::ConfigDir::new(&format!(
        "[[checks]]\nname = \"cert\"\nkind = \"tls\"\nhost = \"127.0.0.1\"\nca_file = {}\n\
         degraded_within = \"3d\"\n",
        toml_path(&empty)
    ))
    .load()
    .expect_err("invalid");
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let text = text.join("\n");
    assert!(
        text.contains("checks.\"cert\".degraded_within: must be longer than unhealthy_within"),
        "{text}"
    );
    assert!(
        text.contains("checks.\"cert\".ca_file: no PEM certificate in"),
        "{text}"
    );
    let errors = crate::support::config::ConfigDir::new(
        "[[checks]]\nname = \"cert\"\nkind = \"tls\"\nhost = \"db\"\nstarttls = \"postgres\"\n",
    )
    .load()
    .expect_err("starttls is not supported");
    assert!(errors[0].to_string().contains("starttls"), "{errors:?}");
}

/// The `not_after` gauge: one series per tls check, with the chain's earliest `not_after`,
/// still there while the certificate is expired, and valid for promtool.
#[tokio::test]
async fn not_after_gauge_is_exported_while_expired() {
    let pki = Pki::new("healthd test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path(), "ca.pem");
    let good = pki.server(&["127.0.0.1"], Valid::for_days(60));
    let expired = pki.server(&["127.0.0.1"], Valid { from: -30, to: -2 });
    let (good_peer, expired_peer) = (serve(&good).await, serve(&expired).await);
    let check = |name: &str, port: u16| {
        format!(
            "[[checks]]\nname = \"{name}\"\nkind = \"tls\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             ca_file = {}\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
            toml_path(&ca)
        )
    };
    let d = TestDaemon::start(&format!(
        "{}{}",
        check("good", good_peer.port()),
        check("expired", expired_peer.port())
    ))
    .await;
    d.wait_check("expired", "unhealthy", Duration::from_secs(10), |c| {
        is(c, "unhealthy")
    })
    .await;
    d.wait_check("good", "healthy", Duration::from_secs(10), |c| {
        is(c, "healthy")
    })
    .await;

    let (_, metrics) = d.get("/metrics").await;
    let value = |name: &str| -> f64 {
        let prefix = format!(
            "healthd_tls_cert_not_after_seconds{{healthd_check_name=\"{name}\",healthd_check_kind=\"tls\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} series in:\n{metrics}"))
    };
    let not_after = |s: &Served| -> f64 {
        let c = healthd_not_after(s);
        c as f64
    };
    assert_eq!(value("good"), not_after(&good));
    assert_eq!(value("expired"), not_after(&expired));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(value("expired") < now && value("good") > now + 59.0 * 86_400.0);
    let (ok, out) = promtool_check_metrics(&metrics);
    assert!(ok, "promtool: {out}");
}

/// The certificate's own not_after, read with x509-cert as a client would.
fn healthd_not_after(s: &Served) -> u64 {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(s.chain[0].as_ref())
        .expect("parse")
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs()
}
