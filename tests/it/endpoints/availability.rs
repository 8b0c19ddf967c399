//! The endpoints stay available: they answer at once from the snapshot while every
//! dependency hangs, and a reload keeps unchanged checks and refuses a bad config while the
//! old checks go on serving.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::Value;

use super::{FAST, Switch, check, get, health, tcp, wait_reported};
use crate::support::daemon::TestDaemon;
use crate::support::eventually_async;
use crate::support::peers::{RefusingPort, SilentPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_keep_answering_while_every_dependency_hangs() {
    let silent = SilentPeer::start().await;
    let port = silent.port();
    let mut config =
        String::from("[defaults]\ninterval = \"3s\"\ntimeout = \"2s\"\nfailure_threshold = 1\n");
    for i in 0..4 {
        config.push_str(&tcp(
            &format!("tcp-{i}"),
            port,
            "expect = \"+OK\"\nsend = \"PING\\r\\n\"",
        ));
        config.push_str(&format!(
            "[[checks]]\nname = \"http-{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\n"
        ));
    }
    let d = TestDaemon::start(&config).await;
    let http = d.client.clone();
    let names: Vec<String> = (0..4)
        .flat_map(|i| [format!("tcp-{i}"), format!("http-{i}")])
        .collect();

    // While every probe is stuck waiting on the peer, and after they time out, the endpoints
    // answer at once from the snapshot. Each request is bounded well below the check timeout.
    let bound = Duration::from_secs(1);
    let started = Instant::now();
    let mut saw_hanging = false;
    let mut requests = 0;
    loop {
        for (path, expect) in [
            ("/livez", 200u16),
            ("/readyz", 503),
            ("/health", 200),
            ("/readyz?verbose", 503),
        ] {
            let t = Instant::now();
            let r = http.get(d.url(path)).send().await.unwrap();
            let code = r.status().as_u16();
            let body = r.text().await.unwrap();
            let took = t.elapsed();
            requests += 1;
            assert!(took < bound, "{path} took {took:?} while dependencies hang");
            assert_eq!(code, expect, "{path}: {body}");
            if path == "/health" {
                let h: Value = serde_json::from_str(&body).unwrap();
                let unknown = names
                    .iter()
                    .filter(|n| {
                        h["checks"]
                            .as_array()
                            .and_then(|cs| cs.iter().find(|c| c["name"] == n.as_str()))
                            .is_none_or(|c| c["status"] == "unknown")
                    })
                    .count();
                if unknown == names.len()
                    && silent.accepted.load(std::sync::atomic::Ordering::Relaxed) > 0
                {
                    saw_hanging = true;
                }
                if unknown == 0 {
                    for n in &names {
                        assert_eq!(check(&h, n)["status"], "unhealthy", "{n}: {h}");
                        assert_eq!(check(&h, n)["reason"], "timeout", "{n}: {h}");
                    }
                    assert!(
                        saw_hanging,
                        "observed the endpoints while probes were in flight"
                    );
                    assert!(requests > 8);
                    return;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "checks never timed out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_unchanged_checks_and_refuses_a_bad_config() {
    let up = Switch::new_up().await;
    let refusing = RefusingPort::new();
    let mut d = TestDaemon::start(&format!(
        "{FAST}{}{}",
        tcp("kept", up.port, ""),
        tcp("removed", refusing.port, ""),
    ))
    .await;
    let h = wait_reported(&d, &["kept", "removed"], true).await;
    let since = check(&h, "kept")["since"].clone();
    assert!(since.is_string());

    // Same definition for "kept", "removed" gone, "added" new.
    std::fs::write(
        d.dir.path(),
        format!(
            "{FAST}{}{}",
            tcp("kept", up.port, ""),
            tcp("added", up.port, "")
        ),
    )
    .unwrap();
    d.daemon.reload().await.expect("valid reload");
    let h = wait_reported(&d, &["kept", "added"], true).await;
    assert!(
        h["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "removed"),
        "{h}"
    );
    let kept = check(&h, "kept");
    assert_eq!(
        kept["since"], since,
        "an unchanged check keeps its state: {kept}"
    );
    assert_eq!(h["reload"]["ok"], true);
    assert_eq!(get(&d, "/readyz").await.status, StatusCode::OK);

    // A bad config is refused; the running checks go on; /health says why.
    std::fs::write(
        d.dir.path(),
        format!("{FAST}{}", tcp("kept", up.port, "timeout = \"5s\"")),
    )
    .unwrap();
    let errors = d.daemon.reload().await.unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "checks.\"kept\".timeout");
    let h = eventually_async(
        "reload failure published",
        Duration::from_secs(5),
        || async {
            let h = health(&d).await;
            let config_degraded = h["checks"]
                .as_array()?
                .iter()
                .any(|c| c["name"] == "config" && c["status"] == "degraded");
            (h["reload"]["ok"] == false && config_degraded).then_some(h)
        },
    )
    .await;
    let shown = h["reload"]["errors"][0].as_str().unwrap();
    assert!(
        shown.contains("checks.\"kept\".timeout: must be below the interval"),
        "{shown}"
    );
    assert_eq!(check(&h, "config")["status"], "degraded", "{h}");
    assert_eq!(
        check(&h, "added")["status"],
        "healthy",
        "old config still runs: {h}"
    );
    assert_eq!(get(&d, "/readyz").await.status, StatusCode::OK);
}
