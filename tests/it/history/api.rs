//! History through the daemon's surfaces: `/health` (`uptime`, `slo`), `/metrics`
//! (promtool-clean), and `/api/v1` (checks, buckets, status changes; bounded, validated,
//! behind the same access rule as `/health`).

use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::TestDaemon;
use crate::support::peers::{RefusingPort, live_port};
use crate::support::{promtool_check_metrics, toml_path};

fn config(up: u16, down: u16) -> String {
    format!(
        r#"
[[checks]]
name = "up"
kind = "tcp"
host = "127.0.0.1"
port = {up}
interval = "100ms"
timeout = "50ms"
slo = {{ objective = 99.9, window = "30d", min_runs = 5 }}

[[checks]]
name = "down"
kind = "tcp"
host = "127.0.0.1"
port = {down}
interval = "100ms"
timeout = "50ms"
critical = false
slo = {{ objective = 99, window = "7d" }}
"#
    )
}

async fn json(d: &TestDaemon, path: &str) -> (u16, Value) {
    let (code, body) = d.get(path).await;
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptime_and_slos_in_health_metrics_and_the_api() {
    let refusing = RefusingPort::new();
    let d = TestDaemon::start(&config(live_port(), refusing.port)).await;
    d.wait_runs("up", 15, Duration::from_secs(10)).await;
    d.wait_runs("down", 15, Duration::from_secs(10)).await;
    // The writer commits every second; then the view is recomputed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.daemon.history.refresh().await;

    let up = d.check("up").await;
    assert_eq!(up["uptime"]["1h"], 1.0, "{up:#}");
    assert_eq!(up["slo"]["objective"], 0.999, "{up:#}");
    assert_eq!(up["slo"]["error_budget_remaining"], 1.0, "{up:#}");
    assert_eq!(up["slo"]["burn_rates"]["5m"], 0.0, "{up:#}");
    assert_eq!(up["slo"]["alert"]["page"], false, "{up:#}");
    let down = d.check("down").await;
    assert_eq!(down["uptime"]["1h"], 0.0, "{down:#}");
    // Every run failed: burn rate 1 ÷ 0.01 = 100 everywhere; the scaled page windows
    // (14 min and 1 min for a 7-day SLO) both burn: page.
    assert_eq!(down["slo"]["burn_rates"]["1h"], 100.0, "{down:#}");
    assert_eq!(down["slo"]["alert"]["page"], true, "{down:#}");
    assert_eq!(down["slo"]["error_budget_remaining"], -99.0, "{down:#}");

    let (code, metrics) = d.get("/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "healthd_check_uptime_ratio{healthd_check_name=\"up\",window=\"1h\"} 1",
        "healthd_slo_objective_ratio{healthd_check_name=\"up\"} 0.999",
        "healthd_slo_burn_rate{healthd_check_name=\"down\",window=\"1h\"} 100",
        "healthd_slo_alert{healthd_check_name=\"down\",severity=\"page\"} 1",
        "healthd_slo_alert{healthd_check_name=\"up\",severity=\"ticket\"} 0",
        "healthd_slo_error_budget_remaining_ratio{healthd_check_name=\"up\"} 1",
        "healthd_history_dropped_total 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let written = metrics
        .lines()
        .find_map(|l| l.strip_prefix("healthd_history_written_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("written counter");
    assert!(written >= 30, "{written}");
    let (ok, out) = promtool_check_metrics(&metrics);
    assert!(ok, "promtool: {out}");

    let (code, checks) = json(&d, "/api/v1/checks").await;
    assert_eq!(code, 200);
    let names: Vec<&str> = checks["checks"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["up", "down"]);

    let (code, h) = json(&d, "/api/v1/checks/down/history?step=1m").await;
    assert_eq!(code, 200, "{h}");
    let points = h["points"].as_array().expect("points");
    let runs: u64 = points.iter().map(|p| p["runs"].as_u64().unwrap_or(0)).sum();
    let refused: u64 = points
        .iter()
        .map(|p| p["failed_by_reason"]["connect"].as_u64().unwrap_or(0))
        .sum();
    assert!(runs >= 15 && refused == runs, "{h:#}");
    let (code, h) = json(&d, "/api/v1/checks/up/history?step=1h&limit=1").await;
    assert_eq!(code, 200);
    assert_eq!(h["points"].as_array().map(Vec::len), Some(1), "{h}");
    assert!(
        h["points"][0]["latency_ms"]["p99"].as_f64().is_some(),
        "{h}"
    );

    let (code, e) = json(&d, "/api/v1/checks/down/events").await;
    assert_eq!(code, 200);
    assert_eq!(e["events"][0]["from"], "unknown", "{e}");
    assert_eq!(e["events"][0]["to"], "degraded", "{e}");
    assert_eq!(e["events"][0]["reason"], "connect", "{e}");

    for (path, code) in [
        ("/api/v1/checks/up/history?step=5m", 400),
        ("/api/v1/checks/up/history?from=yesterday", 400),
        ("/api/v1/checks/up/history?limit=100000", 400),
        ("/api/v1/checks/up/history?from=2&to=1", 400),
        ("/api/v1/checks/up/history?colour=blue", 400),
        ("/api/v1/checks/nope/history", 404),
        ("/api/v1/checks/nope/events", 404),
    ] {
        let (got, body) = d.get(path).await;
        assert_eq!(got, code, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_same_access_as_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = crate::support::write_secret(&dir.path().join("token"), "s3cret-history-token");
    let d = TestDaemon::start(&format!(
        "[server.auth]\ntoken_file = {}\ntrusted_networks = []\n{}",
        toml_path(&token),
        config(live_port(), live_port())
    ))
    .await;
    for path in [
        "/api/v1/checks",
        "/api/v1/checks/up/history",
        "/api/v1/checks/up/events",
    ] {
        assert_eq!(d.get(path).await.0, 401, "{path}");
        let r = d
            .client
            .get(d.url(path))
            .bearer_auth("s3cret-history-token")
            .send()
            .await
            .expect("request");
        assert_ne!(r.status().as_u16(), 401, "{path} with the token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_off_keeps_nothing() {
    let d = TestDaemon::start(&format!(
        "[history]\nenabled = false\n{}",
        config(live_port(), live_port())
    ))
    .await;
    d.wait_runs("up", 3, Duration::from_secs(10)).await;
    d.daemon.history.refresh().await;
    assert_eq!(d.get("/api/v1/checks").await.0, 404);
    let up = d.check("up").await;
    assert!(
        up.get("uptime").is_none() && up.get("slo").is_none(),
        "{up:#}"
    );
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        !metrics.contains("healthd_history_") && !metrics.contains("healthd_slo_"),
        "{metrics}"
    );
    let known = d
        .daemon
        .history
        .store
        .read()
        .expect("read")
        .checks()
        .expect("checks");
    assert!(known.is_empty(), "nothing written: {known:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_history_stays_within_its_limit_and_keeps_the_newest() {
    // 32 checks share 64 KiB: 2 KiB each, about 40 raw results of a `tcp` check. Past that
    // each check drops its oldest raw results, not what the windows read.
    let port = live_port();
    let mut main = String::from("[history]\nmemory_limit = \"64KiB\"\n");
    for i in 0..32 {
        main.push_str(&format!(
            "[[checks]]\nname = \"c{i:02}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\ninterval = \"100ms\"\ntimeout = \"50ms\"\n"
        ));
    }
    let d = TestDaemon::start(&main).await;
    let trimmed = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("healthd_history_trimmed_total "))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (_, m) = d.get("/metrics").await;
        if trimmed(&m).is_some_and(|n| n > 0) || tokio::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(trimmed(&metrics).is_some_and(|n| n > 0), "{metrics}");
    let (_, held) = d.daemon.history.store.usage().expect("usage");
    // Each check's entry and rows within its share; the names' map on top.
    assert!(held <= 64 * 1024 + 32 * 64, "{held} bytes held");

    d.daemon.history.refresh().await;
    let (code, h) = json(&d, "/api/v1/checks/c07/history?step=1m").await;
    assert_eq!(code, 200, "{h}");
    let points = h["points"].as_array().expect("points");
    let runs: u64 = points.iter().map(|p| p["runs"].as_u64().unwrap_or(0)).sum();
    // The minute buckets count more runs than the raw results the share leaves room for.
    assert!(runs >= 40, "{runs} runs: {h:#}");
    let up = d.check("c07").await;
    assert_eq!(up["uptime"]["1h"], 1.0, "{up:#}");
}
