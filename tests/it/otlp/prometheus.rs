//! The daemon's real `/metrics`: every family present, `promtool check metrics` accepts it,
//! and OpenMetrics for scrapers that ask for it.

use std::time::Duration;

use super::{checks_config, stop, tcp_target};
use crate::support::daemon::TestDaemon;
use crate::support::{eventually_async, promtool_check_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_metrics() {
    let (tcp_port, _tcp) = tcp_target().await;
    let d = TestDaemon::start_with_env(&checks_config(tcp_port), &[]).await;
    eventually_async("every check reported", Duration::from_secs(20), || async {
        ({
            let h = d.health().await;
            ["cpu", "memory", "disk", "db"].iter().all(|n| {
                h["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["name"] == *n && c["status"] != "unknown")
            })
        })
        .then_some(())
    })
    .await;
    let r = d
        .client
        .get(format!("{}/metrics", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for family in [
        "healthd_check_status",
        "healthd_group_status",
        "healthd_check_runs_total",
        "healthd_check_duration_seconds",
        "system_cpu_utilization_ratio",
        "system_cpu_load_average_1m",
        "system_uptime_seconds",
        "system_memory_usage_bytes",
        "system_memory_utilization_ratio",
        "system_filesystem_usage_bytes",
        "system_filesystem_utilization_ratio",
        "system_cpu_time_seconds_total",
        "system_filesystem_inodes_usage",
        "system_network_io_bytes_total",
        "system_paging_faults_total",
        "system_processes",
        "system_linux_pressure_time_seconds_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    let out = promtool_check_metrics(&text);
    assert!(out.0, "promtool check metrics failed:\n{}\n{text}", out.1);

    // OpenMetrics for scrapers that ask for it.
    let r = scrape(&d, "accept", "application/openmetrics-text; version=1.0.0").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(r.text().await.unwrap().ends_with("# EOF\n"));

    // gzip for scrapers that accept it (Prometheus does): the same text, compressed.
    let r = scrape(&d, "accept-encoding", "gzip").await;
    let unzipped = gunzip(r).await;
    assert!(
        unzipped.contains("# TYPE healthd_check_status gauge"),
        "{unzipped}"
    );
    let out = promtool_check_metrics(&unzipped);
    assert!(
        out.0,
        "promtool check metrics failed:\n{}\n{unzipped}",
        out.1
    );
    // `q=0` refuses it.
    let r = scrape(&d, "accept-encoding", "gzip;q=0, identity").await;
    assert!(r.headers().get("content-encoding").is_none());
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("# TYPE healthd_check_status gauge")
    );
    stop(d).await;
}

/// `GET /metrics` with one request header.
async fn scrape(d: &TestDaemon, header: &str, value: &str) -> reqwest::Response {
    d.client
        .get(format!("{}/metrics", d.base))
        .header(header, value)
        .send()
        .await
        .unwrap()
}

/// A `/metrics` answer's text, after checking it is gzip (at least 3× smaller than the text).
pub(super) async fn gunzip(r: reqwest::Response) -> String {
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["vary"], "accept-encoding");
    let gz = r.bytes().await.unwrap();
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
        .expect("a gzip body");
    assert!(
        gz.len() * 3 < unzipped.len(),
        "{} of {}",
        gz.len(),
        unzipped.len()
    );
    unzipped
}
