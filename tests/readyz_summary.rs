//! `/readyz` answers from the group summary when it can (plain, whole group, nothing
//! excluded) and from the members otherwise; both paths must give the same verdict.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use healthd::config::Sources;
use healthd::daemon::Daemon;

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to healthd");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_and_detailed_readiness_agree() {
    let up = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_port = up.local_addr().expect("addr").port();
    // A port with nothing listening: bind, note it, close.
    let down_port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("healthd.toml");
    std::fs::create_dir(dir.path().join("probes.d")).expect("probes.d");
    std::fs::write(
        &path,
        format!(
            "[server]\nshutdown_delay = \"1s\"\n\n\
             [[checks]]\nname = \"up\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {up_port}\n\
             interval = \"200ms\"\ntimeout = \"100ms\"\n\n\
             [[checks]]\nname = \"down\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {down_port}\n\
             interval = \"200ms\"\ntimeout = \"100ms\"\nfailure_threshold = 1\n"
        ),
    )
    .expect("write config");
    let sources = Sources {
        config: Some(path),
        probes_dir: Some(dir.path().join("probes.d")),
        env: Some(Default::default()),
    };
    let daemon = Daemon::start(sources, Some("127.0.0.1:0".parse().expect("addr")))
        .await
        .expect("daemon starts");
    let addr = daemon.local_addr;

    let deadline = Instant::now() + Duration::from_secs(20);
    let plain = loop {
        let r = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
            .await
            .expect("request");
        if r.0 == 503 && r.1 == "unhealthy\n" {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never turned unhealthy: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(plain.0, 503);

    let (verbose, excluded, json) = tokio::task::spawn_blocking(move || {
        (
            get(addr, "/readyz?verbose"),
            get(addr, "/readyz?exclude=down"),
            get(addr, "/readyz?format=json"),
        )
    })
    .await
    .expect("requests");
    assert_eq!(verbose.0, 503, "{verbose:?}");
    assert!(verbose.1.contains("[+]up ok"), "{verbose:?}");
    assert!(verbose.1.contains("[-]down failed: connect"), "{verbose:?}");
    assert_eq!(excluded, (200, "ok\n".to_string()));
    assert_eq!(json.0, 503, "{json:?}");
    assert!(json.1.contains("\"status\":\"unhealthy\""), "{json:?}");

    // Fixing the dependency turns the plain answer back to 200.
    let _down = TcpListener::bind(("127.0.0.1", down_port)).expect("rebind the down port");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
            .await
            .expect("request");
        if r == (200, "ok\n".to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never recovered: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(up);
}
