//! Host metrics over OTLP with no cpu, memory or disk check configured (and connection
//! counting, off by default, turned on): every `system.*` family arrives with its unit, kind and attribute keys, as the
//! semantic conventions and the hostmetrics receiver name them; `[metrics.host] enabled =
//! false` sends none.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use healthd::config::metrics::DEFAULT_DEVICES_EXCLUDE;

use super::decode::{names, points};
use super::receiver::{Inbox, Receiver};
use super::{stop, tcp_target};
use crate::support::daemon::TestDaemon;
use crate::support::{eventually_async, free_port};

/// (name, unit, kind, attribute keys) of every host family this machine has. Written out
/// here, not taken from healthd's table, so a renamed family fails.
const FAMILIES: &[(&str, &str, &str, &[&str])] = &[
    (
        "system.cpu.time",
        "s",
        "counter",
        &["cpu.logical_number", "cpu.mode"],
    ),
    ("system.cpu.utilization", "1", "gauge", &[]),
    ("system.cpu.logical.count", "{cpu}", "updowncounter", &[]),
    (
        "system.memory.usage",
        "By",
        "updowncounter",
        &["system.memory.state"],
    ),
    (
        "system.memory.utilization",
        "1",
        "gauge",
        &["system.memory.state"],
    ),
    ("system.memory.limit", "By", "updowncounter", &[]),
    (
        "system.paging.operations",
        "{operation}",
        "counter",
        &["system.paging.direction", "system.paging.fault.type"],
    ),
    (
        "system.paging.faults",
        "{fault}",
        "counter",
        &["system.paging.fault.type"],
    ),
    (
        "system.filesystem.usage",
        "By",
        "updowncounter",
        &[
            "system.device",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
            "system.filesystem.state",
            "system.filesystem.type",
        ],
    ),
    (
        "system.filesystem.utilization",
        "1",
        "gauge",
        &[
            "system.device",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
            "system.filesystem.type",
        ],
    ),
    (
        "system.filesystem.inodes.usage",
        "{inode}",
        "updowncounter",
        &[
            "system.device",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
            "system.filesystem.state",
            "system.filesystem.type",
        ],
    ),
    (
        "system.network.io",
        "By",
        "counter",
        &["network.interface.name", "network.io.direction"],
    ),
    (
        "system.network.packets",
        "{packet}",
        "counter",
        &["network.interface.name", "network.io.direction"],
    ),
    (
        "system.network.errors",
        "{error}",
        "counter",
        &["network.interface.name", "network.io.direction"],
    ),
    (
        "system.network.dropped",
        "{packet}",
        "counter",
        &["network.interface.name", "network.io.direction"],
    ),
    (
        "system.network.connections",
        "{connection}",
        "updowncounter",
        &["network.connection.state", "network.transport"],
    ),
    ("system.cpu.load_average.1m", "{thread}", "gauge", &[]),
    ("system.cpu.load_average.5m", "{thread}", "gauge", &[]),
    ("system.cpu.load_average.15m", "{thread}", "gauge", &[]),
    (
        "system.process.count",
        "{process}",
        "updowncounter",
        &["process.state"],
    ),
    ("system.process.created", "{process}", "counter", &[]),
    ("system.uptime", "s", "gauge", &[]),
    (
        "system.linux.pressure.time",
        "s",
        "counter",
        &[
            "system.linux.pressure.resource",
            "system.linux.pressure.type",
        ],
    ),
    (
        "system.linux.pressure.avg10",
        "1",
        "gauge",
        &[
            "system.linux.pressure.resource",
            "system.linux.pressure.type",
        ],
    ),
    (
        "system.linux.pressure.avg60",
        "1",
        "gauge",
        &[
            "system.linux.pressure.resource",
            "system.linux.pressure.type",
        ],
    ),
    (
        "system.linux.pressure.avg300",
        "1",
        "gauge",
        &[
            "system.linux.pressure.resource",
            "system.linux.pressure.type",
        ],
    ),
];

/// Families that exist only where the machine has the device or file: block devices
/// (`/proc/diskstats` may list none that are not partitions), swap, cpufreq.
const WHERE_PRESENT: &[(&str, &str, &str, &[&str], &str)] = &[
    (
        "system.disk.io",
        "By",
        "counter",
        &["disk.io.direction", "system.device"],
        "/proc/diskstats",
    ),
    (
        "system.disk.operations",
        "{operation}",
        "counter",
        &["disk.io.direction", "system.device"],
        "/proc/diskstats",
    ),
    (
        "system.disk.io_time",
        "s",
        "counter",
        &["system.device"],
        "/proc/diskstats",
    ),
    (
        "system.disk.operation_time",
        "s",
        "counter",
        &["disk.io.direction", "system.device"],
        "/proc/diskstats",
    ),
    (
        "system.disk.merged",
        "{operation}",
        "counter",
        &["disk.io.direction", "system.device"],
        "/proc/diskstats",
    ),
    (
        "system.disk.pending_operations",
        "{operation}",
        "updowncounter",
        &["system.device"],
        "/proc/diskstats",
    ),
    (
        "system.paging.usage",
        "By",
        "updowncounter",
        &["system.paging.state"],
        "swap",
    ),
    (
        "system.paging.utilization",
        "1",
        "gauge",
        &["system.paging.state"],
        "swap",
    ),
    (
        "system.cpu.frequency",
        "Hz",
        "gauge",
        &["cpu.logical_number"],
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
    ),
];

/// Whether this machine has what a conditional family needs.
fn present(what: &str) -> bool {
    match what {
        "swap" => std::fs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() > 1),
        "/proc/diskstats" => {
            let partition = regex::Regex::new(DEFAULT_DEVICES_EXCLUDE).unwrap();
            std::fs::read_to_string(what).is_ok_and(|s| {
                s.lines()
                    .filter_map(|l| l.split_whitespace().nth(2))
                    .any(|d| !partition.is_match(d))
            })
        }
        path => std::path::Path::new(path).exists(),
    }
}

fn config(addr: SocketAddr, tcp_port: u16, host: &str) -> String {
    format!(
        r#"
[server]
shutdown_delay = "10ms"

[[checks]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = {tcp_port}
interval = "300ms"
timeout = "250ms"

[metrics.host]
interval = "1s"
connections = true
{host}

[telemetry]
endpoint = "http://{addr}"
protocol = "grpc"
interval = "400ms"
timeout = "350ms"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_family_arrives_without_resource_checks() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let inbox = Inbox::default();
    let _receiver = Receiver::grpc(addr, inbox.clone()).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let d = TestDaemon::start(&config(addr, tcp_port, "")).await;
    let mut expected: Vec<(&str, &str, &str, &[&str])> = FAMILIES.to_vec();
    for (n, u, k, a, needs) in WHERE_PRESENT {
        if present(needs) {
            expected.push((n, u, k, a));
        }
    }
    let pts = eventually_async(
        "an export with every host family",
        Duration::from_secs(30),
        || async {
            let all = inbox.metrics.lock().unwrap();
            all.iter().rev().map(|(_, r)| points(r)).find(|pts| {
                let n = names(pts);
                expected
                    .iter()
                    .all(|(name, ..)| n.iter().any(|x| x == name))
            })
        },
    )
    .await;
    for (name, unit, kind, keys) in &expected {
        let series: Vec<_> = pts.iter().filter(|p| p.metric == *name).collect();
        for p in &series {
            assert_eq!((p.unit.as_str(), p.kind), (*unit, *kind), "{name}: {p:?}");
            let got: BTreeSet<&str> = p.attrs.keys().map(String::as_str).collect();
            let want: BTreeSet<&str> = keys.iter().copied().collect();
            assert_eq!(got, want, "{name} attributes");
        }
    }
    // Values that can be checked without a peer: modes, states and directions.
    let values = |name: &str, key: &str| -> BTreeSet<String> {
        pts.iter()
            .filter(|p| p.metric == name)
            .filter_map(|p| p.attrs.get(key).cloned())
            .collect()
    };
    assert_eq!(
        values("system.cpu.time", "cpu.mode"),
        [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(
        values("system.network.io", "network.io.direction"),
        ["receive", "transmit"].map(String::from).into()
    );
    assert!(values("system.network.io", "network.interface.name").contains("lo"));
    assert!(values("system.network.connections", "network.connection.state").contains("listen"));
    assert_eq!(
        values(
            "system.linux.pressure.time",
            "system.linux.pressure.resource"
        ),
        ["cpu", "io", "memory"].map(String::from).into()
    );
    let cpus = pts
        .iter()
        .find(|p| p.metric == "system.cpu.logical.count")
        .unwrap()
        .value;
    assert_eq!(
        values("system.cpu.time", "cpu.logical_number").len(),
        cpus as usize
    );
    assert!(
        values("system.filesystem.usage", "system.filesystem.mountpoint").contains("/"),
        "/ is a real file system"
    );
    assert!(
        !values("system.filesystem.usage", "system.filesystem.type").contains("proc"),
        "pseudo file systems are left out"
    );
    stop(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_metrics_can_be_turned_off() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let inbox = Inbox::default();
    let _receiver = Receiver::grpc(addr, inbox.clone()).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let d = TestDaemon::start(&config(addr, tcp_port, "enabled = false")).await;
    // Wait for exports that carry the check's runs, then look at all of them.
    eventually_async(
        "an export with check runs",
        Duration::from_secs(30),
        || async {
            let all = inbox.metrics.lock().unwrap();
            all.iter()
                .any(|(_, r)| names(&points(r)).iter().any(|n| n == "healthd.check.runs"))
                .then_some(())
        },
    )
    .await;
    let all = inbox.metrics.lock().unwrap().clone();
    for (_, r) in &all {
        let n = names(&points(r));
        assert!(
            !n.iter()
                .any(|m| m.starts_with("system.") || m.starts_with("container.")),
            "{n:?}"
        );
    }
    let (_, text) = d.get("/metrics").await;
    assert!(!text.contains("system_"), "{text}");
    stop(d).await;
}
