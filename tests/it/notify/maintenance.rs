//! Maintenance: in a configured window, or one opened with `healthd maintenance start`,
//! checks run and show but nothing notifies; closing it tells what changed meanwhile.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::{PROMPT, Setup, push_check, quiet};
use crate::support::daemon::binary;
use crate::support::webhook::WebhookPeer;
use crate::support::{output_text, run_with_timeout, toml_path};

fn hook(peer: &WebhookPeer) -> String {
    format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        peer.url("/")
    )
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[tokio::test]
async fn nothing_notifies_in_a_configured_window() {
    let peer = WebhookPeer::start().await;
    let now = SystemTime::now();
    let s = Setup::start(
        &format!(
            "{}{}{}[[maintenance]]\nname = \"deploy\"\nchecks = [\"job\"]\nfrom = \"{}\"\nto = \"{}\"\n",
            push_check("job", "failure_threshold = 1"),
            push_check("other", "failure_threshold = 1"),
            hook(&peer),
            rfc3339(now - Duration::from_secs(60)),
            rfc3339(now + Duration::from_secs(3600)),
        ),
        &[],
    )
    .await;
    s.set("job", false, "unhealthy").await;
    assert_eq!(s.d.get("/readyz").await.0, 503, "maintenance hides nothing");
    s.set("other", false, "unhealthy").await;
    let got = peer.wait_accepted(1, PROMPT).await;
    quiet(Duration::from_secs(2)).await;
    assert_eq!(got, ["firing other unknown->unhealthy"]);
    assert_eq!(peer.accepted().len(), 1, "{:?}", peer.accepted());
}

/// `healthd maintenance ARGS`: (exit code, stdout + stderr).
async fn maintenance(args: Vec<String>) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let out = run_with_timeout(
            Command::new(binary()).arg("maintenance").args(&args),
            Duration::from_secs(10),
        )
        .expect("run healthd maintenance");
        (out.status.code().unwrap_or(-1), output_text(&out))
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn maintenance_started_and_stopped_from_the_command_line() {
    let peer = WebhookPeer::start().await;
    let socket_dir = tempfile::tempdir().expect("temp dir");
    let socket = socket_dir.path().join("admin.sock");
    let s = Setup::start(
        &format!(
            "[admin]\nsocket = {}\n{}{}",
            toml_path(&socket),
            push_check("job", "failure_threshold = 1"),
            hook(&peer)
        ),
        &[],
    )
    .await;
    s.set("job", true, "healthy").await;
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let sock = socket.display().to_string();

    let (code, out) = maintenance(vec![
        "start".into(),
        "--for".into(),
        "30m".into(),
        "--checks".into(),
        "job".into(),
        "--socket".into(),
        sock.clone(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("open: healthd maintenance start until "),
        "{out}"
    );
    // Found through the config file's [admin] socket.
    let config = s.d.dir.path().display().to_string();
    let (code, out) = maintenance(vec!["status".into(), "--config".into(), config]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(job)"), "{out}");
    let (code, out) = maintenance(vec![
        "start".into(),
        "--for".into(),
        "1m".into(),
        "--checks".into(),
        "nope".into(),
        "--socket".into(),
        sock.clone(),
    ])
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown check \"nope\""), "{out}");

    s.set("job", false, "unhealthy").await;
    quiet(Duration::from_secs(2)).await;
    assert!(peer.deliveries().is_empty(), "{:?}", peer.accepted());

    let (code, out) = maintenance(vec!["stop".into(), "--socket".into(), sock.clone()]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no maintenance window open"), "{out}");
    let got = peer.wait_accepted(1, PROMPT).await;
    assert_eq!(got, ["firing job healthy->unhealthy"]);
    let (code, out) = maintenance(vec!["stop".into(), "--socket".into(), sock]).await;
    assert_eq!(code, 1, "{out}");
}
