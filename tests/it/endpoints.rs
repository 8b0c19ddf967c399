//! The health model as the endpoints show it, with real checks against real loopback peers:
//! thresholds, criticality, group roll-up, startup gating, `?exclude`, `?verbose`,
//! single-check paths, JSON shapes, HEAD, 404, `fail_on_degraded`, and the endpoints staying
//! responsive while every dependency hangs. Most requests go through the router in-process
//! (`tower::ServiceExt::oneshot`); some through a real socket.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::support::daemon::TestDaemon;
use crate::support::eventually_async;
use crate::support::peers::{RefusingPort, SilentPeer};

struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

async fn request(d: &TestDaemon, method: Method, path: &str, accept: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = d
        .router()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        content_type,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(d: &TestDaemon, path: &str) -> Reply {
    request(d, Method::GET, path, None).await
}

async fn health(d: &TestDaemon) -> Value {
    serde_json::from_str(&get(d, "/health").await.body).unwrap()
}

fn check<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {health}"))
}

/// Wait until every named check has a status other than unknown and the startup latch is
/// set (when `started`).
async fn wait_reported(d: &TestDaemon, names: &[&str], started: bool) -> Value {
    eventually_async("checks reported", Duration::from_secs(10), || async {
        let h = health(d).await;
        let status = |n: &str| {
            h["checks"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["name"] == n))
                .map(|c| c["status"].clone())
        };
        let all = names
            .iter()
            .all(|n| status(n).is_some_and(|s| s != "unknown"));
        (all && (!started || h["started"] == true)).then_some(h)
    })
    .await
}

/// A TCP peer that can be taken down (port closed: refused) and brought back on the same
/// port.
struct Switch {
    port: u16,
    task: Option<JoinHandle<()>>,
}

impl Switch {
    async fn up_on(port: u16) -> Switch {
        let mut s = Switch { port, task: None };
        s.up().await;
        s
    }

    async fn new_up() -> Switch {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Self::up_on(port).await
    }

    async fn up(&mut self) {
        if self.task.is_some() {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.task = Some(tokio::spawn(async move {
            while listener.accept().await.is_ok() {}
        }));
    }

    async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

fn tcp(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[checks]]\nname = \"{name}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\n"
    )
}

const FAST: &str = "[defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n";

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
    assert!(v.ends_with("livez check failed: unhealthy\n"), "{v}");
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
    assert!(v.ends_with("readyz check failed: starting\n"), "{v}");
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
        "[+]fast ok\n[-]slow unknown: no result yet\nreadyz check failed: starting\n"
    );
    // Once the slow check times out it has reported, and startup completes.
    wait_reported(&d, &["slow"], true).await;
    assert_eq!(get(&d, "/startupz").await.status, StatusCode::OK);
    let h = health(&d).await;
    assert_eq!(check(&h, "slow")["reason"], "timeout");
}

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
        "[+]api ok\n[-]db failed: connect\n[-]cache failed: connect\nreadyz check failed: unhealthy\n"
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
    // Excluding an unknown name changes nothing.
    assert_eq!(
        get(&d, "/readyz?exclude=nope").await.status,
        StatusCode::SERVICE_UNAVAILABLE
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
    assert_eq!(
        r.body,
        "[-]db failed: connect\ndb check failed: unhealthy\n"
    );
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
    for path in ["/", "/nope", "/readyz/api/extra", "/healthz"] {
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
    for r in [&by_query, &by_accept] {
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
