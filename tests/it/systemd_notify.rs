//! sd_notify, end to end: the real binary sends its notifications to a Unix datagram socket
//! the test binds and names in `NOTIFY_SOCKET`, as systemd does: READY=1, a STATUS= line kept
//! current, WATCHDOG=1 at half of `WATCHDOG_USEC` (and only while the snapshot loop makes
//! progress), RELOADING=1 … READY=1 around SIGHUP, STOPPING=1 on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::config::ConfigDir;
use crate::support::daemon::Subprocess;
use crate::support::peers::{RefusingPort, live_port};
use crate::support::{START_TIMEOUT, eventually};

/// The socket systemd would listen on, and every datagram received on it.
struct NotifySocket {
    sock: UnixDatagram,
    /// `(when received, datagram text)`.
    got: Vec<(Instant, String)>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let sock = UnixDatagram::bind(path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set read timeout");
        NotifySocket {
            sock,
            got: Vec::new(),
        }
    }

    /// Receive whatever arrived, waiting at most one read timeout.
    fn pump(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }

    /// Index of the first datagram at or after `from` that satisfies `pred`, receiving until
    /// one does; panics after `timeout` with everything received.
    fn wait_for(
        &mut self,
        what: &str,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.got.iter().skip(from).position(|(_, m)| pred(m)) {
                return from + i;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no notification {what} within {timeout:?}; received:\n{:#?}",
                    self.texts()
                );
            }
            self.pump();
        }
    }

    fn texts(&self) -> Vec<&str> {
        self.got.iter().map(|(_, m)| m.as_str()).collect()
    }

    /// The times of WATCHDOG=1 pings at or after index `from`.
    fn pings(&self, from: usize) -> Vec<Instant> {
        self.got
            .iter()
            .skip(from)
            .filter(|(_, m)| has_line(m, "WATCHDOG=1"))
            .map(|(t, _)| *t)
            .collect()
    }
}

fn has_line(datagram: &str, line: &str) -> bool {
    datagram.lines().any(|l| l == line)
}

fn status_of(datagram: &str) -> Option<&str> {
    datagram.lines().find_map(|l| l.strip_prefix("STATUS="))
}

/// Two TCP checks: one against a live listener (healthy), one against a closed port
/// (non-critical, so degraded). Short intervals keep the test fast.
fn config(live: u16, closed: u16) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"
[server]
shutdown_delay = "1s"
stall_after = "1s"

[defaults]
interval = "300ms"
timeout = "250ms"
failure_threshold = 1

[[checks]]
name = "live"
kind = "tcp"
host = "127.0.0.1"
port = {live}

[[checks]]
name = "closed"
kind = "tcp"
host = "127.0.0.1"
port = {closed}
critical = false
"#
    ))
}

#[test]
fn notifies_ready_status_watchdog_reload_and_stopping() {
    let live_port = live_port();
    let refusing = RefusingPort::new();
    let dir = config(live_port, refusing.port);
    let sock_path = dir.dir.path().join("notify.sock");
    let mut notify = NotifySocket::bind(&sock_path);
    let mut healthd = Subprocess::start(
        &dir,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().expect("utf-8 path")),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );

    // READY=1 comes with a first STATUS= line.
    let ready = notify.wait_for("READY=1", 0, START_TIMEOUT, |m| has_line(m, "READY=1"));
    let first = &notify.got[ready].1;
    let status = status_of(first).unwrap_or_else(|| panic!("READY=1 without STATUS=: {first:?}"));
    assert!(
        status.starts_with("readiness: ") && status.contains("; 2 checks"),
        "status {status:?}"
    );
    // /readyz is already served when READY=1 is sent.
    let (code, _) = healthd.get("/livez");
    assert_eq!(code, 200);

    // The STATUS= line follows the checks as they report.
    // (/readyz passes when degraded, but says so.)
    let summary = "readiness: degraded; 2 checks: 1 healthy, 1 degraded";
    notify.wait_for(summary, ready, START_TIMEOUT, |m| {
        status_of(m) == Some(summary)
    });

    // WATCHDOG=1 every 0.5 s (half of WATCHDOG_USEC): wait for several.
    let deadline = Instant::now() + START_TIMEOUT;
    while notify.pings(ready).len() < 4 {
        assert!(
            Instant::now() < deadline,
            "fewer than 4 WATCHDOG=1 in {START_TIMEOUT:?}: {:#?}",
            notify.texts()
        );
        notify.pump();
    }
    assert!(
        healthd.log_lines().iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("systemd watchdog enabled"))),
        "no log line about the watchdog"
    );

    // SIGHUP with a valid config: RELOADING=1 (with MONOTONIC_USEC=) … READY=1.
    let before = notify.got.len();
    healthd.signal("HUP");
    let reloading = notify.wait_for("RELOADING=1", before, START_TIMEOUT, |m| {
        has_line(m, "RELOADING=1")
    });
    assert!(
        notify.got[reloading].1.lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok())),
        "RELOADING=1 without MONOTONIC_USEC=: {:?}",
        notify.got[reloading].1
    );
    let reready = notify.wait_for(
        "READY=1 after RELOADING=1",
        reloading + 1,
        START_TIMEOUT,
        |m| has_line(m, "READY=1"),
    );
    let status = status_of(&notify.got[reready].1)
        .unwrap_or_default()
        .to_string();
    assert!(
        status.starts_with("configuration reloaded"),
        "status {status:?}"
    );

    // SIGHUP with a broken config: the old one keeps running, so READY=1 again, and the
    // STATUS says the reload was rejected, then stays marked in the summary.
    dir.set_config("[server]\nshutdown_delay = \"soon\"\n");
    let before = notify.got.len();
    healthd.signal("HUP");
    let reloading = notify.wait_for("RELOADING=1", before, START_TIMEOUT, |m| {
        has_line(m, "RELOADING=1")
    });
    let reready = notify.wait_for(
        "READY=1 after a rejected reload",
        reloading + 1,
        START_TIMEOUT,
        |m| has_line(m, "READY=1"),
    );
    let status = status_of(&notify.got[reready].1)
        .unwrap_or_default()
        .to_string();
    assert!(
        status.starts_with("reload rejected: 1 problem(s)"),
        "status {status:?}"
    );
    notify.wait_for(
        "summary marking the rejected reload",
        reready,
        START_TIMEOUT,
        |m| {
            status_of(m).is_some_and(|s| {
                s.starts_with("readiness: degraded; 2 checks")
                    && s.ends_with("; last reload rejected (1 problem(s))")
            })
        },
    );

    // SIGTERM: STOPPING=1, then a clean exit after shutdown_delay.
    let before = notify.got.len();
    healthd.signal("TERM");
    let stopping = notify.wait_for("STOPPING=1", before, START_TIMEOUT, |m| {
        has_line(m, "STOPPING=1")
    });
    assert!(
        status_of(&notify.got[stopping].1).is_some_and(|s| s.starts_with("shutting down")),
        "{:?}",
        notify.got[stopping].1
    );
    let exit = healthd.wait_exit(START_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "healthd did not exit after SIGTERM; log:\n{}",
            healthd.logs()
        )
    });
    assert!(exit.success(), "exit {exit}; log:\n{}", healthd.logs());
}

/// With the test-only stall hook, SIGUSR2 freezes the health loop: the snapshot stops being
/// published, and WATCHDOG=1 pings stop, so systemd would restart healthd.
#[test]
fn watchdog_pings_stop_when_the_snapshot_loop_stalls() {
    let live_port = live_port();
    let refusing = RefusingPort::new();
    let dir = config(live_port, refusing.port);
    let sock_path = dir.dir.path().join("notify.sock");
    let mut notify = NotifySocket::bind(&sock_path);
    let healthd = Subprocess::start(
        &dir,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().expect("utf-8 path")),
            ("WATCHDOG_USEC", "1000000"),
            ("HEALTHD_TEST_STALL_ON_SIGUSR2", "1"),
        ],
    );

    let ready = notify.wait_for("READY=1", 0, START_TIMEOUT, |m| has_line(m, "READY=1"));
    notify.wait_for("STATUS=", 0, START_TIMEOUT, |m| status_of(m).is_some());
    let deadline = Instant::now() + START_TIMEOUT;
    while notify.pings(ready).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no steady WATCHDOG=1: {:#?}",
            notify.texts()
        );
        notify.pump();
    }
    assert_eq!(healthd.get("/livez").0, 200);

    healthd.signal("USR2");
    let stalled_at = Instant::now();

    // The liveness endpoint sees the stall (snapshot older than stall_after = 1s) …
    eventually("/livez to fail on the stalled loop", START_TIMEOUT, || {
        healthd.get("/livez").0 == 503
    });
    // … and the pings stop: wait for a quiet period of 3 s (6 ping periods) with none.
    let quiet = Duration::from_secs(3);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        notify.pump();
        let last = notify
            .pings(ready)
            .last()
            .copied()
            .unwrap_or(stalled_at)
            .max(stalled_at);
        if last.elapsed() >= quiet {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "WATCHDOG=1 kept coming after the stall: {} pings in total",
            notify.pings(ready).len()
        );
    }
    // The process is still running (only systemd would kill it), and says why it is quiet.
    let mut healthd = healthd;
    assert!(
        healthd.try_exit().is_none(),
        "healthd exited; log:\n{}",
        healthd.logs()
    );
    assert!(
        healthd.log_lines().iter().any(|l| l["message"]
            == "Snapshot loop stalled; withholding watchdog pings so systemd restarts healthd."),
        "no log line about withholding pings; log:\n{}",
        healthd.logs()
    );
    // The STATUS= line says so too.
    notify.wait_for("STATUS= naming the stall", ready, START_TIMEOUT, |m| {
        status_of(m).is_some_and(|s| s.contains("snapshot loop stalled"))
    });
}
