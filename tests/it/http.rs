//! `kind = "http"` against a real axum upstream on loopback (200, 500, 301, a wrong body, a
//! slow answer) and a real TLS server with a certificate made in the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use healthd::config::CheckConfig;
use healthd::model::{Level, Outcome, Reason};
use healthd::scheduler::run_once;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::support::config::{ConfigDir, one_check};
use crate::support::daemon::TestDaemon;
use crate::support::peers::RefusingPort;
use crate::support::{eventually_async, install_crypto};

#[derive(serde::Deserialize)]
struct Slow {
    ms: u64,
}

fn upstream_routes() -> Router {
    Router::new()
        .route("/ok", get(|| async { "status: all good" }))
        .route(
            "/error",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/unavailable",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "busy") }),
        )
        .route(
            "/teapot",
            get(|| async { (StatusCode::IM_A_TEAPOT, "tea") }),
        )
        .route(
            "/moved",
            get(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/ok")]) }),
        )
        .route("/wrong", get(|| async { "status: on fire" }))
        .route(
            "/slow",
            get(|Query(q): Query<Slow>| async move {
                tokio::time::sleep(Duration::from_millis(q.ms)).await;
                "slow but fine"
            }),
        )
        .route(
            "/header",
            get(|h: HeaderMap| async move {
                match h.get("x-probe").and_then(|v| v.to_str().ok()) {
                    Some("healthd") => (StatusCode::OK, "header seen").into_response(),
                    _ => (StatusCode::BAD_REQUEST, "no header").into_response(),
                }
            }),
        )
}

/// Serve the upstream on 127.0.0.1:0; returns the base URL.
async fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, upstream_routes()).await;
    });
    format!("http://{addr}")
}

fn http_check(url: &str, extra: &str, timeout: &str) -> CheckConfig {
    one_check(&format!(
        "[[checks]]\nname = \"web\"\nkind = \"http\"\nurl = \"{url}\"\n\
         interval = \"10s\"\ntimeout = \"{timeout}\"\n{extra}\n"
    ))
}

async fn probe(url: &str, extra: &str) -> Outcome {
    run_once(&mut None, &http_check(url, extra, "3s")).await
}

fn status_code(o: &Outcome) -> Option<u64> {
    o.details.get("status_code").and_then(|v| v.as_u64())
}

#[tokio::test]
async fn ok_answer_is_healthy() {
    let base = upstream().await;
    let o = probe(&format!("{base}/ok"), "").await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(status_code(&o), Some(200));
}

#[tokio::test]
async fn server_error_fails_with_status_by_default() {
    let base = upstream().await;
    let o = probe(&format!("{base}/error"), "").await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Status));
    assert_eq!(status_code(&o), Some(500));
    assert!(o.message.contains("500"), "{}", o.message);
}

#[tokio::test]
async fn status_sets_accept_codes_and_ranges() {
    let base = upstream().await;
    let set = "expect_status = [200, \"500-503\"]";
    for path in ["/ok", "/error", "/unavailable"] {
        let o = probe(&format!("{base}{path}"), set).await;
        assert_eq!(o.level, Level::Ok, "{path}: {o:?}");
    }
    let o = probe(&format!("{base}/teapot"), set).await;
    assert_eq!(o.reason, Some(Reason::Status), "{o:?}");
    assert_eq!(status_code(&o), Some(418));
}

#[tokio::test]
async fn body_substring_and_regex() {
    let base = upstream().await;
    let o = probe(&format!("{base}/ok"), "body_contains = \"all good\"").await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    let o = probe(&format!("{base}/wrong"), "body_contains = \"all good\"").await;
    assert_eq!(o.reason, Some(Reason::Body), "{o:?}");
    assert!(o.message.contains("\"all good\""), "{}", o.message);

    let re = "body_regex = '^status: (all|mostly) good$'";
    let o = probe(&format!("{base}/ok"), re).await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    let o = probe(&format!("{base}/wrong"), re).await;
    assert_eq!(o.reason, Some(Reason::Body), "{o:?}");
}

#[tokio::test]
async fn request_headers_are_sent() {
    let base = upstream().await;
    let o = probe(
        &format!("{base}/header"),
        "headers = { x-probe = \"healthd\" }",
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    let o = probe(&format!("{base}/header"), "").await;
    assert_eq!(status_code(&o), Some(400), "{o:?}");
}

#[tokio::test]
async fn slower_than_degraded_after_is_degraded() {
    let base = upstream().await;
    let o = probe(&format!("{base}/slow?ms=400"), "degraded_after = \"100ms\"").await;
    assert_eq!(o.level, Level::Degraded, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Threshold), "{o:?}");
    assert!(o.message.contains("slower than 100ms"), "{}", o.message);
    let o = probe(&format!("{base}/ok"), "degraded_after = \"1s\"").await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
}

#[tokio::test]
async fn slow_answer_times_out_within_the_timeout() {
    let base = upstream().await;
    let check = http_check(&format!("{base}/slow?ms=5000"), "", "500ms");
    let started = Instant::now();
    let o = run_once(&mut None, &check).await;
    let elapsed = started.elapsed();
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Timeout), "{o:?}");
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(500) + Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn refused_connection_is_connect() {
    let refusing = RefusingPort::new();
    let o = probe(&format!("http://127.0.0.1:{}/", refusing.port), "").await;
    assert_eq!(o.reason, Some(Reason::Connect), "{o:?}");
}

#[tokio::test]
async fn unresolvable_host_is_dns() {
    let o = probe("http://no-such-host.invalid/", "").await;
    assert_eq!(o.reason, Some(Reason::Dns), "{o:?}");
}

#[tokio::test]
async fn redirects_are_judged_as_is_unless_followed() {
    let base = upstream().await;
    let url = format!("{base}/moved");
    // Default: not followed; 301 is inside the default 200-399.
    let o = probe(&url, "").await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(status_code(&o), Some(301));
    // Not followed, and only 200 accepted: the 301 fails.
    let o = probe(&url, "expect_status = [200]").await;
    assert_eq!(o.reason, Some(Reason::Status), "{o:?}");
    assert_eq!(status_code(&o), Some(301));
    // Followed: the final answer is judged.
    let o = probe(&url, "expect_status = [200]\nfollow_redirects = true").await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
    assert_eq!(status_code(&o), Some(200));
    let o = probe(
        &url,
        "follow_redirects = true\nbody_contains = \"all good\"",
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");
}

#[tokio::test]
async fn credentials_in_the_url_never_show() {
    let base = upstream().await;
    let secret = "s3cr3t-pa55word";
    let with_creds = base.replace("http://", &format!("http://probe-user:{secret}@"));
    for url in [
        format!("{with_creds}/error"),
        format!("{with_creds}/wrong"),
        format!("{with_creds}/ok"),
    ] {
        let o = probe(&url, "body_contains = \"all good\"").await;
        assert!(
            !o.message.contains(secret),
            "secret in message: {}",
            o.message
        );
        assert!(
            !o.message.contains("probe-user"),
            "user in message: {}",
            o.message
        );
        let details = serde_json::to_string(&o.details).unwrap();
        assert!(!details.contains(secret), "secret in details: {details}");
    }
    let refusing = RefusingPort::new();
    let o = probe(
        &format!("http://probe-user:{secret}@127.0.0.1:{}/", refusing.port),
        "",
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Connect));
    assert!(
        !o.message.contains(secret),
        "secret in message: {}",
        o.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_show_in_health() {
    let base = upstream().await;
    let secret = "an0ther-s3cret";
    let url = base.replace("http://", &format!("http://probe-user:{secret}@"));
    let d = TestDaemon::start(&format!(
        r#"
[defaults]
interval = "300ms"
timeout = "250ms"

[[checks]]
name = "failing"
kind = "http"
url = "{url}/error"

[[checks]]
name = "passing"
kind = "http"
url = "{url}/ok"
"#
    ))
    .await;
    let http = d.client.clone();
    let body = eventually_async("both checks reported", Duration::from_secs(10), || {
        let (http, url) = (http.clone(), d.url("/health"));
        async move {
            let text = http.get(url).send().await.ok()?.text().await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            let done = v["checks"]
                .as_array()?
                .iter()
                .filter(|c| c["kind"] == "http")
                .all(|c| c["status"] != "unknown");
            done.then_some(text)
        }
    })
    .await;
    assert!(body.contains("\"failing\""), "{body}");
    assert!(!body.contains(secret), "secret in /health: {body}");
    for path in ["/readyz?verbose", "/readyz?format=json", "/metrics"] {
        let text = d.get(path).await.1;
        assert!(!text.contains(secret), "secret in {path}: {text}");
    }
}

// --- HTTPS ---------------------------------------------------------------------------------

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    install_crypto();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "healthd test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// A TLS listener for `axum::serve`: handshakes inline; failed handshakes (a client that
/// rejects the certificate) are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(stream);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn tls_upstream(server: Arc<rustls::ServerConfig>) -> String {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(server),
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, upstream_routes()).await;
    });
    format!("https://{addr}")
}

#[tokio::test]
async fn https_needs_the_ca_or_insecure_skip_verify() {
    let pki = make_pki();
    let base = tls_upstream(pki.server.clone()).await;
    let url = format!("{base}/ok");

    let o = probe(&url, "").await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let o = probe(
        &url,
        &format!(
            "ca_file = \"{}\"\nbody_contains = \"all good\"",
            ca_file.display()
        ),
    )
    .await;
    assert_eq!(o.level, Level::Ok, "{o:?}");

    let o = probe(&url, "insecure_skip_verify = true").await;
    assert_eq!(o.level, Level::Ok, "{o:?}");

    // A CA that did not sign the server's certificate does not help.
    let other = make_pki();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_pem).unwrap();
    let o = probe(&url, &format!("ca_file = \"{}\"", other_ca.display())).await;
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");
}

#[tokio::test]
async fn https_by_name_with_the_ca() {
    let pki = make_pki();
    let base = tls_upstream(pki.server.clone()).await;
    let url = format!("{}/ok", base.replace("127.0.0.1", "localhost"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let o = probe(&url, &format!("ca_file = \"{}\"", ca_file.display())).await;
    // localhost may resolve to ::1 first, where nothing listens; reqwest then tries 127.0.0.1.
    assert_eq!(o.level, Level::Ok, "{o:?}");
}

#[tokio::test]
async fn plain_http_to_a_tls_port_is_not_healthy() {
    let pki = make_pki();
    let base = tls_upstream(pki.server.clone()).await;
    let check = http_check(&format!("{}/ok", base.replace("https", "http")), "", "1s");
    let o = run_once(&mut None, &check).await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    // The TLS server's answer is not HTTP.
    assert_eq!(o.reason, Some(Reason::Protocol), "{o:?}");
}

#[test]
fn ca_file_is_checked_when_the_config_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    for (path, expect) in [
        (
            not_pem.clone(),
            format!("no PEM certificate in {}", not_pem.display()),
        ),
        (
            dir.path().join("missing.pem"),
            format!(
                "cannot read {}/missing.pem: No such file or directory (os error 2)",
                dir.path().display()
            ),
        ),
    ] {
        let cfg = ConfigDir::new(&format!(
            "[[checks]]\nname = \"web\"\nkind = \"http\"\nurl = \"https://127.0.0.1/\"\nca_file = \"{}\"\n",
            path.display()
        ));
        let errors = cfg.load().unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "checks.\"web\".ca_file");
        assert_eq!(errors[0].reason, expect);
    }
}

#[tokio::test]
async fn https_to_a_plain_http_port_is_tls() {
    let base = upstream().await;
    let o = probe(&format!("{}/ok", base.replace("http://", "https://")), "").await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Tls), "{o:?}");
}

#[tokio::test]
async fn peer_that_closes_without_answering_is_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let o = probe(&format!("http://{addr}/"), "").await;
    assert_eq!(o.level, Level::Failed, "{o:?}");
    assert_eq!(o.reason, Some(Reason::Connect), "{o:?}");
}
