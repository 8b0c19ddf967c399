//! `/metrics` over the streaming threshold: sent as it is rendered (no length, chunked), still
//! one valid exposition that promtool accepts, with every check's series, in both formats and
//! gzip.

use std::fmt::Write as _;
use std::time::Duration;

use healthd::telemetry::prometheus::STREAM_ABOVE;

use super::{stop, tcp_target};
use crate::support::daemon::TestDaemon;
use crate::support::{eventually_async, promtool_check_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_is_valid_and_holds_every_check() {
    let (tcp_port, _tcp) = tcp_target().await;
    let n = STREAM_ABOVE + 100;
    let mut config = String::from(
        "[server]\nshutdown_delay = \"10ms\"\n\n[defaults]\ninterval = \"1h\"\ntimeout = \"2s\"\n",
    );
    for i in 0..n {
        let _ = write!(
            config,
            "\n[[checks]]\nname = \"c{i}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {tcp_port}\n"
        );
    }
    let d = TestDaemon::start_with_env(&config, &[]).await;
    eventually_async("every check reported", Duration::from_secs(60), || async {
        let h = d.health().await;
        let checks = h["checks"].as_array().unwrap();
        checks
            .iter()
            .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with('c')))
            .all(|c| c["status"] == "healthy")
            .then_some(())
    })
    .await;

    // History's view is refreshed apart from the snapshot.
    let last = format!(
        "healthd_check_uptime_ratio{{healthd_check_name=\"c{}\"",
        n - 1
    );
    let text = eventually_async("history's figures", Duration::from_secs(60), || async {
        let text = scrape(&d, &[]).await;
        text.contains(&last).then_some(text)
    })
    .await;
    has_every_check(&text, n);
    let out = promtool_check_metrics(&text);
    assert!(out.0, "promtool check metrics failed:\n{}", out.1);

    let om = scrape(
        &d,
        &[("accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await;
    assert!(om.ends_with("\n# EOF\n"));
    assert_eq!(om.matches("# EOF").count(), 1);
    has_every_check(&om, n);

    let r = d
        .client
        .get(format!("{}/metrics", d.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    let unzipped = super::prometheus::gunzip(r).await;
    has_every_check(&unzipped, n);
    let out = promtool_check_metrics(&unzipped);
    assert!(out.0, "promtool check metrics failed (gzip):\n{}", out.1);
    stop(d).await;
}

/// `GET /metrics` with these headers: the body, after checking it was streamed.
async fn scrape(d: &TestDaemon, headers: &[(&str, &str)]) -> String {
    let mut req = d.client.get(format!("{}/metrics", d.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-length").is_none(),
        "streamed, not rendered whole: {:?}",
        r.headers()
    );
    r.text().await.unwrap()
}

/// Each family described once, and every check's status, runs and duration series present.
fn has_every_check(text: &str, n: usize) {
    for family in [
        "healthd_check_status",
        "healthd_check_breaker_open",
        // `_total` in the text format only.
        "healthd_check_runs",
        "healthd_check_duration_seconds",
        "healthd_group_status",
        // History's per-check gauges come in chunks too.
        "healthd_check_uptime_ratio",
    ] {
        let described = text
            .lines()
            .filter(|l| l.starts_with(&format!("# TYPE {family} ")))
            .count();
        let described_total = text
            .lines()
            .filter(|l| l.starts_with(&format!("# TYPE {family}_total ")))
            .count();
        assert_eq!(described + described_total, 1, "{family} described once");
    }
    // Each series up to its first label (the check's name).
    let series: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').next())
        .collect();
    for i in 0..n {
        for family in [
            "healthd_check_status",
            "healthd_check_breaker_open",
            "healthd_check_runs_total",
            "healthd_check_duration_seconds_count",
            "healthd_check_uptime_ratio",
        ] {
            let wanted = format!("{family}{{healthd_check_name=\"c{i}\"");
            assert!(series.contains(wanted.as_str()), "{wanted} missing");
        }
    }
}
