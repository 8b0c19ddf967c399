//! File descriptors: healthd raises its soft limit to the hard one, client connections take
//! at most a quarter of it, and a probe run that fails for want of a descriptor is healthd's
//! own failure (the `descriptors` self-check), never the dependency's.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Poller, main_config, tcp};
use crate::support::config::ConfigDir;
use crate::support::daemon::{Subprocess, check_in};
use crate::support::peers::{live_port, slow_answer_port};
use crate::support::{START_TIMEOUT, eventually};

/// `(soft, hard)` from `/proc/PID/limits`.
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].to_string(), f[4].to_string())
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
    let dir = ConfigDir::new(&(main_config("500ms", "450ms") + &tcp("db", live_port(), "")));
    let healthd = Subprocess::start_with_nofile(&dir, 256, 4096);
    assert_eq!(nofile(healthd.pid()), ("4096".into(), "4096".into()));
    let mut h = Value::Null;
    eventually("the descriptors self-check", START_TIMEOUT, || {
        h = healthd.health();
        check_in(&h, "descriptors").is_some()
    });
    let d = check_in(&h, "descriptors").expect("descriptors");
    assert_eq!(d["status"], "healthy", "{d}");
    assert!(
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit 4096")),
        "{d}"
    );
    assert!(
        healthd.logs().contains("File descriptor limit raised"),
        "{}",
        healthd.logs()
    );
}

/// With only 128 descriptors (hard limit too), 300 idle clients renewed for 3 s: before,
/// they filled the table and the tcp check failed with `Too many open files`.
#[test]
fn idle_clients_cannot_take_the_descriptors_the_probes_need() {
    let often = "interval = \"100ms\"\ntimeout = \"90ms\"";
    let dir = ConfigDir::new(&(main_config("500ms", "450ms") + &tcp("db", live_port(), often)));
    let healthd = Subprocess::start_with_nofile(&dir, 128, 128);
    eventually("readiness", START_TIMEOUT, || {
        healthd.get("/readyz").0 == 200
    });
    let poller = Poller::start(healthd.addr);
    let mut idle: std::collections::VecDeque<TcpStream> = Default::default();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if idle.len() >= 300 {
            idle.pop_front();
        }
        if let Ok(s) = TcpStream::connect(healthd.addr) {
            idle.push_back(s);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    poller.assert_all_ready();
    drop(idle);
    let h = healthd.health();
    let db = check_in(&h, "db").expect("db");
    assert_eq!(db["status"], "healthy", "{db}");
    assert!(
        db["last_failure"].is_null(),
        "a run of db was counted failed: {db}"
    );
    assert!(
        !healthd.logs().contains("Too many open files"),
        "{}",
        healthd.logs()
    );
}

/// 30 checks whose peer answers after 300 ms, with 24 descriptors in all: many runs find no
/// descriptor. None of them may count against its check; the self-check says what happened.
#[test]
fn a_run_that_lacks_a_descriptor_is_not_counted_against_the_dependency() {
    let port = slow_answer_port(Duration::from_millis(300));
    let mut config = main_config("500ms", "450ms");
    for i in 0..30 {
        config += &tcp(
            &format!("c{i}"),
            port,
            "send = \"PING\\n\"\nexpect = \"PONG\"",
        );
    }
    let dir = ConfigDir::new(&config);
    let healthd = Subprocess::start_with_nofile(&dir, 24, 24);
    let mut h = Value::Null;
    eventually(
        "the descriptors self-check to report the shortage",
        START_TIMEOUT,
        || {
            h = healthd.health();
            check_in(&h, "descriptors").is_some_and(|d| d["status"] == "degraded")
        },
    );
    // Let it run a while in the shortage.
    std::thread::sleep(Duration::from_secs(2));
    let h = healthd.health();
    let d = check_in(&h, "descriptors").expect("descriptors");
    assert_eq!(d["reason"], "internal", "{d}");
    assert!(
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("out of file descriptors")),
        "{d}"
    );
    for i in 0..30 {
        let c = check_in(&h, &format!("c{i}")).expect("check");
        assert!(
            c["last_failure"].is_null() && c["status"] != "unhealthy",
            "a run that lacked a descriptor counted against the check: {c}"
        );
    }
}
