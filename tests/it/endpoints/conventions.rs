//! The Kubernetes API server's probe conventions, exactly: `/ping`, unknown `?exclude`
//! names, the last verbose line, a body bounded at 10 KiB with thousands of checks,
//! `Connection: close` while draining, and kubelet's own request shape over a real socket.

use std::io::{Read, Write};

use axum::http::StatusCode;

use super::{FAST, get, tcp, wait_reported};
use crate::support::daemon::TestDaemon;
use crate::support::peers::{RefusingPort, Switch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_ok_whatever_the_verdict() {
    let down = RefusingPort::new();
    let d = TestDaemon::start(&format!("{FAST}{}", tcp("db", down.port, ""))).await;
    wait_reported(&d, &["db"], true).await;
    assert_eq!(
        get(&d, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    for path in ["/livez/ping", "/readyz/ping", "/startupz/ping"] {
        let r = get(&d, path).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "ok\n"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verbose_body_stays_under_10_kib_with_failures_first() {
    let up = Switch::new_up().await;
    let down = RefusingPort::new();
    let mut config = "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n".to_string();
    let mut names = Vec::new();
    for i in 0..600 {
        let name = format!("a-check-with-a-rather-long-name-{i:04}");
        let port = if i % 4 == 0 { down.port } else { up.port };
        config += &tcp(&name, port, "");
        names.push(name);
    }
    let d = TestDaemon::start(&config).await;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    wait_reported(&d, &refs, true).await;
    let r = get(&d, "/readyz?verbose").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.len() <= 10 * 1024, "{} bytes", r.body.len());
    assert!(r.body.ends_with("readyz check failed\n"), "{}", r.body);
    let lines: Vec<&str> = r.body.lines().collect();
    let left_out = lines
        .iter()
        .find_map(|l| l.strip_prefix("info: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no `info: N more checks` line: {}", r.body));
    let shown = lines.iter().filter(|l| l.starts_with("[")).count();
    assert_eq!(shown + left_out, 600, "every check is shown or counted");
    // All 150 failing checks fit, and come before any passing one.
    let failing = lines.iter().filter(|l| l.starts_with("[-]")).count();
    assert_eq!(failing, 150);
    let first_pass = lines.iter().position(|l| l.starts_with("[+]"));
    let last_fail = lines.iter().rposition(|l| l.starts_with("[-]"));
    assert!(first_pass > last_fail, "failing lines first: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelets_request_gets_its_answer_and_draining_closes_connections() {
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!("{FAST}{}", tcp("api", up.port, ""))).await;
    wait_reported(&d, &["api"], true).await;
    // Exactly what kubelet's HTTP prober sends (keep-alive off, so `Connection: close`).
    let kubelet = |path: &str| {
        let mut s = std::net::TcpStream::connect(d.addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 10.1.2.3:9750\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer)
            .expect("read until the server closes");
        answer
    };
    let answer = tokio::task::block_in_place(|| kubelet("/readyz"));
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");

    d.daemon.state.verdicts.start_draining();
    let r = reqwest::Client::new()
        .get(format!("http://{}/livez", d.addr))
        .send()
        .await
        .expect("livez while draining");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let answer = tokio::task::block_in_place(|| kubelet("/readyz"));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.ends_with("shutting down\n"), "{answer}");
}
