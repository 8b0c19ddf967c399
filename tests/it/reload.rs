//! Reload on SIGHUP, with the real binary: a valid change applies (new checks start, removed
//! ones disappear, changed ones restart) while unchanged checks keep their state and history;
//! an invalid change keeps the old configuration running, logs every error and shows the
//! failed reload in `/health` and the `config` self-check, until a valid reload clears it.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::config::{ConfigDir, tcp_toml as tcp_check};
use crate::support::daemon::{Subprocess, binary, check_in as check};
use crate::support::peers::{RefusingPort, live_port, slow_answer_port};
use crate::support::{START_TIMEOUT, eventually};

const MAIN: &str = r#"
[server]
shutdown_delay = "1s"

[defaults]
interval = "300ms"
timeout = "250ms"
failure_threshold = 3
"#;

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn status(h: &Value, name: &str) -> Option<String> {
    check(h, name).and_then(|c| c["status"].as_str().map(str::to_string))
}

fn counter(c: &Value, key: &str) -> u64 {
    c[key].as_u64().unwrap_or_else(|| panic!("no {key} in {c}"))
}

/// Wait for a reload newer than `previous_at` to show in `/health`.
fn wait_reload(healthd: &Subprocess, previous_at: &Value) -> Value {
    let mut seen = Value::Null;
    eventually("the reload to show in /health", START_TIMEOUT, || {
        seen = healthd.health();
        !seen["reload"].is_null() && seen["reload"]["at"] != *previous_at
    });
    seen
}

#[test]
fn valid_reload_applies_changes_and_unchanged_checks_keep_their_state() {
    let dir = ConfigDir::new(MAIN);
    let port = live_port();
    let refusing = RefusingPort::new();
    let down = refusing.port;
    let probes = dir.probes_dir();
    write(&probes.join("keep.toml"), &tcp_check("keep", port, ""));
    // Unchanged and failing: its failure count must survive the reload too.
    write(
        &probes.join("down.toml"),
        &tcp_check("down", down, "critical = false"),
    );
    write(
        &probes.join("removed.toml"),
        &tcp_check("removed", port, ""),
    );
    write(
        &probes.join("changed.toml"),
        &tcp_check("changed", port, ""),
    );
    let healthd = Subprocess::start(&dir, &[]);

    let mut before = Value::Null;
    eventually("every check to report a few times", START_TIMEOUT, || {
        before = healthd.health();
        ["keep", "removed", "changed"]
            .iter()
            .all(|n| status(&before, n).as_deref() == Some("healthy"))
            && check(&before, "keep").is_some_and(|c| counter(c, "consecutive_successes") >= 3)
            && check(&before, "down").is_some_and(|c| counter(c, "consecutive_failures") >= 3)
    });
    assert_eq!(status(&before, "down").as_deref(), Some("degraded"));
    let keep_before = check(&before, "keep").expect("keep").clone();
    let down_before = check(&before, "down").expect("down").clone();
    let changed_before = check(&before, "changed").expect("changed").clone();

    fs::remove_file(probes.join("removed.toml")).expect("remove drop-in");
    write(
        &probes.join("changed.toml"),
        &tcp_check("changed", port, "interval = \"400ms\""),
    );
    write(&probes.join("added.toml"), &tcp_check("added", port, ""));
    healthd.signal("HUP");

    // Watch the reload happen: the unchanged checks never flap (not to unknown, not at all).
    let mut after = Value::Null;
    eventually("the reload to apply", START_TIMEOUT, || {
        after = healthd.health();
        for (name, was) in [("keep", &keep_before), ("down", &down_before)] {
            let now = check(&after, name)
                .unwrap_or_else(|| panic!("unchanged check {name} vanished during the reload"));
            assert_eq!(now["status"], was["status"], "{name} flapped: {now}");
            assert_eq!(now["since"], was["since"], "{name} lost its history: {now}");
        }
        // The changed check keeps its verdict until its new definition has reported.
        let changed = check(&after, "changed").expect("changed check vanished");
        assert_eq!(
            changed["status"], "healthy",
            "changed check lost its verdict: {changed}"
        );
        after["reload"]["ok"] == true && check(&after, "added").is_some()
    });
    assert_eq!(after["reload"]["errors"], serde_json::json!([]));
    assert!(
        check(&after, "removed").is_none(),
        "removed check still shown"
    );
    let keep_after = check(&after, "keep").expect("keep");
    assert!(
        counter(keep_after, "consecutive_successes")
            >= counter(&keep_before, "consecutive_successes"),
        "keep's success count restarted: before {keep_before}, after {keep_after}"
    );
    let down_after = check(&after, "down").expect("down");
    assert!(
        counter(down_after, "consecutive_failures")
            >= counter(&down_before, "consecutive_failures"),
        "down's failure count restarted: before {down_before}, after {down_after}"
    );
    // The changed check restarted: its new definition reports after the reload, and its
    // healthy verdict runs on without a break (the same `since`).
    let reloaded_at = after["reload"]["at"]
        .as_str()
        .expect("reload time")
        .to_string();
    eventually("the changed check to report again", START_TIMEOUT, || {
        let h = healthd.health();
        let c = check(&h, "changed").expect("changed").clone();
        c["status"] == "healthy"
            && c["last_run"]
                .as_str()
                .is_some_and(|t| t > reloaded_at.as_str())
            && c["since"] == changed_before["since"]
    });
    eventually("the added check to report", START_TIMEOUT, || {
        status(&healthd.health(), "added").as_deref() == Some("healthy")
    });
    assert_eq!(
        status(&after, "config").as_deref(),
        Some("healthy"),
        "{after}"
    );
    assert!(
        healthd
            .log_lines()
            .iter()
            .any(|l| l["message"] == "Configuration reloaded."),
        "no reload log line; log:\n{}",
        healthd.logs()
    );
}

#[test]
fn invalid_reload_keeps_the_old_config_and_reports_every_error() {
    let dir = ConfigDir::new(MAIN);
    let port = live_port();
    let probes = dir.probes_dir();
    write(&probes.join("keep.toml"), &tcp_check("keep", port, ""));
    write(&probes.join("other.toml"), &tcp_check("other", port, ""));
    let healthd = Subprocess::start(&dir, &[]);
    eventually("both checks healthy", START_TIMEOUT, || {
        let h = healthd.health();
        status(&h, "keep").as_deref() == Some("healthy")
            && status(&h, "other").as_deref() == Some("healthy")
    });
    assert_eq!(
        status(&healthd.health(), "config").as_deref(),
        Some("healthy")
    );

    // Two errors in a new drop-in, and a removal that must NOT take effect.
    let bad = probes.join("bad.toml");
    write(
        &bad,
        &format!(
            "{}{}",
            tcp_check("typo", port, "colour = \"red\""),
            tcp_check("slow", port, "interval = \"1s\"\ntimeout = \"5s\"")
        ),
    );
    let other = fs::read_to_string(probes.join("other.toml")).expect("read other");
    fs::remove_file(probes.join("other.toml")).expect("remove other");
    healthd.signal("HUP");

    let h = wait_reload(&healthd, &Value::Null);
    assert_eq!(h["reload"]["ok"], false, "{h}");
    let errors: Vec<String> = h["reload"]["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| e.as_str().expect("error text").to_string())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let bad_name = bad.display().to_string();
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&bad_name) && e.contains("\"typo\"") && e.contains("colour")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&bad_name) && e.contains("\"slow\"") && e.contains("timeout")),
        "{errors:#?}"
    );
    assert!(h["reload"]["at"].is_string(), "{h}");
    // The config self-check says so …
    let cfg = check(&h, "config").expect("config self-check");
    assert_eq!(cfg["status"], "degraded", "{cfg}");
    assert_eq!(cfg["reason"], "config", "{cfg}");
    // … while the old configuration keeps running, and serving.
    assert!(check(&h, "typo").is_none() && check(&h, "slow").is_none());
    assert_eq!(status(&h, "other").as_deref(), Some("healthy"), "{h}");
    let (code, body) = healthd.get("/readyz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    // Every error is logged with file, key and reason.
    let logged: Vec<Value> = healthd
        .log_lines()
        .into_iter()
        .filter(|l| l["message"] == "Configuration error.")
        .collect();
    assert_eq!(logged.len(), 2, "log:\n{}", healthd.logs());
    for l in &logged {
        assert_eq!(l["file"], bad_name.as_str(), "{l}");
        assert!(l["key"].as_str().is_some_and(|k| !k.is_empty()), "{l}");
        assert!(l["reason"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
        assert_eq!(l["level"], "ERROR", "{l}");
    }
    assert!(
        healthd
            .log_lines()
            .iter()
            .any(|l| l["message"] == "Reload rejected; the running configuration stays in force."),
        "log:\n{}",
        healthd.logs()
    );

    // A later valid reload clears it.
    fs::remove_file(&bad).expect("remove bad drop-in");
    write(&probes.join("other.toml"), &other);
    let rejected_at = h["reload"]["at"].clone();
    healthd.signal("HUP");
    let h = wait_reload(&healthd, &rejected_at);
    assert_eq!(h["reload"]["ok"], true, "{h}");
    assert_eq!(h["reload"]["errors"], serde_json::json!([]));
    eventually("the config self-check to recover", START_TIMEOUT, || {
        status(&healthd.health(), "config").as_deref() == Some("healthy")
    });
}

#[test]
fn config_error_at_start_exits_78() {
    let dir = ConfigDir::new("[server]\nshutdown_delay = \"soon\"\n");
    let out = std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(dir.path())
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run healthd");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.shutdown_delay"), "stderr: {stderr}");
}

#[test]
fn a_check_added_by_a_reload_answers_pending_until_its_first_result() {
    let dir = ConfigDir::new(MAIN);
    let probes = dir.probes_dir();
    write(
        &probes.join("keep.toml"),
        &tcp_check("keep", live_port(), ""),
    );
    let healthd = Subprocess::start(&dir, &[]);
    eventually("keep to report", START_TIMEOUT, || {
        status(&healthd.health(), "keep").as_deref() == Some("healthy")
    });
    let previous = healthd.health()["reload"]["at"].clone();

    // Its first run holds the connection for 3 s before the peer answers.
    let slow = slow_answer_port(std::time::Duration::from_secs(3));
    write(
        &probes.join("slow.toml"),
        &tcp_check(
            "slow",
            slow,
            "send = \"PING\\n\"\nexpect = \"PONG\"\ntimeout = \"10s\"\ninterval = \"30s\"",
        ),
    );
    healthd.signal("HUP");
    let after = wait_reload(&healthd, &previous);
    assert_eq!(after["reload"]["ok"], true, "{after}");
    let pending = check(&after, "slow").expect("the added check is shown");
    assert_eq!(pending["pending"], true, "{pending}");

    // Not flipped by the reload (200), and not called ok either.
    assert_eq!(healthd.get("/readyz/slow"), (200, "pending\n".to_string()));
    let (code, verbose) = healthd.get("/readyz/slow?verbose");
    assert_eq!(code, 200, "{verbose}");
    assert!(
        verbose.contains("[+]slow pending: no result yet\n"),
        "{verbose}"
    );
    let (code, json) = healthd.get("/readyz/slow?format=json");
    let json: Value = serde_json::from_str(&json).expect("JSON body");
    assert_eq!(code, 200, "{json}");
    assert_eq!(json["status"], "unknown", "{json}");
    assert_eq!(json["pass"], true, "{json}");
    assert_eq!(json["checks"][0]["pending"], true, "{json}");
    // The group leaves it out, as before.
    assert_eq!(healthd.get("/readyz"), (200, "ok\n".to_string()));

    eventually("the added check's first result", START_TIMEOUT, || {
        healthd.get("/readyz/slow") == (200, "ok\n".to_string())
    });
    let done = healthd.health();
    let slow = check(&done, "slow").expect("slow");
    assert_eq!(slow["status"], "healthy", "{slow}");
    assert!(slow.get("pending").is_none(), "{slow}");
}
