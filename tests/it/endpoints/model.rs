//! The health model: failure and success thresholds, criticality, `fail_on_degraded`, group
//! roll-up to the worst member, and startup gating readiness until every check reported.

use std::time::Duration;

use axum::http::StatusCode;

use super::{FAST, Switch, check, get, health, tcp, wait_reported};
use crate::support::daemon::TestDaemon;
use crate::support::eventually_async;
use crate::support::peers::{RefusingPort, SilentPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_and_success_thresholds() {
    let mut peer = Switch::new_up().await;
    let d = TestDaemon::start(&format!(
        "{FAST}{}",
        tcp(
            "db",
            peer.port,
            "failure_threshold = 3\nsuccess_threshold = 2"
        )
    ))
    .await;
    let h = wait_reported(&d, &["db"], true).await;
    assert_eq!(check(&h, "db")["status"], "healthy");

    // Down: healthy through failures 1 and 2, unhealthy from the 3rd.
    peer.down().await;
    let seen_damped = std::sync::atomic::AtomicBool::new(false);
    eventually_async("db unhealthy", Duration::from_secs(10), || async {
        let h = health(&d).await;
        let c = check(&h, "db");
        let failures = c["consecutive_failures"].as_u64().unwrap();
        match failures {
            0 => assert_eq!(c["status"], "healthy", "{c}"),
            1 | 2 => {
                assert_eq!(c["status"], "healthy", "damped below the threshold: {c}");
                assert_eq!(c["reason"], "connect", "{c}");
                seen_damped.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            _ => assert_eq!(c["status"], "unhealthy", "{c}"),
        }
        (failures >= 3).then_some(())
    })
    .await;
    assert!(
        seen_damped.load(std::sync::atomic::Ordering::Relaxed),
        "a failing-but-still-healthy snapshot was observed"
    );
    assert_eq!(
        get(&d, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Back up: still unhealthy after one success, healthy after two.
    peer.up().await;
    eventually_async("db healthy again", Duration::from_secs(10), || async {
        let h = health(&d).await;
        let c = check(&h, "db");
        let successes = c["consecutive_successes"].as_u64().unwrap();
        match successes {
            0 | 1 => {
                assert_eq!(c["status"], "unhealthy", "{c}");
                // Still failing, so still saying why, even after a success.
                assert_eq!(c["reason"], "connect", "{c}");
            }
            _ => assert_eq!(c["status"], "healthy", "{c}"),
        }
        (successes >= 2).then_some(())
    })
    .await;
    assert_eq!(get(&d, "/readyz").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn criticality_decides_unhealthy_or_degraded() {
    let refusing = RefusingPort::new();
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!(
        "{FAST}{}{}",
        tcp("cache", refusing.port, "critical = false"),
        tcp("api", up.port, "")
    ))
    .await;
    let h = wait_reported(&d, &["cache", "api"], true).await;
    assert_eq!(check(&h, "cache")["status"], "degraded");
    assert_eq!(check(&h, "cache")["critical"], false);
    assert_eq!(h["groups"]["readiness"]["status"], "degraded");
    assert_eq!(h["status"], "degraded");
    // Degraded passes by default.
    let r = get(&d, "/readyz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "degraded\n"));
    let r = get(&d, "/readyz?verbose").await;
    assert_eq!(
        r.body,
        "[+]cache degraded: connect\n[+]api ok\nreadyz check passed\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_degraded_turns_degraded_into_503() {
    let refusing = RefusingPort::new();
    let d = TestDaemon::start(&format!(
        "{FAST}[groups.readiness]\nfail_on_degraded = true\n{}",
        tcp("cache", refusing.port, "critical = false")
    ))
    .await;
    wait_reported(&d, &["cache"], true).await;
    let r = get(&d, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body, "degraded\n");
    // Only readiness has the option; liveness still passes.
    assert_eq!(get(&d, "/livez").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_roll_up_to_the_worst_member() {
    let refusing = RefusingPort::new();
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!(
        "{FAST}{}{}{}",
        tcp("db", up.port, "groups = [\"readiness\", \"liveness\"]"),
        tcp("cache", refusing.port, "critical = false"),
        tcp("queue", refusing.port, "groups = [\"liveness\"]"),
    ))
    .await;
    let h = wait_reported(&d, &["db", "cache", "queue"], true).await;
    let readiness = &h["groups"]["readiness"];
    assert_eq!(readiness["status"], "degraded", "{h}");
    assert_eq!(
        (
            readiness["checks"].as_u64(),
            readiness["healthy"].as_u64(),
            readiness["degraded"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let liveness = &h["groups"]["liveness"];
    assert_eq!(liveness["status"], "unhealthy", "{h}");
    // The heartbeat is in liveness too.
    assert_eq!(liveness["checks"].as_u64(), Some(3));
    assert_eq!(
        get(&d, "/livez").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let v = get(&d, "/livez?verbose").await.body;
    assert!(v.contains("[+]healthd ok\n"), "{v}");
    assert!(v.contains("[-]queue failed: connect\n"), "{v}");
    assert!(v.ends_with("livez check failed\n"), "{v}");
    assert_eq!(get(&d, "/readyz").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_gates_readiness_until_startup_checks_pass_and_never_goes_back() {
    let port = RefusingPort::new().port; // free now; nothing listens yet
    let d = TestDaemon::start(&format!(
        "{FAST}{}",
        tcp(
            "migrations",
            port,
            "groups = [\"startup\", \"readiness\"]\nfailure_threshold = 1"
        )
    ))
    .await;
    // Reported (failed), but a startup check has not passed yet.
    wait_reported(&d, &["migrations"], false).await;
    for path in ["/startupz", "/readyz"] {
        let r = get(&d, path).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.body, "starting\n", "{path}");
    }
    let v = get(&d, "/readyz?verbose").await.body;
    assert!(
        v.ends_with("[-]startup failed: starting\nreadyz check failed\n"),
        "{v}"
    );
    assert_eq!(health(&d).await["started"], false);
    // Liveness does not wait for startup.
    assert_eq!(get(&d, "/livez").await.status, StatusCode::OK);

    let mut peer = Switch::up_on(port).await;
    eventually_async("started", Duration::from_secs(10), || async {
        (get(&d, "/startupz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(get(&d, "/readyz").await.status, StatusCode::OK);

    // Fails again: readiness follows, startup stays passed.
    peer.down().await;
    eventually_async("readyz 503 again", Duration::from_secs(10), || async {
        let r = get(&d, "/readyz").await;
        (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(r.body)
    })
    .await;
    assert_eq!(get(&d, "/readyz").await.body, "unhealthy\n");
    let r = get(&d, "/startupz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(health(&d).await["started"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_waits_for_every_check_to_report() {
    let up = Switch::new_up().await;
    let silent = SilentPeer::start().await;
    let d = TestDaemon::start(&format!(
        "[defaults]\ninterval = \"5s\"\ntimeout = \"3s\"\n{}{}",
        tcp("fast", up.port, ""),
        tcp("slow", silent.port(), "expect = \"hello\"")
    ))
    .await;
    wait_reported(&d, &["fast"], false).await;
    let h = health(&d).await;
    assert_eq!(check(&h, "slow")["status"], "unknown", "{h}");
    assert_eq!(
        get(&d, "/startupz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let v = get(&d, "/readyz?verbose").await;
    assert_eq!(v.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        v.body,
        "[+]fast ok\n[-]slow unknown: no result yet\n[-]startup failed: starting\nreadyz check failed\n"
    );
    // Once the slow check times out it has reported, and startup completes.
    wait_reported(&d, &["slow"], true).await;
    assert_eq!(get(&d, "/startupz").await.status, StatusCode::OK);
    let h = health(&d).await;
    assert_eq!(check(&h, "slow")["reason"], "timeout");
}
