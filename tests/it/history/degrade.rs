//! `slo.degrade_on = "page"`: a check that stays healthy run by run (its failures never
//! reach failure_threshold in a row) but burns its error budget fast is shown degraded,
//! reason `slo`; the same check without the option keeps its verdict about now.

use std::time::Duration;

use crate::support::daemon::TestDaemon;
use crate::support::toml_str;

/// An exec check failing every third run (Nagios exit 2), counting in `counter`.
fn flaky(name: &str, counter: &std::path::Path, degrade: bool) -> String {
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; [ $((n % 3)) -ne 0 ] || exit 2",
        c = counter.display()
    );
    format!(
        "\n[[checks]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", {}]\ninterval = \"100ms\"\ntimeout = \"90ms\"\nfailure_threshold = 3\nflap_window = 0\nslo = {{ objective = 99.9, min_runs = 5{} }}\n",
        toml_str(&script),
        if degrade {
            ", degrade_on = \"page\""
        } else {
            ""
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_alert_degrades_only_checks_that_ask_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{}{}",
        flaky("opted-in", &dir.path().join("a"), true),
        flaky("default", &dir.path().join("b"), false)
    );
    let d = TestDaemon::start(&config).await;
    d.wait_runs("opted-in", 12, Duration::from_secs(20)).await;
    d.wait_runs("default", 12, Duration::from_secs(20)).await;
    // Committed, then the figures recomputed: a third of the runs failed, burn rate ≈ 333.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    d.daemon.history.refresh().await;
    let c = d
        .wait_check(
            "opted-in",
            "degraded by its SLO",
            Duration::from_secs(5),
            |v| v["status"] == "degraded",
        )
        .await;
    assert_eq!(c["reason"], "slo", "{c:#}");
    assert_eq!(c["slo"]["alert"]["page"], true, "{c:#}");
    let other = d.check("default").await;
    assert_eq!(other["slo"]["alert"]["page"], true, "{other:#}");
    assert_eq!(
        other["status"], "healthy",
        "the verdict stays about now: {other:#}"
    );
}
