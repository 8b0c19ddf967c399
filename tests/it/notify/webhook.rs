//! What a webhook receiver is told: one notice per thresholded state change (never per
//! run), a resolved notice, reminders at the interval, one flapping notice, template bodies,
//! and failing checks announced again after a restart.

use std::time::{Duration, Instant};

use super::{PROMPT, Setup, push_check, pushed, quiet};
use crate::support::eventually_async;
use crate::support::peers::Switch;
use crate::support::webhook::WebhookPeer;

fn hook(peer: &WebhookPeer, keys: &str) -> String {
    format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n{keys}\n",
        peer.url("/hook")
    )
}

#[tokio::test]
async fn one_notice_per_thresholded_change_and_a_resolved_notice() {
    let peer = WebhookPeer::start().await;
    let mut db = Switch::new_up().await;
    let s = Setup::start(
        &format!(
            "[[checks]]\nname = \"db\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n\
             interval = \"200ms\"\ntimeout = \"100ms\"\nfailure_threshold = 3\nbackoff = false\n{}{}",
            db.port,
            push_check("other", ""),
            hook(
                &peer,
                "checks = [\"db\"]\nexternal_url = \"https://healthd.example:9750\""
            )
        ),
        &[],
    )
    .await;
    s.d.wait_check("db", "healthy", PROMPT, |c| c["status"] == "healthy")
        .await;
    let down = Instant::now();
    db.down().await;
    // A failed run below failure_threshold: the status stays healthy, nothing is sent.
    s.d.wait_check("db", "a failed run", PROMPT, |c| {
        c["consecutive_failures"] == 1
    })
    .await;
    assert!(peer.deliveries().is_empty(), "{:?}", peer.accepted());
    let got = peer.wait_accepted(1, PROMPT).await;
    let took = down.elapsed();
    assert_eq!(got, ["firing db healthy->unhealthy"]);
    assert!(
        took >= Duration::from_millis(400),
        "before failure_threshold: {took:?}"
    );
    // Failing on every run, and another check outside the receiver's `checks`: nothing more.
    s.set("other", false, "unhealthy").await;
    s.d.wait_check("db", "8 failed runs", PROMPT, |c| {
        c["consecutive_failures"].as_u64() >= Some(8)
    })
    .await;
    assert_eq!(peer.accepted().len(), 1, "{:?}", peer.accepted());
    db.up().await;
    let got = peer.wait_accepted(2, PROMPT).await;
    assert_eq!(got[1], "resolved db unhealthy->healthy");
    quiet(Duration::from_millis(1500)).await;
    assert_eq!(peer.accepted().len(), 2, "{:?}", peer.accepted());

    // The documented payload, version 1.
    let body = &peer.deliveries()[0].body;
    assert_eq!(body["version"], 1);
    assert_eq!(body["receiver"], "hook");
    assert_eq!(body["kind"], "tcp");
    assert_eq!(body["critical"], true);
    assert_eq!(body["groups"], serde_json::json!(["readiness"]));
    assert_eq!(body["reason"], "connect");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("refused")),
        "{body}"
    );
    assert_eq!(body["healthd_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        body["links"]["health"],
        "https://healthd.example:9750/health"
    );
    assert!(body["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(body["since"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        peer.deliveries()[0].headers["content-type"],
        "application/json"
    );
    assert_eq!(s.counted("hook", "sent").await, 2);
}

#[tokio::test]
async fn min_status_unhealthy_ignores_degraded_checks() {
    let peer = WebhookPeer::start().await;
    let s = Setup::start(
        &format!(
            "{}{}",
            push_check("cache", "critical = false\nfailure_threshold = 1"),
            hook(&peer, "min_status = \"unhealthy\"")
        ),
        &[],
    )
    .await;
    s.set("cache", false, "degraded").await;
    s.set("cache", true, "healthy").await;
    quiet(Duration::from_millis(1500)).await;
    assert!(peer.deliveries().is_empty(), "{:?}", peer.accepted());
}

#[tokio::test]
async fn reminders_come_at_the_interval() {
    let peer = WebhookPeer::start().await;
    // Test-only: repeat_interval below its 5 minute minimum.
    let s = Setup::start(
        &format!(
            "{}{}",
            push_check("job", "failure_threshold = 1"),
            hook(&peer, "repeat_interval = \"2s\"")
        ),
        &[("HEALTHD_TEST_MIN_REPEAT_INTERVAL", "1s")],
    )
    .await;
    s.set("job", false, "unhealthy").await;
    let got = peer.wait_accepted(3, Duration::from_secs(10)).await;
    assert_eq!(got[0], "firing job unknown->unhealthy");
    assert_eq!(got[1], "reminder job unhealthy->unhealthy");
    assert_eq!(got[2], "reminder job unhealthy->unhealthy");
    let at: Vec<Instant> = peer.deliveries().iter().map(|d| d.at).collect();
    for pair in at.windows(2).take(2) {
        let gap = pair[1] - pair[0];
        eprintln!(
            "FIGURE reminder gap {:.2}s (repeat_interval 2s)",
            gap.as_secs_f64()
        );
        // The router looks twice a second: a reminder comes within half a second of its time.
        assert!(
            gap >= Duration::from_millis(1900) && gap <= Duration::from_millis(2900),
            "reminder after {gap:?}"
        );
    }
    s.set("job", true, "healthy").await;
    let got = eventually_async("the resolved notice", PROMPT, || async {
        let all = peer.accepted();
        all.last()
            .is_some_and(|e| e.starts_with("resolved "))
            .then_some(all)
    })
    .await;
    assert_eq!(got[got.len() - 1], "resolved job unhealthy->healthy");
    quiet(Duration::from_millis(2500)).await;
    assert_eq!(
        peer.accepted().len(),
        got.len(),
        "no reminder after recovery"
    );
}

#[tokio::test]
async fn a_flapping_check_sends_one_flapping_notice_not_a_storm() {
    let peer = WebhookPeer::start().await;
    let s = Setup::start(
        &format!(
            "{}{}",
            push_check(
                "job",
                "failure_threshold = 1\nflap_window = 6\nflap_threshold = 0.5"
            ),
            hook(&peer, "")
        ),
        &[],
    )
    .await;
    s.set("job", true, "healthy").await;
    for i in 0..20 {
        s.push("job", i % 2 == 1, "flap").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.d.wait_check("job", "flapping", PROMPT, |c| c["flapping"] == true)
        .await;
    quiet(Duration::from_millis(1500)).await;
    let got = peer.accepted();
    eprintln!(
        "FIGURE 20 alternating results -> {} notices: {got:?}",
        got.len()
    );
    assert_eq!(
        got.iter().filter(|e| e.starts_with("flapping ")).count(),
        1,
        "{got:?}"
    );
    assert!(got.len() <= 3, "a storm: {got:?}");
    // It settles: successes only, then one resolved notice.
    for _ in 0..8 {
        s.push("job", true, "ok").await;
    }
    s.d.wait_check("job", "healthy", PROMPT, |c| c["status"] == "healthy")
        .await;
    let n = got.len();
    let all = peer.wait_accepted(n + 1, PROMPT).await;
    assert!(all[n].starts_with("resolved job "), "{all:?}");
}

#[tokio::test]
async fn a_template_body_is_json_with_escaped_values() {
    let peer = WebhookPeer::start().await;
    let template =
        r#"{"text": {{ check ~ " is " ~ to }}, "detail": {{ message }}, "n": {{ version }}}"#;
    let s = Setup::start(
        &format!(
            "{}{}",
            push_check("job", "failure_threshold = 1"),
            hook(&peer, &format!("template = '{template}'"))
        ),
        &[],
    )
    .await;
    s.push("job", false, "quote \" backslash \\ end").await;
    peer.wait_accepted(1, PROMPT).await;
    let d = &peer.deliveries()[0];
    assert_eq!(
        d.body,
        serde_json::json!({"text": "job is unhealthy", "detail": pushed("quote \" backslash \\ end"), "n": 1}),
        "{}",
        d.raw
    );
}

#[tokio::test]
async fn failing_checks_are_announced_again_after_a_restart() {
    let peer = WebhookPeer::start().await;
    let refusing = crate::support::peers::RefusingPort::new();
    let config = format!(
        "[server]\nshutdown_delay = \"100ms\"\n[[checks]]\nname = \"db\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\ninterval = \"200ms\"\ntimeout = \"100ms\"\n{}",
        refusing.port,
        hook(&peer, "")
    );
    for run in 1..=2 {
        let s = Setup::start(&config, &[]).await;
        let got = peer.wait_accepted(run, PROMPT).await;
        assert_eq!(got[run - 1], "firing db unknown->unhealthy");
        // Failing on every run for two seconds: still one notice.
        quiet(Duration::from_secs(2)).await;
        assert_eq!(peer.accepted().len(), run, "{:?}", peer.accepted());
        s.d.daemon.drain(std::future::pending()).await;
    }
}
