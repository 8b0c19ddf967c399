//! Against a real Alertmanager: the alert arrives at every member with healthd's labels,
//! stays alive by re-sending, resolves on recovery, and can be silenced by label.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{PROMPT, Setup, push_check, pushed};
use crate::support::alertmanager::AlertmanagerServer;
use crate::support::eventually_async;

fn receiver(ams: &[&AlertmanagerServer]) -> String {
    let urls: Vec<String> = ams.iter().map(|a| format!("\"{}\"", a.url())).collect();
    format!(
        "[[notify]]\nname = \"am\"\nkind = \"alertmanager\"\nurls = [{}]\nresend_interval = \"1s\"\ninstance = \"test-host\"\nlabels = {{ team = \"db\" }}\n",
        urls.join(", ")
    )
}

/// The alert for `check` once Alertmanager has it.
async fn alert_of(am: &AlertmanagerServer, check: &str) -> Value {
    eventually_async(&format!("alert for {check}"), PROMPT, || async {
        am.alerts()
            .await
            .into_iter()
            .find(|a| a["labels"]["check"] == check)
    })
    .await
}

fn time(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v.as_str().unwrap_or_default()).expect("RFC 3339 time")
}

#[tokio::test]
async fn alerts_reach_every_alertmanager_and_resolve_on_recovery() {
    let am1 = AlertmanagerServer::start();
    let am2 = AlertmanagerServer::start();
    let s = Setup::start(
        &format!(
            "{}{}{}",
            push_check("job", "failure_threshold = 1"),
            push_check("cache", "failure_threshold = 1\ncritical = false"),
            receiver(&[&am1, &am2])
        ),
        &[],
    )
    .await;
    s.set("job", true, "healthy").await;
    s.push("job", false, "connection refused").await;
    for am in [&am1, &am2] {
        let a = alert_of(am, "job").await;
        let labels = serde_json::json!({
            "alertname": "HealthdCheckFailing", "check": "job", "kind": "push",
            "group": "readiness", "instance": "test-host", "severity": "critical", "team": "db",
        });
        assert_eq!(a["labels"], labels, "{a}");
        assert_eq!(a["annotations"]["reason"], "status");
        assert_eq!(
            a["annotations"]["description"],
            pushed("connection refused")
        );
        assert_eq!(a["annotations"]["summary"], "job is unhealthy on test-host");
        assert_eq!(a["status"]["state"], "active");
    }
    // Re-sent every second with endsAt four intervals ahead: it stays alive.
    let first = alert_of(&am1, "job").await;
    let ahead = time(&first["endsAt"])
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        ahead > Duration::from_secs(2) && ahead <= Duration::from_secs(4),
        "{ahead:?}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = alert_of(&am1, "job").await;
    assert!(
        time(&later["endsAt"]) > time(&first["endsAt"]),
        "{first} {later}"
    );
    assert_eq!(later["startsAt"], first["startsAt"]);

    s.set("cache", false, "degraded").await;
    assert_eq!(
        alert_of(&am1, "cache").await["labels"]["severity"],
        "warning"
    );

    s.set("job", true, "healthy").await;
    for am in [&am1, &am2] {
        eventually_async("the alert resolved", PROMPT, || async {
            let alerts = am.alerts().await;
            (!alerts.iter().any(|a| a["labels"]["check"] == "job")).then_some(())
        })
        .await;
    }
    assert_eq!(s.counted("am", "failed").await, 0);
}

#[tokio::test]
async fn an_alert_can_be_silenced_by_label() {
    let am = AlertmanagerServer::start();
    let id = am
        .silence(&[("alertname", "HealthdCheckFailing"), ("check", "job")])
        .await;
    let s = Setup::start(
        &format!(
            "{}{}{}",
            push_check("job", "failure_threshold = 1"),
            push_check("cache", "failure_threshold = 1"),
            receiver(&[&am])
        ),
        &[],
    )
    .await;
    s.push("job", false, "down").await;
    s.push("cache", false, "down").await;
    let job = alert_of(&am, "job").await;
    assert_eq!(job["status"]["state"], "suppressed", "{job}");
    assert_eq!(job["status"]["silencedBy"], serde_json::json!([id]));
    let cache = alert_of(&am, "cache").await;
    assert_eq!(cache["status"]["state"], "active", "{cache}");
}
