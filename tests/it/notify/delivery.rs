//! How notices are delivered: retried after a 503, not after a 400; a failure that recovered
//! while its receiver was down is collapsed, not sent late; a receiver that hangs delays
//! nobody else; pending notices survive a reload; secret headers and URLs never reach the
//! log; a full queue drops and counts; the counters pass promtool.

use std::time::{Duration, Instant};

use super::{PROMPT, Setup, push_check, quiet};
use crate::support::config::ConfigDir;
use crate::support::daemon::{Subprocess, assert_no_secret};
use crate::support::webhook::WebhookPeer;
use crate::support::{eventually_async, promtool_check_metrics, toml_path, unique_secret};

fn hook(name: &str, url: &str, keys: &str) -> String {
    format!("[[notify]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\n{keys}\n")
}

/// Wait (without blocking the runtime the receiver runs on) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    eventually_async(what, PROMPT, || async { cond().then_some(()) }).await
}

/// A healthy check `job` and a receiver `hook` that will answer `codes` first; then `job`
/// fails.
async fn failing_while_the_receiver_answers(codes: &[u16]) -> (WebhookPeer, Setup) {
    let peer = WebhookPeer::start().await;
    let s = Setup::start(
        &format!(
            "{}{}",
            push_check("job", "failure_threshold = 1"),
            hook("hook", &peer.url("/"), "")
        ),
        &[],
    )
    .await;
    s.set("job", true, "healthy").await;
    peer.answer(codes);
    s.push("job", false, "down").await;
    (peer, s)
}

#[tokio::test]
async fn retried_after_503_and_not_after_400() {
    let (peer, s) = failing_while_the_receiver_answers(&[503, 503]).await;
    let got = peer.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(got, ["firing job healthy->unhealthy"]);
    let d = peer.deliveries();
    let codes: Vec<u16> = d.iter().map(|d| d.status).collect();
    assert_eq!(codes, [503, 503, 200]);
    let took = d[2].at - d[0].at;
    eprintln!(
        "FIGURE two 503s then 200: delivered {:.2}s after the first attempt",
        took.as_secs_f64()
    );
    // Jittered backoff: 0.5–1 s, then 1–2 s.
    assert!(
        took >= Duration::from_millis(1400) && took <= Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(s.counted("hook", "sent").await, 1);

    peer.answer(&[400]);
    s.set("job", true, "healthy").await;
    until("the refused request", || peer.deliveries().len() == 4).await;
    quiet(Duration::from_secs(3)).await;
    assert_eq!(peer.deliveries().len(), 4, "a 400 is not retried");
    assert_eq!(s.counted("hook", "failed").await, 1);
    let (_, metrics) = s.d.get("/metrics").await;
    let (ok, out) = promtool_check_metrics(&metrics);
    assert!(ok, "promtool: {out}");
}

#[tokio::test]
async fn a_failure_that_recovered_before_delivery_is_collapsed() {
    let (peer, s) = failing_while_the_receiver_answers(&[503, 503]).await;
    until("the first attempt", || !peer.deliveries().is_empty()).await;
    // Recovered while the receiver is down: neither the failure nor the recovery is news.
    s.set("job", true, "healthy").await;
    quiet(Duration::from_secs(4)).await;
    assert!(
        peer.accepted().is_empty(),
        "sent late: {:?}",
        peer.accepted()
    );
    assert_eq!(peer.deliveries().len(), 1, "retried after the collapse");
    assert!(s.counted("hook", "collapsed").await >= 1);
    // The next failure is told as usual.
    s.push("job", false, "down again").await;
    let got = peer.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(got, ["firing job healthy->unhealthy"]);
}

#[tokio::test]
async fn a_hanging_receiver_delays_nobody_else() {
    let stuck = WebhookPeer::start().await;
    stuck.hang();
    let peer = WebhookPeer::start().await;
    let s = Setup::start(
        &format!(
            "{}{}{}",
            push_check("job", "failure_threshold = 1"),
            hook("stuck", &stuck.url("/"), "timeout = \"5s\""),
            hook("hook", &peer.url("/"), "")
        ),
        &[],
    )
    .await;
    s.set("job", true, "healthy").await;
    let start = Instant::now();
    s.push("job", false, "down").await;
    peer.wait_accepted(1, PROMPT).await;
    let took = start.elapsed();
    eprintln!(
        "FIGURE notice delivered {:.0}ms after the push, beside a receiver that hangs",
        took.as_secs_f64() * 1000.0
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    let t = Instant::now();
    let (code, _) = s.d.get("/readyz").await;
    assert_eq!(code, 503);
    assert!(t.elapsed() < Duration::from_millis(200));
    s.set("job", true, "healthy").await;
    let got = peer.wait_accepted(2, PROMPT).await;
    assert_eq!(got[1], "resolved job unhealthy->healthy");
}

#[tokio::test]
async fn pending_notices_survive_a_reload() {
    let peer = WebhookPeer::start().await;
    let config = |timeout: &str, extra: &str| {
        format!(
            "{}{extra}{}",
            push_check("job", "failure_threshold = 1"),
            hook("hook", &peer.url("/"), &format!("timeout = \"{timeout}\""))
        )
    };
    let mut s = Setup::start(&config("5s", ""), &[]).await;
    s.set("job", true, "healthy").await;
    peer.answer(&[503, 503, 503]);
    s.push("job", false, "down").await;
    until("the first attempt", || !peer.deliveries().is_empty()).await;
    s.reload(&config("4s", &push_check("extra", ""))).await;
    let got = peer.wait_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(got, ["firing job healthy->unhealthy"]);
    quiet(Duration::from_secs(2)).await;
    assert_eq!(peer.accepted().len(), 1, "{:?}", peer.accepted());
}

#[tokio::test]
async fn secret_headers_and_the_url_never_reach_the_log() {
    let peer = WebhookPeer::start().await;
    peer.answer(&[503]);
    let dir = ConfigDir::new("");
    let token = unique_secret("push-");
    let header_secret = unique_secret("hdr-");
    let env_secret = unique_secret("env-");
    let path_secret = unique_secret("path-");
    let push_file = dir.secret_file("push.token", &token);
    let header_file = dir.secret_file("hook.token", &header_secret);
    dir.set_config(&format!(
        "{}{}",
        push_check("job", "failure_threshold = 1").replace("\"TOKEN\"", &toml_path(&push_file)),
        hook(
            "hook",
            &peer.url(&format!("/hooks/{path_secret}")),
            &format!(
                "headers = {{ X-Hook-Token = {{ file = {} }}, Authorization = {{ env = \"HOOK_AUTH\", prefix = \"Bearer \" }} }}",
                toml_path(&header_file)
            )
        )
    ));
    let d = Subprocess::start_logging_with_env(
        &dir,
        "trace,reqwest=trace,hyper_util=trace,hyper=trace",
        &[("HOOK_AUTH", &env_secret)],
    );
    let client = crate::support::daemon::HealthClient::new(d.addr);
    let r = client
        .client
        .post(client.url("/push/job/fail"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("push");
    assert_eq!(r.status().as_u16(), 200);
    peer.wait_accepted(1, Duration::from_secs(10)).await;
    let sent = &peer.deliveries()[1];
    assert_eq!(sent.headers["x-hook-token"], header_secret.as_str());
    assert_eq!(
        sent.headers["authorization"],
        format!("Bearer {env_secret}").as_str()
    );
    let (_, health) = client.get("/health").await;
    let (_, metrics) = client.get("/metrics").await;
    let log = d.stop();
    assert!(log.contains("Notification sent."), "{log}");
    assert!(log.lines().count() > 20, "trace logging is on: {log}");
    assert_no_secret(
        &[("log", &log), ("/health", &health), ("/metrics", &metrics)],
        &[&header_secret, &env_secret, &path_secret],
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let stuck = WebhookPeer::start().await;
    stuck.hang();
    let s = Setup::start(
        &format!(
            "{}{}{}{}",
            push_check("a", "failure_threshold = 1"),
            push_check("b", "failure_threshold = 1"),
            push_check("c", "failure_threshold = 1"),
            hook(
                "stuck",
                &stuck.url("/"),
                "timeout = \"30s\"\nqueue_size = 1"
            )
        ),
        &[],
    )
    .await;
    // The first notice is in flight (the receiver never answers), the second waits in the
    // one place of the queue, the third has no room.
    for check in ["a", "b", "c"] {
        s.set(check, false, "unhealthy").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually_async("a dropped notification", PROMPT, || async {
        (s.counted("stuck", "dropped").await == 1).then_some(())
    })
    .await;
    let (_, metrics) = s.d.get("/metrics").await;
    assert!(
        metrics.contains("healthd_notifications_queued{receiver=\"stuck\"} 1"),
        "{metrics}"
    );
}
