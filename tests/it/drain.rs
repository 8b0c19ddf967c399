//! Shutdown, with the real binary: after SIGTERM (or SIGINT) `/readyz` answers 503
//! `shutting down` while `/livez` still answers 200, for `server.shutdown_delay`; then healthd
//! stops its checks and exits 0. A second signal exits at once.

use std::time::{Duration, Instant};

use crate::support::config::ConfigDir;
use crate::support::daemon::Subprocess;
use crate::support::peers::live_port;
use crate::support::{START_TIMEOUT, eventually};

fn config(port: u16, delay: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"
[server]
shutdown_delay = "{delay}"

[defaults]
interval = "300ms"
timeout = "250ms"

[[checks]]
name = "live"
kind = "tcp"
host = "127.0.0.1"
port = {port}
"#
    ))
}

fn logged(healthd: &Subprocess, message: &str) -> bool {
    healthd.log_lines().iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(message))
    })
}

#[test]
fn sigterm_fails_readiness_keeps_liveness_for_the_delay_then_exits_0() {
    let port = live_port();
    let delay = Duration::from_secs(3);
    let dir = config(port, "3s");
    let mut healthd = Subprocess::start(&dir, &[]);
    eventually("/readyz to pass", START_TIMEOUT, || {
        healthd.get("/readyz").0 == 200
    });

    let signalled = Instant::now();
    healthd.signal("TERM");
    eventually("/readyz to fail after SIGTERM", START_TIMEOUT, || {
        healthd.get("/readyz").0 == 503
    });
    // For the rest of the delay (less a margin for a loaded machine): still serving, not ready.
    let mut polls = 0;
    while signalled.elapsed() + Duration::from_millis(700) < delay {
        let (code, body) = healthd.get("/readyz");
        assert_eq!((code, body.as_str()), (503, "shutting down\n"));
        let (code, body) = healthd.get("/livez");
        assert_eq!(
            (code, body.as_str()),
            (200, "ok\n"),
            "liveness during the drain"
        );
        let h = healthd.health();
        assert_eq!(h["draining"], true);
        assert!(healthd.try_exit().is_none(), "exited during the delay");
        polls += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(polls > 0, "the drain window passed before the first poll");

    let exit = healthd
        .wait_exit(delay + START_TIMEOUT)
        .unwrap_or_else(|| panic!("no exit after the delay; log:\n{}", healthd.logs()));
    assert!(exit.success(), "exit {exit}; log:\n{}", healthd.logs());
    assert!(
        signalled.elapsed() >= delay,
        "exited {:?} after SIGTERM, before shutdown_delay",
        signalled.elapsed()
    );
    assert!(
        logged(&healthd, "Shutting down"),
        "log:\n{}",
        healthd.logs()
    );
    assert!(logged(&healthd, "Stopped."), "log:\n{}", healthd.logs());
}

#[test]
fn second_signal_exits_at_once() {
    let port = live_port();
    // A delay far longer than the test waits: only the second signal can end it in time.
    let dir = config(port, "10m");
    let mut healthd = Subprocess::start(&dir, &[]);
    eventually("/readyz to pass", START_TIMEOUT, || {
        healthd.get("/readyz").0 == 200
    });

    healthd.signal("INT");
    eventually("/readyz to fail after SIGINT", START_TIMEOUT, || {
        healthd.get("/readyz").0 == 503
    });
    assert!(healthd.try_exit().is_none());
    healthd.signal("TERM");
    let exit = healthd.wait_exit(START_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "second signal did not end healthd; log:\n{}",
            healthd.logs()
        )
    });
    // Not a clean drain, so not a clean exit status.
    assert_eq!(exit.code(), Some(1), "log:\n{}", healthd.logs());
    assert!(
        logged(&healthd, "Second signal: exiting at once."),
        "log:\n{}",
        healthd.logs()
    );
}
