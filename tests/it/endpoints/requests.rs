//! What a request gets: `?exclude`, `?verbose`, single-check paths, 404, JSON on the probe
//! endpoints and the shape of `/health`, HEAD, and the same over a real socket.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::{FAST, Switch, check, get, request, tcp, wait_reported};
use crate::support::daemon::TestDaemon;
use crate::support::eventually_async;
use crate::support::peers::RefusingPort;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclude_verbose_single_check_and_404() {
    let refusing = RefusingPort::new();
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!(
        "{FAST}{}{}{}",
        tcp("api", up.port, ""),
        tcp("db", refusing.port, ""),
        tcp("cache", refusing.port, ""),
    ))
    .await;
    wait_reported(&d, &["api", "db", "cache"], true).await;

    let r = get(&d, "/readyz").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
    );
    assert_eq!(r.content_type, "text/plain; charset=utf-8");

    let r = get(&d, "/readyz?verbose").await;
    assert_eq!(
        r.body,
        "[+]api ok\n[-]db failed: connect\n[-]cache failed: connect\nreadyz check failed\n"
    );

    // One excluded: still failing.
    let r = get(&d, "/readyz?exclude=db").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // Both excluded (repeated parameter): passes, and verbose says what was left out.
    let r = get(&d, "/readyz?exclude=db&exclude=cache&verbose").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        "[+]api ok\n[+]db excluded: unhealthy\n[+]cache excluded: unhealthy\nreadyz check passed\n"
    );
    // Excluding an unknown name changes nothing, and verbose warns as the API server does.
    assert_eq!(
        get(&d, "/readyz?exclude=nope").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = get(
        &d,
        "/readyz?exclude=db&exclude=cache&exclude=nope,gone&verbose",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.ends_with(
            "[+]cache excluded: unhealthy\nwarn: some health checks cannot be excluded: no matches for \"nope\",\"gone\"\nreadyz check passed\n"
        ),
        "{}",
        r.body
    );

    // Single-check paths.
    let r = get(&d, "/readyz/api").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok\n"));
    let r = get(&d, "/readyz/db").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
    );
    let r = get(&d, "/readyz/db?verbose").await;
    assert_eq!(r.body, "[-]db failed: connect\ndb check failed\n");
    let r = get(&d, "/readyz/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body.contains("no check named \"nope\" in readiness"),
        "{}",
        r.body
    );
    // api is not in liveness.
    assert_eq!(get(&d, "/livez/api").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&d, "/livez/healthd").await.status, StatusCode::OK);

    // Unknown paths.
    for path in ["/nope", "/readyz/api/extra", "/healthz"] {
        assert_eq!(get(&d, path).await.status, StatusCode::NOT_FOUND, "{path}");
    }

    // HEAD: same status, no body.
    for (path, code) in [
        ("/readyz", StatusCode::SERVICE_UNAVAILABLE),
        ("/readyz/api", StatusCode::OK),
        ("/livez", StatusCode::OK),
        ("/health", StatusCode::OK),
    ] {
        let r = request(&d, Method::HEAD, path, None).await;
        assert_eq!(r.status, code, "HEAD {path}");
        assert_eq!(r.body, "", "HEAD {path} has no body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_on_probe_endpoints_and_health_shape() {
    let refusing = RefusingPort::new();
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!(
        "{FAST}{}{}",
        tcp("api", up.port, ""),
        tcp("db", refusing.port, "critical = false"),
    ))
    .await;
    wait_reported(&d, &["api", "db"], true).await;

    let by_query = get(&d, "/readyz?format=json").await;
    let by_accept = request(&d, Method::GET, "/readyz", Some("application/json")).await;
    // Media types ignore case (RFC 9110 §8.3.1).
    let by_other_case = request(&d, Method::GET, "/readyz", Some("Application/JSON")).await;
    for r in [&by_query, &by_accept, &by_other_case] {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.content_type, "application/json");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["group"], "readiness");
        assert_eq!(v["status"], "degraded");
        assert_eq!(v["pass"], true);
        assert_eq!(v["started"], true);
        assert_eq!(v["draining"], false);
        let names: Vec<&str> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["api", "db"]);
        assert_eq!(check(&v, "db")["reason"], "connect");
    }
    let v: Value =
        serde_json::from_str(&get(&d, "/readyz?format=json&exclude=db").await.body).unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(check(&v, "db")["excluded"], true);
    let v: Value = serde_json::from_str(&get(&d, "/readyz/db?format=json").await.body).unwrap();
    assert_eq!(v["checks"].as_array().unwrap().len(), 1);

    let r = get(&d, "/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/json");
    let h: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["started"], true);
    assert!(h["generated_at"].as_str().unwrap().ends_with('Z'));
    for g in ["liveness", "readiness", "startup"] {
        let group = &h["groups"][g];
        for key in [
            "status",
            "pass",
            "checks",
            "healthy",
            "degraded",
            "unhealthy",
            "unknown",
        ] {
            assert!(!group[key].is_null(), "groups.{g}.{key} missing: {h}");
        }
    }
    let api = check(&h, "api");
    let db = check(&h, "db");
    for c in [api, db] {
        for key in [
            "name",
            "kind",
            "status",
            "critical",
            "groups",
            "message",
            "latency_ms",
            "last_run",
            "consecutive_failures",
            "consecutive_successes",
        ] {
            assert!(!c[key].is_null(), "{key} missing in {c}");
        }
        // Present as a key even when never happened (null), so consumers see the field.
        for key in ["last_success", "last_failure", "since"] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
    }
    assert_eq!(api["kind"], "tcp");
    assert_eq!(api["groups"], serde_json::json!(["readiness"]));
    assert!(api["last_success"].is_string());
    assert!(api["last_failure"].is_null());
    assert!(api["details"]["address"].is_string());
    assert_eq!(db["reason"], "connect");
    assert!(db["last_failure"].is_string());
    assert!(db["consecutive_failures"].as_u64().unwrap() >= 1);
    assert!(
        db["message"]
            .as_str()
            .unwrap()
            .contains("connect to 127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_socket_serves_probes() {
    let up = Switch::new_up().await;
    let d = TestDaemon::start(&format!("{FAST}{}", tcp("api", up.port, ""))).await;
    let http = d.client.clone();
    eventually_async("ready over the socket", Duration::from_secs(10), || async {
        let r = http.get(d.url("/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let r = http.get(d.url("/readyz?verbose")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.text().await.unwrap(), "[+]api ok\nreadyz check passed\n");
    let r = http.head(d.url("/livez")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(http.get(d.url("/nope")).send().await.unwrap().status(), 404);
}
