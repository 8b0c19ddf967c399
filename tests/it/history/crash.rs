//! A real history file under a real daemon: `kill -9` at arbitrary moments loses at most
//! about the last second of results and never corrupts the file, and history survives
//! every restart.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use healthd::history::Store;
use healthd::history::record::Resolution;

use crate::support::config::ConfigDir;
use crate::support::daemon::Subprocess;
use crate::support::peers::live_port;
use crate::support::{eventually, toml_path};

/// Most a kill may lose: the one-second batch being gathered, plus the run interval and
/// the commit's own time.
const MAY_LOSE: Duration = Duration::from_millis(1600);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

pub fn history_config(path: &Path, port: u16, interval: &str) -> String {
    format!(
        "[history]\npath = {}\n\n[[checks]]\nname = \"db\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\ninterval = \"{interval}\"\ntimeout = \"50ms\"\n",
        toml_path(path)
    )
}

/// `(raw results kept, newest result's time, sessions)` of check `db`.
fn stored(path: &Path) -> (usize, u64, usize) {
    let store = Store::open_for_reading(path).expect("the file opens after a kill");
    let r = store.read().expect("read");
    let sessions = r.sessions().expect("sessions").len();
    let Some(info) = r.checks().expect("checks").get("db").cloned() else {
        return (0, 0, sessions);
    };
    let raw = r.raw(info.id, 10_000).expect("raw");
    let count = |res| -> u32 {
        r.buckets(info.id, res, 0, u32::MAX)
            .expect("buckets")
            .iter()
            .map(|(_, b)| b.runs())
            .sum()
    };
    // Minute buckets are committed with the raw results; hours and days lag by the minutes
    // not rolled up yet (the next run of healthd rolls them).
    let minutes = count(Resolution::Minute);
    assert!(
        minutes as usize >= raw.len(),
        "minute buckets count every kept run"
    );
    assert!(count(Resolution::Day) <= minutes && count(Resolution::Hour) <= minutes);
    (
        raw.len(),
        raw.first().map(|x| x.at_ms).unwrap_or(0),
        sessions,
    )
}

#[test]
fn kill_9_loses_at_most_a_second_and_never_corrupts() {
    let port = live_port();
    let db_dir = tempfile::tempdir().expect("tempdir");
    let path = db_dir.path().join("history.db");
    let dir = ConfigDir::new(&history_config(&path, port, "100ms"));
    let mut kept = 0;
    for round in 0..6u64 {
        let daemon = Subprocess::start(&dir, &[]);
        // Results flow (the first commit comes within a second), then a kill at an
        // arbitrary moment of the commit cycle.
        eventually("results committed", Duration::from_secs(10), || {
            stored_while_running(&path) > kept
        });
        std::thread::sleep(Duration::from_millis(700 + round * 137));
        let killed_at = now_ms();
        daemon.stop(); // SIGKILL
        let (n, newest, sessions) = stored(&path);
        assert!(n > kept, "round {round}: history grew ({kept} → {n})");
        let lost = killed_at.saturating_sub(newest);
        assert!(
            lost <= MAY_LOSE.as_millis() as u64,
            "round {round}: the newest kept result is {lost} ms older than the kill"
        );
        assert_eq!(sessions as u64, round + 1, "one session per run of healthd");
        kept = n;
    }
}

/// Raw results committed so far, read while the daemon writes.
fn stored_while_running(path: &Path) -> usize {
    let Ok(store) = Store::open_read_only(path) else {
        return 0;
    };
    let Ok(r) = store.read() else { return 0 };
    let Some(info) = r.checks().ok().and_then(|c| c.get("db").cloned()) else {
        return 0;
    };
    r.raw(info.id, 100_000).map(|v| v.len()).unwrap_or(0)
}
