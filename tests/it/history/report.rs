//! `healthd report` and `healthd history prune` on a real daemon's file: read while the
//! daemon writes it, across a restart (the gap is time without data, never uptime), in
//! every format; prune refuses a running daemon's file and forgets removed checks.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::config::ConfigDir;
use crate::support::daemon::{Subprocess, binary};
use crate::support::peers::{RefusingPort, live_port};
use crate::support::{CMD_TIMEOUT, eventually, output_text, run_with_timeout, toml_path};

fn config(path: &std::path::Path, up: u16, down: Option<u16>) -> String {
    let mut c = format!(
        "[server]\nshutdown_delay = \"10ms\"\n\n[history]\npath = {}\n\n[[checks]]\nname = \"up\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {up}\ninterval = \"100ms\"\ntimeout = \"50ms\"\nslo = {{ objective = 99.9, min_runs = 5 }}\n",
        toml_path(path)
    );
    if let Some(down) = down {
        c.push_str(&format!(
            "\n[[checks]]\nname = \"down\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {down}\ninterval = \"100ms\"\ntimeout = \"50ms\"\nfailure_threshold = 1\n"
        ));
    }
    c
}

/// `healthd ARGS --config DIR/healthd.toml`: (success, stdout, stderr).
fn healthd(dir: &ConfigDir, args: &[&str]) -> (bool, String, String) {
    let out = run_with_timeout(
        Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(dir.path()),
        CMD_TIMEOUT,
    )
    .expect("healthd runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            output_text(&out)
        ),
    )
}

fn report_json(dir: &ConfigDir) -> Value {
    let (ok, out, err) = healthd(dir, &["report", "--since", "1h", "--format", "json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Runs of a check in a report, 0 when it is not (yet) there.
fn runs(r: &Value, name: &str) -> u64 {
    r["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .and_then(|c| c["runs"].as_u64())
        .unwrap_or(0)
}

fn check<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{name} in {r:#}"))
}

#[test]
fn report_reads_a_live_file_counts_gaps_as_no_data_and_prune_forgets() {
    let refusing = RefusingPort::new();
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().join("history.db");
    let dir = ConfigDir::new(&config(&path, live_port(), Some(refusing.port)));

    let mut first = Subprocess::start(&dir, &[]);
    // Read while the daemon writes: the report sees committed runs of both checks.
    eventually("runs in the report", Duration::from_secs(15), || {
        let r = report_json(&dir);
        runs(&r, "up") >= 10 && runs(&r, "down") >= 10
    });
    first.signal("TERM");
    assert!(
        first
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    // healthd is down for a while: no data, not uptime.
    std::thread::sleep(Duration::from_secs(3));
    let second = Subprocess::start(&dir, &[]);
    let before = report_json(&dir);
    let had = runs(&before, "up");
    eventually("runs after the restart", Duration::from_secs(15), || {
        runs(&report_json(&dir), "up") > had + 5
    });
    let r = report_json(&dir);
    let up = check(&r, "up");
    assert_eq!(
        up["availability"], 1.0,
        "the gap is not counted, good or bad: {up:#}"
    );
    assert!(
        up["no_data_seconds"].as_f64().unwrap_or(0.0) >= 2.9,
        "{up:#}"
    );
    assert!(
        r["healthd_not_running_seconds"].as_f64().unwrap_or(0.0) >= 2.9,
        "{r:#}"
    );
    assert_eq!(up["slo"]["objective"], 0.999, "{up:#}");
    let down = check(&r, "down");
    assert_eq!(down["availability"], 0.0, "{down:#}");
    assert_eq!(down["failed"], down["runs"]);
    let incidents = down["incidents"].as_array().expect("incidents");
    assert!(!incidents.is_empty(), "{down:#}");
    assert_eq!(incidents[0]["status"], "unhealthy");
    assert_eq!(incidents[0]["reason"], "connect");

    let (ok, text, err) = healthd(&dir, &["report", "--since", "1h"]);
    assert!(ok, "{err}");
    for words in [
        "healthd not running:",
        "AVAILABILITY",
        "100.000 %",
        "0.000 %",
        "Incidents:",
        "connect",
    ] {
        assert!(text.contains(words), "{words:?} missing:\n{text}");
    }
    let (ok, csv, err) = healthd(&dir, &["report", "--since", "1h", "--format", "csv"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("check,kind,configured,"), "{csv}");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("up,tcp,true,"), "{csv}");

    // Prune needs the file to itself.
    let (ok, _, err) = healthd(&dir, &["history", "prune"]);
    assert!(!ok && err.contains("stop it first"), "{err}");
    drop(second);
    // "down" removed from the config: prune deletes its history, keeps "up".
    dir.set_config(&config(&path, live_port(), None));
    let (ok, out, err) = healthd(&dir, &["history", "prune"]);
    assert!(ok, "{err}");
    assert!(out.contains("1 removed check(s): down"), "{out}");
    let r = report_json(&dir);
    let names: Vec<&str> = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["up"]);
}

#[test]
fn report_without_a_file_says_why() {
    let dir = ConfigDir::new(
        "[[checks]]\nname = \"a\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 1\n",
    );
    let (ok, _, err) = healthd(&dir, &["report"]);
    assert!(!ok);
    assert!(err.contains("[history] path is not set"), "{err}");
}
