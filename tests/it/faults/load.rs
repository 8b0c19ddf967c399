//! Many probes at once: no TIME_WAIT pile-up on the target, and 2,000 checks against one
//! slow peer stay within the bulkhead while the endpoints keep answering.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use healthd::config::{Sources, load};
use healthd::model::Level;
use healthd::scheduler::run_once;

use super::SLACK;
use crate::support::daemon::{TestDaemon, last_run};
use crate::support::peers::{ANSWER, HttpPeer, TcpPeer, report};
use crate::support::{eventually_async, install_crypto};

/// Count sockets in TIME_WAIT whose local port is `port` (the target's side) and whose
/// remote port is `port` (our side), from /proc/net/tcp and tcp6.
fn time_wait(port: u16) -> (usize, usize) {
    let mut target = 0;
    let mut ours = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != "06" {
                continue;
            }
            let port_of = |a: &str| {
                a.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port_of(f[1]) == Some(port) {
                target += 1;
            }
            if port_of(f[2]) == Some(port) {
                ours += 1;
            }
        }
    }
    (target, ours)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_leave_no_time_wait_pile_up_on_the_target() {
    install_crypto();
    const RUNS: usize = 300;
    let peer = TcpPeer::start(ANSWER).await;
    let cfg = format!(
        "[[checks]]\nname = \"t\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        peer.addr.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let config = load(&Sources {
        config: Some(path),
        probes_dir: Some(empty.path().to_path_buf()),
        env: Some(Default::default()),
    })
    .unwrap();
    let check = &config.checks[0];
    let mut probe = None;
    for _ in 0..RUNS {
        let o = run_once(&mut probe, check).await;
        assert_eq!(o.level, Level::Ok, "{}", o.message);
    }
    // The peer closes once it has read our FIN; give it a moment to get there.
    edge_eventually(|| peer.open.load(Ordering::SeqCst) == 0).await;
    let (target, ours) = time_wait(peer.addr.port());
    eprintln!("TIMEWAIT tcp runs={RUNS} target_side={target} probe_side={ours}");
    assert!(
        target <= RUNS / 20,
        "{target} TIME_WAIT sockets on the target after {RUNS} runs"
    );

    // HTTP: one client per check with keep-alive, so one connection for all runs.
    let http = HttpPeer::start().await;
    let cfg = format!(
        "[[checks]]\nname = \"h\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        http.url()
    );
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let config = load(&Sources {
        config: Some(dir.path().join("c.toml")),
        probes_dir: Some(empty.path().to_path_buf()),
        env: Some(Default::default()),
    })
    .unwrap();
    let mut probe = None;
    for _ in 0..RUNS {
        let o = run_once(&mut probe, &config.checks[0]).await;
        assert_eq!(o.level, Level::Ok, "{}", o.message);
        // Runs are an interval apart in the daemon; back to back, the finished connection
        // may not be back in the pool yet when the next request starts.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let conns = http.connections.lock().map(|c| c.len()).unwrap_or(0);
    let (target, _) = time_wait(http.addr.port());
    eprintln!("TIMEWAIT http runs={RUNS} connections={conns} target_side={target}");
    assert!(
        conns <= RUNS / 20,
        "{conns} connections for {RUNS} requests"
    );
    assert!(target <= 2);
}

/// Waits up to SLACK for `cond`, and carries on either way (what follows measures).
async fn edge_eventually(cond: impl Fn() -> bool) {
    let wait = eventually_async("the condition", SLACK * 2, || async {
        cond().then_some(())
    });
    let _ = tokio::time::timeout(SLACK, wait).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_checks_against_one_slow_peer_stay_within_the_bulkhead() {
    const CHECKS: usize = 2000;
    const LIMIT: usize = 64;
    // The peer answers each connection after 300 ms and counts connections it is serving.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let (serving, peak, accepted) = (serving.clone(), peak.clone(), accepted.clone());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let now = serving.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                accepted.fetch_add(1, Ordering::SeqCst);
                let serving = serving.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    // Counted from accept until just before answering: strictly inside the
                    // time the probe holds its slot in the bulkhead.
                    serving.fetch_sub(1, Ordering::SeqCst);
                    let _ = s.write_all(b"PONG\n").await;
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
    }
    let witness = TcpPeer::start(ANSWER).await;
    let mut cfg = format!(
        "[server]\nmax_in_flight = {LIMIT}\n\n[defaults]\ninterval = \"10s\"\ntimeout = \"2s\"\n\n[[checks]]\nname = \"witness\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n",
        witness.addr.port()
    );
    for i in 0..CHECKS {
        cfg.push_str(&format!(
            "\n[[checks]]\nname = \"slow-{i}\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\nsend = \"PING\\n\"\nexpect = \"PONG\"\n"
        ));
    }
    let h = TestDaemon::start(&cfg).await;
    // While the bulkhead is saturated, the endpoints answer at once.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut witness_runs = std::collections::HashSet::new();
    while started.elapsed() < Duration::from_secs(15) {
        let t = Instant::now();
        assert_eq!(h.get("/livez").await.0, 200);
        let (code, _) = h.get("/readyz").await;
        assert!(code == 200 || code == 503);
        slowest = slowest.max(t.elapsed());
        let v = h.check("witness").await;
        witness_runs.insert(last_run(&v));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak = peak.load(Ordering::SeqCst);
    let accepted = accepted.load(Ordering::SeqCst);
    eprintln!(
        "BULKHEAD checks={CHECKS} limit={LIMIT} peak_in_flight={peak} probes={accepted} slowest_endpoint={:.3}s witness_runs={}",
        slowest.as_secs_f64(),
        witness_runs.len()
    );
    assert!(peak <= LIMIT, "{peak} probes in flight, limit {LIMIT}");
    assert!(
        peak >= LIMIT / 2,
        "the test did not load the bulkhead ({peak})"
    );
    assert!(
        accepted >= CHECKS,
        "every check ran at least once ({accepted})"
    );
    assert!(witness_runs.len() >= 2, "the witness kept running");
    // Every check reported: startup completed and readiness passes.
    let (code, body) = h.get("/readyz").await;
    assert_eq!(code, 200, "{body}");
    report("bulkhead_2000_checks", None, None);
}
