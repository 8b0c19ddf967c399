//! Secrets at the edges: the bearer token file fails closed (a token file gone or unreadable
//! at reload denies details to everyone; one that could never match, of more than one line,
//! is refused by validation), and credentials in a redirect target never reach any log.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use crate::abuse::{get_with, secret_file, two_checks};
use crate::support::config::ConfigDir;
use crate::support::daemon::{Subprocess, TestDaemon, binary, check_in};
use crate::support::peers::{RefusingPort, TcpPeer};
use crate::support::{START_TIMEOUT, eventually, output_text};

type Peers = (TcpPeer, RefusingPort);

/// A daemon whose details need the token in `DIR/token` (no trusted networks).
async fn with_token(dir: &std::path::Path, token: &str) -> (TestDaemon, PathBuf, Peers) {
    let path = secret_file(dir, token);
    let (h, up) = two_checks(&format!(
        "[server.auth]\ntoken_file = \"{}\"\ntrusted_networks = []\n",
        path.display()
    ))
    .await;
    (h, path, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_takes_effect_on_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, _path, _up) = with_token(tmp.path(), "first-token").await;
    assert_eq!(get_with(&h, "/health", Some("first-token")).await.0, 200);
    secret_file(tmp.path(), "second-token");
    // Not before the reload: the token is read with the configuration.
    assert_eq!(get_with(&h, "/health", Some("second-token")).await.0, 401);
    h.daemon.reload().await.expect("reload accepted");
    assert_eq!(get_with(&h, "/health", Some("second-token")).await.0, 200);
    assert_eq!(get_with(&h, "/health", Some("first-token")).await.0, 401);
    assert_eq!(
        get_with(&h, "/readyz", None).await.0,
        503,
        "verdicts stay public"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_gone_at_reload_denies_details_to_everyone() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut h, path, _up) = with_token(tmp.path(), "kept-token").await;
    assert_eq!(get_with(&h, "/health", Some("kept-token")).await.0, 200);

    let moved = tmp.path().join("elsewhere");
    std::fs::rename(&path, &moved).unwrap();
    assert!(h.daemon.reload().await.is_err(), "reload must be rejected");
    // Fail closed: the old token no longer opens details; verdicts stay public.
    assert_eq!(get_with(&h, "/health", Some("kept-token")).await.0, 401);
    assert_eq!(
        get_with(&h, "/readyz?verbose", Some("kept-token")).await.0,
        503
    );
    let config_says = || {
        h.snapshot()
            .checks
            .iter()
            .find(|c| c.name == "config")
            .map(|c| c.message.clone())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    while !config_says().contains("details are denied to everyone") {
        assert!(std::time::Instant::now() < deadline, "{}", config_says());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Put back and reload: details open again with the token.
    std::fs::rename(&moved, &path).unwrap();
    h.daemon.reload().await.expect("reload accepted");
    assert_eq!(get_with(&h, "/health", Some("kept-token")).await.0, 200);
}

#[test]
fn a_token_file_of_more_than_one_line_is_refused() {
    let dir = ConfigDir::new("");
    let token = dir.dir.path().join("token");
    crate::support::write_secret(&token, "first-token\nsecond-token\n");
    std::fs::write(
        dir.path(),
        format!("[server.auth]\ntoken_file = \"{}\"\n", token.display()),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["validate", "--config"])
        .arg(dir.path())
        .output()
        .expect("run healthd validate");
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("server.auth.token_file") && text.contains("more than one line"),
        "{text}"
    );
    assert!(!text.contains("second-token"), "the token leaked: {text}");
}

/// A server answering every request with a redirect to a URL with credentials in it.
fn leaky_redirect(secret: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = conn.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://leak:{secret}@127.0.0.1:{port}/next\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    port
}

#[test]
fn credentials_in_a_redirect_target_are_refused_and_never_logged() {
    const SECRET: &str = "RedirPassw0rd";
    let port = leaky_redirect(SECRET);
    let dir = ConfigDir::new(&format!(
        "[[checks]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\nfollow_redirects = true\ninterval = \"300ms\"\ntimeout = \"250ms\"\n"
    ));
    // The HTTP client's own trace lines named, so that they are written.
    let healthd = Subprocess::start_logging(&dir, "trace,hyper_util=trace,reqwest=trace");
    let mut h = serde_json::Value::Null;
    eventually("the check to fail", START_TIMEOUT, || {
        h = healthd.health();
        check_in(&h, "web").is_some_and(|c| c["consecutive_failures"].as_u64() >= Some(2))
    });
    let web = check_in(&h, "web").expect("web").clone();
    assert_eq!(web["status"], "unhealthy", "{web}");
    assert!(
        web["message"]
            .as_str()
            .is_some_and(|m| m.contains("redirect refused")),
        "{web}"
    );
    let logs = healthd.stop();
    assert!(
        logs.contains("\"log.target\":\"reqwest::"),
        "the client's trace lines are missing, so this proves nothing:\n{logs}"
    );
    assert!(
        !logs.contains(SECRET),
        "the redirect's password reached the log"
    );
    assert!(
        !h.to_string().contains(SECRET),
        "the password reached /health"
    );

    // Unless named, the client's debug and trace lines stay out of the log.
    let healthd = Subprocess::start_logging(&dir, "trace");
    eventually("a few runs", START_TIMEOUT, || {
        check_in(&healthd.health(), "web")
            .is_some_and(|c| c["consecutive_failures"].as_u64() >= Some(2))
    });
    let logs = healthd.stop();
    assert!(
        !logs.contains("\"log.target\":\"reqwest::") && !logs.contains("hyper_util"),
        "{logs}"
    );
}
