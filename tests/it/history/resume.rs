//! A restart resumes each check's failure and success counters from the history file
//! (never its status): the first result after the restart is judged by the thresholds as
//! if healthd had not stopped — but only from recent runs of a check of the same kind.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use healthd::history::Store;
use healthd::history::record::{RawResult, RunLevel};
use healthd::history::seed::Seed;
use serde_json::Value;

use crate::support::config::ConfigDir;
use crate::support::daemon::{Subprocess, check_in};
use crate::support::peers::RefusingPort;
use crate::support::{eventually, toml_path};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn check(name: &str, port: u16, interval: &str, failure_threshold: u32) -> String {
    format!(
        "\n[[checks]]\nname = \"{name}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\ninterval = \"{interval}\"\ntimeout = \"50ms\"\nfailure_threshold = {failure_threshold}\nsuccess_threshold = 2\n"
    )
}

/// The check's view once it has its first result of this run of healthd.
fn first_result(d: &Subprocess, name: &str) -> Value {
    let mut view = Value::Null;
    eventually(
        &format!("{name} to report"),
        Duration::from_secs(10),
        || {
            let h = d.health();
            match check_in(&h, name) {
                Some(c) if !c["last_run"].is_null() => {
                    view = c.clone();
                    true
                }
                _ => false,
            }
        },
    );
    view
}

/// Trailing failures of `db` in the file (the daemon is stopped).
fn stored_trailing_failures(path: &Path) -> usize {
    let store = Store::open_for_reading(path).expect("the file opens after a kill");
    let r = store.read().expect("read");
    let info = r.check("db").expect("checks").expect("db is in the store");
    r.raw(info.id, 1000)
        .expect("raw")
        .iter()
        .take_while(|x| x.level == RunLevel::Failed)
        .count()
}

#[test]
fn a_restart_resumes_the_failure_counter_but_not_the_status() {
    let refusing = RefusingPort::new();
    let db_dir = tempfile::tempdir().expect("tempdir");
    let path = db_dir.path().join("history.db");
    let main = format!(
        "[history]\npath = {}\n{}",
        toml_path(&path),
        check("db", refusing.port, "2s", 10)
    );
    let dir = ConfigDir::new(&main);
    let first = Subprocess::start(&dir, &[]);
    eventually("two failures committed", Duration::from_secs(20), || {
        let h = first.health();
        check_in(&h, "db").is_some_and(|c| c["consecutive_failures"].as_u64() >= Some(2))
            && Store::open_read_only(&path)
                .ok()
                .and_then(|s| s.read().ok()?.check("db").ok()?)
                .is_some()
    });
    // Let the commit of the second failure land (one a second), then kill -9.
    std::thread::sleep(Duration::from_millis(1200));
    first.stop();
    let stored = stored_trailing_failures(&path);
    assert!(stored >= 1, "failures were committed before the kill");

    let second = Subprocess::start(&dir, &[]);
    let c = first_result(&second, "db");
    assert_eq!(
        c["consecutive_failures"].as_u64(),
        Some(stored as u64 + 1),
        "the counter goes on from the {stored} stored failures: {c:#}"
    );
    assert_eq!(c["status"], "unhealthy", "{c:#}");
    // The status was not restored: it started unknown and changed at the first result.
    let from_unknown = second.log_lines().iter().any(|l| {
        l["message"] == "Check status changed."
            && l["check"] == "db"
            && l["from"] == "unknown"
            && l["to"] == "unhealthy"
    });
    assert!(
        from_unknown,
        "the status starts unknown after a restart:\n{}",
        second.logs()
    );
}

fn raw(at_ms: u64, level: RunLevel) -> RawResult {
    RawResult {
        at_ms,
        level,
        reason: (level == RunLevel::Failed).then(|| "connect".to_string()),
        latency_us: 300,
        message: "seeded".into(),
    }
}

#[test]
fn only_recent_runs_of_the_same_kind_are_resumed() {
    use RunLevel::{Failed as F, Ok as O};
    let refusing = RefusingPort::new();
    let db_dir = tempfile::tempdir().expect("tempdir");
    let path = db_dir.path().join("history.db");
    let now = now_ms();
    let (min, hour) = (60_000, 3_600_000);
    // Healthy, then one failure (of three) at `at`.
    let one_failure = |at: u64| vec![raw(at - 2 * min, O), raw(at - min, O), raw(at, F)];
    // With a 1h interval a result is trusted for about two hours (2 × interval + timeout).
    let seeds: [(&str, &str, Vec<RawResult>); 4] = [
        ("recent", "tcp", one_failure(now - min)),
        // Three hours ago: too old to count.
        ("old", "tcp", one_failure(now - 3 * hour)),
        // Recent, but another kind under this name.
        ("other-kind", "http", one_failure(now - min)),
        // Failing long ago, a gap of hours, then healthy with one failure: the run before
        // the gap does not count.
        (
            "gap",
            "tcp",
            vec![
                raw(now - 6 * hour, F),
                raw(now - 5 * hour, F),
                raw(now - 5 * hour + min, F),
                raw(now - 2 * min, O),
                raw(now - min, F),
            ],
        ),
    ];
    {
        let store = Store::open(&path).expect("create the history file");
        for (name, kind, raw) in &seeds {
            store
                .seed(&Seed {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    raw: raw.clone(),
                    ..Seed::default()
                })
                .expect("seed");
        }
    }
    let mut main = format!("[history]\npath = {}\n", toml_path(&path));
    for (name, _, _) in &seeds {
        main.push_str(&check(name, refusing.port, "1h", 3));
    }
    let d = Subprocess::start(&ConfigDir::new(&main), &[]);
    // Resumed: the refused connection is the second failure of three; the check stays
    // healthy, as it would have had healthd not stopped. Not resumed: from unknown, the
    // first result decides at once.
    for (name, want) in [
        ("recent", ("healthy", 2)),
        ("gap", ("healthy", 2)),
        ("old", ("unhealthy", 1)),
        ("other-kind", ("unhealthy", 1)),
    ] {
        let c = first_result(&d, name);
        assert_eq!(
            (c["status"].as_str(), c["consecutive_failures"].as_u64()),
            (Some(want.0), Some(want.1)),
            "{name}: {c:#}"
        );
    }
}
