//! 1,000 clients hammering `/health` and `/metrics` of a daemon with 1,000 checks: the probe
//! endpoints keep their answers (they have their own lane), heavy requests are answered or
//! shed at once with `Retry-After`, and every shed one is counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{main_config, tcp};
use crate::support::config::ConfigDir;
use crate::support::daemon::{Subprocess, http_get};
use crate::support::peers::live_port;
use crate::support::{START_TIMEOUT, eventually, install_crypto};

const CLIENTS: usize = 1000;
const FLOOD: Duration = Duration::from_secs(5);

/// What the flood's clients got: answers by status code, 503s without `Retry-After`, and
/// transport errors.
#[derive(Debug, Default)]
struct Heavy {
    codes: BTreeMap<u16, u64>,
    shed_without_retry_after: u64,
    errors: Vec<String>,
}

/// `CLIENTS` keep-alive clients on one runtime of their own (as another process would be),
/// each sending `/health` and `/metrics` in turn until `FLOOD` has passed.
fn flood(base: String) -> Heavy {
    install_crypto();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("flood runtime");
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .no_proxy()
            .pool_max_idle_per_host(CLIENTS)
            .build()
            .expect("client");
        let until = Instant::now() + FLOOD;
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (c, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    let mut got = Heavy::default();
                    let mut n = i;
                    while Instant::now() < until {
                        let path = if n % 2 == 0 { "/health" } else { "/metrics" };
                        n += 1;
                        match c.get(format!("{base}{path}")).send().await {
                            Ok(r) => {
                                let code = r.status().as_u16();
                                if code == 503 && !r.headers().contains_key("retry-after") {
                                    got.shed_without_retry_after += 1;
                                }
                                *got.codes.entry(code).or_default() += 1;
                                if let Err(e) = r.bytes().await {
                                    got.errors.push(format!("{path} body: {e}"));
                                }
                            }
                            Err(e) => got.errors.push(format!("{path}: {e}")),
                        }
                    }
                    got
                })
            })
            .collect();
        let mut all = Heavy::default();
        for t in tasks {
            let got = t.await.expect("client task");
            for (code, n) in got.codes {
                *all.codes.entry(code).or_default() += n;
            }
            all.shed_without_retry_after += got.shed_without_retry_after;
            all.errors.extend(got.errors);
        }
        all
    })
}

/// The sum of `healthd_http_shed_total` over the given routes.
fn shed_total(metrics: &str, routes: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("healthd_http_shed_total{"))
        .filter(|l| routes.iter().any(|r| l.contains(&format!("route=\"{r}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_thousand_heavy_clients_never_cost_a_probe_its_answer() {
    // The flood's 1,000 sockets need more than the usual 1,024 descriptors with the rest.
    let raised = healthd::descriptors::raise_limit().expect("raise RLIMIT_NOFILE");
    let limit = healthd::descriptors::limit().unwrap_or(u64::MAX);
    assert!(
        limit >= 2048,
        "RLIMIT_NOFILE {limit} is too low for 1,000 clients ({raised:?})"
    );
    let port = live_port();
    let mut config = main_config("10s", "2s") + "\n[server.limits]\nmax_connections = 4096\n\n";
    for i in 0..1000 {
        config += &tcp(&format!("t{i}"), port, "");
    }
    let dir = ConfigDir::new(&config);
    // 16,384 descriptors: a quarter (4,096) for client connections, all of the flood's.
    let healthd = Subprocess::start_with_nofile(&dir, 16384, 16384);
    eventually(
        "every check to report and /readyz to pass",
        START_TIMEOUT,
        || healthd.get("/readyz").0 == 200,
    );

    // The probes, on fresh connections as kubelet's, all through the flood.
    let addr = healthd.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let prober = thread::spawn(move || {
        let (mut polls, mut wrong) = (0u64, Vec::new());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            for path in ["/livez", "/readyz"] {
                polls += 1;
                match http_get(addr, path) {
                    Ok((200, body)) if body == "ok\n" => {}
                    Ok((code, body)) => wrong.push(format!("{path}: {code} {body:?}")),
                    Err(e) => wrong.push(format!("{path}: no answer: {e}")),
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
        (polls, wrong)
    });
    let started = Instant::now();
    let base = format!("http://{addr}");
    let heavy = thread::spawn(move || flood(base))
        .join()
        .expect("flood thread");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (polls, wrong) = prober.join().expect("prober thread");

    let answered: u64 = heavy.codes.values().sum();
    let shed_seen = heavy.codes.get(&503).copied().unwrap_or(0);
    // A `/metrics` body is reused for up to a second, so the counter may lag the flood by
    // that much: read it until it stops lagging (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let (status, metrics) = healthd.get("/metrics");
        assert_eq!(status, 200, "{metrics}");
        let shed = shed_total(&metrics, &["/health", "/metrics"]);
        if shed >= shed_seen || Instant::now() >= deadline {
            break shed;
        }
        thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "SIEGE flood clients={CLIENTS} took={:.1}s heavy={:?} errors={} shed_counted={shed} probe_polls={polls}",
        took.as_secs_f64(),
        heavy.codes,
        heavy.errors.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {polls} probe answers were wrong or missing during the flood; first: {:?}",
        wrong.len(),
        wrong.first()
    );
    assert!(polls >= 20, "only {polls} probe requests during the flood");
    assert!(
        heavy.errors.is_empty(),
        "{} heavy requests got no answer; first: {:?}",
        heavy.errors.len(),
        heavy.errors.first()
    );
    assert!(answered >= CLIENTS as u64, "only {answered} heavy answers");
    assert!(
        heavy.codes.keys().all(|c| *c == 200 || *c == 503),
        "{:?}",
        heavy.codes
    );
    assert_eq!(
        heavy.shed_without_retry_after, 0,
        "a 503 without Retry-After"
    );
    // Every 503 was a shed, and every shed was counted.
    assert_eq!(
        shed, shed_seen,
        "healthd_http_shed_total vs the 503s the clients got"
    );
    assert_eq!(healthd.get("/readyz").0, 200);
}
