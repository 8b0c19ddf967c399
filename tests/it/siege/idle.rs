//! Idle connections cannot lock probers out: with the connection budget full of sockets
//! that send nothing (or half a request head), a new `/readyz` still gets its answer,
//! because the connection idle the longest is closed to make room.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Poller;
use crate::support::config::ConfigDir;
use crate::support::daemon::Subprocess;
use crate::support::peers::live_port;
use crate::support::{START_TIMEOUT, eventually};

#[test]
fn idle_and_half_sent_connections_never_lock_a_prober_out() {
    let config = format!(
        r#"
[server]
shutdown_delay = "1s"

[server.limits]
max_connections = 64

[[checks]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = {}
interval = "200ms"
timeout = "150ms"
# The connection budget is under test, not the check's timing: a run delayed by a loaded
# machine must not turn the verdict stale (by default after 550 ms).
max_staleness = "5s"
"#,
        live_port()
    );
    let dir = ConfigDir::new(&config);
    let healthd = Subprocess::start(&dir, &[]);
    eventually("readiness", START_TIMEOUT, || {
        healthd.get("/readyz").0 == 200
    });

    let poller = Poller::start(healthd.addr);
    // 200 sockets (three times the budget), renewed for 3 s: half send nothing, half
    // send the start of a request head and stop.
    let mut idle: std::collections::VecDeque<TcpStream> = Default::default();
    let until = Instant::now() + Duration::from_secs(3);
    let mut opened = 0usize;
    while Instant::now() < until {
        if idle.len() >= 200 {
            idle.pop_front();
        }
        if let Ok(mut s) = TcpStream::connect(healthd.addr) {
            if opened % 2 == 1 {
                let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n");
            }
            opened += 1;
            idle.push_back(s);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    poller.assert_all_ready();
    drop(idle);
    assert!(opened > 300, "only {opened} idle connections opened");
}
