//! Endpoint abuse and the security model: public verdicts with protected details, bearer
//! tokens and trusted networks, TLS with certificate reload, request limits, a flood of
//! `/health`, garbage input and slowloris-style idle connections. Throughout, `/livez` and
//! `/readyz` must keep giving the right answer.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::daemon::{TestDaemon, status_is};
use crate::support::peers::{ANSWER, FAIL_500, HttpPeer, RefusingPort, TcpPeer};
use crate::support::{eventually_async, install_crypto, write_secret};

/// One healthy check ("up") and one critical failing check ("down"): readiness is 503.
pub(crate) async fn two_checks(extra_server: &str) -> (TestDaemon, (TcpPeer, RefusingPort)) {
    let (cfg, up) = two_checks_config(extra_server).await;
    let h = TestDaemon::start(&cfg).await;
    wait_for_started(&h).await;
    (h, up)
}

/// The peers are returned to be held for the test: `down`'s port stays bound, refusing.
async fn two_checks_config(extra_server: &str) -> (String, (TcpPeer, RefusingPort)) {
    let up = TcpPeer::start(ANSWER).await;
    let refusing = RefusingPort::new();
    let down = refusing.port;
    let cfg = format!(
        r#"
[server]
{extra_server}

[defaults]
interval = "300ms"
timeout = "200ms"
failure_threshold = 1

[[checks]]
name = "up"
kind = "tcp"
host = "127.0.0.1"
port = {}

[[checks]]
name = "down"
kind = "tcp"
host = "127.0.0.1"
port = {down}
"#,
        up.addr.port()
    );
    (cfg, (up, refusing))
}

async fn wait_for_started(h: &TestDaemon) {
    eventually_async("startup to complete", Duration::from_secs(10), || async {
        (h.get("/startupz").await.0 == 200).then_some(())
    })
    .await
}

pub(crate) fn secret_file(dir: &std::path::Path, token: &str) -> std::path::PathBuf {
    write_secret(&dir.join("token"), token)
}

pub(crate) async fn get_with(
    h: &TestDaemon,
    path: &str,
    token: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut req = h.client.get(format!("{}{path}", h.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (code, r.text().await.unwrap_or_default(), www)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_public_and_details_need_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "t0ken-for-this-test-only";
    let path = secret_file(tmp.path(), token);
    let (h, _up) = two_checks(&format!(
        "[server.auth]\ntoken_file = \"{}\"\ntrusted_networks = []\n",
        path.display()
    ))
    .await;

    // Public: bare verdicts, and names with the reason withheld.
    assert_eq!(get_with(&h, "/livez", None).await.0, 200);
    let (code, body, _) = get_with(&h, "/readyz", None).await;
    assert_eq!((code, body.as_str()), (503, "unhealthy\n"));
    let (code, body, _) = get_with(&h, "/readyz?verbose", None).await;
    assert_eq!(code, 503);
    assert!(body.contains("[-]down failed: reason withheld"), "{body}");
    assert!(body.contains("[+]up ok"), "{body}");
    assert!(!body.contains("connect"), "{body}");

    // Protected without the token: 401 with a Bearer challenge.
    for path in [
        "/health",
        "/metrics",
        "/readyz/up",
        "/livez?format=json",
        "/readyz?verbose&format=json",
    ] {
        let (code, _, www) = get_with(&h, path, None).await;
        assert_eq!(code, 401, "{path}");
        assert!(www.is_some_and(|w| w.starts_with("Bearer")), "{path}");
        assert_eq!(
            get_with(&h, path, Some("wrong-token")).await.0,
            401,
            "{path}"
        );
    }
    let r = h
        .client
        .get(format!("{}/health", h.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // With the token: everything.
    let (code, body, _) = get_with(&h, "/health", Some(token)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"breaker\""), "{body}");
    assert_eq!(get_with(&h, "/metrics", Some(token)).await.0, 200);
    assert_eq!(get_with(&h, "/readyz/up", Some(token)).await.0, 200);
    let (_, body, _) = get_with(&h, "/readyz?verbose", Some(token)).await;
    assert!(body.contains("[-]down failed: connect"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_trusted_by_default_and_no_auth_means_open() {
    let tmp = tempfile::tempdir().unwrap();
    let path = secret_file(tmp.path(), "another-token");
    let (h, _up) = two_checks(&format!(
        "[server.auth]\ntoken_file = \"{}\"\n",
        path.display()
    ))
    .await;
    assert_eq!(get_with(&h, "/health", None).await.0, 200);
    let (_, body, _) = get_with(&h, "/readyz?verbose", None).await;
    assert!(body.contains("failed: connect"), "{body}");

    let (h, _up) = two_checks("").await;
    assert_eq!(get_with(&h, "/health", None).await.0, 200);
    assert_eq!(get_with(&h, "/metrics", None).await.0, 200);
}

/// Send raw bytes and read the status code of the answer (None if the server closed).
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let _ = s.write_all(request);
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_odd_requests_are_refused_and_probes_stay_correct() {
    let (h, _up) = two_checks("").await;
    let addr = h.daemon.local_addr;
    let big = "x".repeat(20_000);
    let cases: Vec<(String, Vec<u16>)> = vec![
        (
            format!("GET /livez HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n"),
            vec![431],
        ),
        (
            format!(
                "GET /livez?{} HTTP/1.1\r\nHost: a\r\n\r\n",
                "q".repeat(5000)
            ),
            vec![414],
        ),
        (
            "GET /livez HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello".into(),
            vec![413],
        ),
        (
            "POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".into(),
            vec![405],
        ),
        ("GARBAGE\r\n\r\n".into(), vec![400]),
    ];
    for (request, want) in &cases {
        let got = tokio::task::spawn_blocking({
            let r = request.clone().into_bytes();
            move || raw(addr, &r)
        })
        .await
        .unwrap();
        assert!(
            got.is_some_and(|c| want.contains(&c)),
            "{:?}: got {got:?}, want {want:?}",
            &request[..request.len().min(40)]
        );
        h.assert_probes(200, 503).await;
    }
    // Garbage query strings: never a server error, never a hang.
    let queries = [
        "%",
        "%%%",
        "verbose=%FF%FE",
        "exclude=,,,,&exclude=",
        "format=json&format=xml",
        "a=b=c&&&=",
        "verbose&verbose&verbose=0",
        "exclude=%00%01%02",
        "%E2%82",
        "format=%ZZ",
    ];
    for q in queries {
        for path in ["/livez", "/readyz", "/startupz", "/readyz/up", "/health"] {
            let (code, _) = h.get(&format!("{path}?{q}")).await;
            assert!([200, 503, 404, 401].contains(&code), "{path}?{q}: {code}");
        }
    }
    h.assert_probes(200, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_health_requests_do_not_disturb_the_probes() {
    let (h, _up) = two_checks("[server.limits]\nmax_connections = 4096\n").await;
    // The flood runs on its own runtime and thread, as another client process would.
    let url = format!("{}/health", h.base);
    let started = Instant::now();
    let flood = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // One connection per concurrent request.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let tasks: Vec<_> = (0..1000)
                .map(|_| {
                    let (c, u) = (client.clone(), url.clone());
                    tokio::spawn(async move { c.get(u).send().await.map(|r| r.status().as_u16()) })
                })
                .collect();
            let mut codes = Vec::new();
            for t in tasks {
                codes.push(
                    t.await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string())),
                );
            }
            codes
        })
    });
    // Meanwhile the probe endpoints answer correctly.
    let mut probe_answers = 0;
    let mut slowest = Duration::ZERO;
    while !flood.is_finished() {
        let t = Instant::now();
        h.assert_probes(200, 503).await;
        slowest = slowest.max(t.elapsed());
        probe_answers += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "flood never ended"
        );
    }
    let mut ok = 0;
    let mut shed = 0;
    for code in flood.join().unwrap() {
        match code {
            Ok(200) => ok += 1,
            Ok(503) => shed += 1,
            other => panic!("/health under flood: {other:?}"),
        }
    }
    eprintln!(
        "ABUSE health_flood requests=1000 ok={ok} shed={shed} took={:.2}s probe_checks={probe_answers} slowest_probe={:.3}s",
        started.elapsed().as_secs_f64(),
        slowest.as_secs_f64()
    );
    assert_eq!(ok + shed, 1000);
    assert!(probe_answers >= 1);
    h.assert_probes(200, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_and_probes_keep_answering() {
    let (h, _up) = two_checks("[server.limits]\nheader_read_timeout = \"1s\"\n").await;
    let addr = h.daemon.local_addr;
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /livez HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            .await
            .unwrap();
        idle.push(s);
    }
    // And some that send nothing at all.
    for _ in 0..100 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // The probes still answer at once while 400 connections stall.
    h.assert_probes(200, 503).await;
    // Each stalled connection is closed by the server after the header read timeout.
    let started = Instant::now();
    for s in &mut idle {
        let mut buf = [0u8; 256];
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(r.is_ok(), "a stalled connection was still open after 10 s");
    }
    eprintln!(
        "ABUSE slowloris connections=400 all_closed_after={:.2}s",
        started.elapsed().as_secs_f64()
    );
    h.assert_probes(200, 503).await;
}

fn make_cert(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

fn client_trusting(cert: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_and_picks_up_a_renewed_certificate() {
    install_crypto();
    let tmp = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = make_cert(tmp.path(), "a");
    let (cert_b, key_b) = make_cert(tmp.path(), "b");
    let cert = tmp.path().join("server.crt");
    let key = tmp.path().join("server.key");
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (cfg, _up) = two_checks_config(&format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    ))
    .await;
    let h = TestDaemon::start(&cfg).await;
    let https = h.base.replace("http://", "https://");
    let a = client_trusting(&cert_a);
    let b = client_trusting(&cert_b);
    let r = a.get(format!("{https}/livez")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let started = Instant::now();
    loop {
        let r = a.get(format!("{https}/startupz")).send().await.unwrap();
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "startup");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.get(format!("{https}/livez")).send().await.is_err());
    // Plain HTTP on the TLS port gets nowhere.
    assert!(
        h.client
            .get(format!("{}/livez", h.base))
            .send()
            .await
            .is_err()
    );

    // Renewal: new files in place; new connections get the new certificate.
    std::fs::copy(&key_b, &key).unwrap();
    std::fs::copy(&cert_b, &cert).unwrap();
    let started = Instant::now();
    loop {
        if let Ok(r) = b.get(format!("{https}/readyz")).send().await {
            assert_eq!(r.status().as_u16(), 503);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "renewed certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "ABUSE tls_reload picked_up_after={:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert!(a.get(format!("{https}/livez")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_the_snapshot_or_metrics() {
    let peer = HttpPeer::start().await;
    peer.set(FAIL_500);
    let secret = "hunter2-unique-secret";
    let cfg = format!(
        r#"
[[checks]]
name = "api"
kind = "http"
url = "http://app:{secret}@{addr}/?token={secret}&x=1"
interval = "300ms"
timeout = "200ms"
"#,
        addr = peer.addr
    );
    let h = TestDaemon::start(&cfg).await;
    h.timed_wait(
        "api",
        Duration::from_secs(10),
        "unhealthy",
        status_is("unhealthy", Some("status")),
    )
    .await;
    let v = h.check("api").await;
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains("token=***"), "{message}");
    for path in [
        "/health",
        "/metrics",
        "/readyz?verbose",
        "/readyz?format=json",
    ] {
        let (_, body) = h.get(path).await;
        assert!(!body.contains(secret), "{path} leaks the secret: {body}");
    }
}
