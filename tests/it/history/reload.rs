//! A reload keeps history by name: a check whose definition changed but whose name did not
//! goes on in the same history; a removed check's history stays (listed as not configured)
//! until its retention ends or `healthd history prune`.

use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::TestDaemon;
use crate::support::peers::live_port;

fn check(name: &str, port: u16, interval: &str) -> String {
    format!(
        "\n[[checks]]\nname = \"{name}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\ninterval = \"{interval}\"\ntimeout = \"50ms\"\n"
    )
}

/// Runs of `name` in its minute buckets, from the store.
fn stored_runs(d: &TestDaemon, name: &str) -> u32 {
    let r = d.daemon.history.store.read().expect("read");
    let Some(info) = r.check(name).expect("check") else {
        return 0;
    };
    r.buckets(
        info.id,
        healthd::history::record::Resolution::Minute,
        0,
        u32::MAX,
    )
    .expect("minutes")
    .iter()
    .map(|(_, b)| b.runs())
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_follows_the_name_across_reloads() {
    let port = live_port();
    let mut d = TestDaemon::start(&format!(
        "{}{}",
        check("db", port, "100ms"),
        check("old", port, "100ms")
    ))
    .await;
    d.wait_runs("db", 10, Duration::from_secs(10)).await;
    crate::support::eventually_async("runs committed", Duration::from_secs(10), || async {
        (stored_runs(&d, "db") >= 10 && stored_runs(&d, "old") >= 5).then_some(())
    })
    .await;
    let before = stored_runs(&d, "db");
    let id = d
        .daemon
        .history
        .store
        .read()
        .expect("read")
        .check("db")
        .expect("db")
        .map(|i| i.id);

    // "db" changes its interval (a new definition, the same name); "old" is removed.
    d.dir.set_config(&check("db", port, "150ms"));
    d.daemon.reload().await.expect("reload accepted");
    crate::support::eventually_async("db's history goes on", Duration::from_secs(10), || async {
        (stored_runs(&d, "db") >= before + 10).then_some(())
    })
    .await;
    let r = d.daemon.history.store.read().expect("read");
    assert_eq!(
        r.check("db").expect("db").map(|i| i.id),
        id,
        "the same history"
    );
    assert!(
        r.check("old").expect("old").is_some(),
        "a removed check keeps its history"
    );
    d.daemon.history.refresh().await;
    let (code, body) = d.get("/api/v1/checks").await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    let old = v["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "old"))
        .cloned()
        .unwrap_or_else(|| panic!("old listed: {v:#}"));
    assert_eq!(old["configured"], false, "{old:#}");
}
