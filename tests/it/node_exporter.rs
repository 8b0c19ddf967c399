//! healthd's host metrics against Debian's node_exporter (default collectors), both run by
//! the test on this host at the same moment: the same CPUs, modes, devices, interfaces and
//! file systems, and the same figures. Counters are compared in a sandwich: node_exporter
//! is scraped, healthd reads the host, node_exporter is scraped again, and healthd's
//! figure must lie between the two. Gauges that move (memory, load) get a small tolerance.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use healthd::config::metrics::{
    DEFAULT_DEVICES_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNTPOINTS_EXCLUDE,
};

use crate::support::daemon::TestDaemon;
use crate::support::eventually_async;
use crate::support::node_exporter::{Exposition, NodeExporter};

const CONFIG: &str = r#"
[server]
shutdown_delay = "10ms"

[metrics.host]
interval = "1s"
"#;

/// healthd's family and node_exporter's for the same figure; either missing (or renamed)
/// fails the test.
const SAME_FIGURES: &[(&str, &str)] = &[
    ("system_cpu_time_seconds_total", "node_cpu_seconds_total"),
    ("system_memory_limit_bytes", "node_memory_MemTotal_bytes"),
    (
        "system_memory_usage_bytes",
        "node_memory_MemAvailable_bytes",
    ),
    (
        "system_filesystem_usage_bytes",
        "node_filesystem_avail_bytes",
    ),
    (
        "system_filesystem_inodes_usage",
        "node_filesystem_files_free",
    ),
    (
        "system_network_io_bytes_total",
        "node_network_receive_bytes_total",
    ),
    (
        "system_network_packets_total",
        "node_network_receive_packets_total",
    ),
    ("system_disk_io_bytes_total", "node_disk_read_bytes_total"),
    (
        "system_disk_operations_total",
        "node_disk_reads_completed_total",
    ),
    (
        "system_disk_io_time_seconds_total",
        "node_disk_io_time_seconds_total",
    ),
    (
        "system_linux_pressure_time_seconds_total",
        "node_pressure_cpu_waiting_seconds_total",
    ),
    ("system_process_created_total", "node_forks_total"),
    ("system_processes", "node_procs_running"),
    ("system_cpu_load_average_1m", "node_load1"),
    ("system_paging_faults_total", "node_vmstat_pgmajfault"),
];

/// healthd's `/metrics` after it has read the host twice more (so every figure in it was
/// read after this call began).
async fn healthd_after_now(d: &TestDaemon) -> Exposition {
    let shared = d.daemon.state.host.clone();
    for _ in 0..2 {
        let before = shared.load_full();
        eventually_async("a new host reading", Duration::from_secs(10), || async {
            let now = shared.load_full();
            let changed = match (&before, &now) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, Some(_)) => true,
                _ => false,
            };
            changed.then_some(())
        })
        .await;
    }
    Exposition::parse(&d.get("/metrics").await.1)
}

/// Send `bytes` over a loopback TCP connection and wait until all arrived.
fn loopback_traffic(bytes: usize) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while got < bytes {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(&vec![7u8; bytes]).unwrap();
    drop(c);
    assert_eq!(reader.join().unwrap(), bytes);
}

/// `a ≤ h ≤ b` within `slack`, for a counter read by node_exporter (a, b) around healthd (h).
fn between(what: &str, a: f64, h: f64, b: f64, slack: f64) {
    assert!(
        a - slack <= h && h <= b + slack,
        "{what}: healthd {h} not between node_exporter's {a} and {b} (±{slack})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_metrics_match_node_exporter() {
    // Debian's build leaves out /run, /mnt and /media and the loopback interface as well;
    // healthd keeps upstream node_exporter's file system and disk defaults and every
    // interface (as the hostmetrics receiver does), given here so both read the same ones.
    let node = NodeExporter::start(&[
        format!("--collector.filesystem.mount-points-exclude={DEFAULT_MOUNTPOINTS_EXCLUDE}"),
        format!("--collector.filesystem.fs-types-exclude={DEFAULT_FS_TYPES_EXCLUDE}"),
        format!("--collector.diskstats.device-exclude={DEFAULT_DEVICES_EXCLUDE}"),
        "--collector.netdev.device-exclude=^$".into(),
    ])
    .await;
    let d = TestDaemon::start(CONFIG).await;
    let before = healthd_after_now(&d).await;
    let lo_bytes = 4 * 1024 * 1024;
    loopback_traffic(lo_bytes);

    let a = node.scrape().await;
    let h = healthd_after_now(&d).await;
    let b = node.scrape().await;

    for (ours, theirs) in SAME_FIGURES {
        assert!(h.has_family(ours), "healthd has no {ours}");
        assert!(a.has_family(theirs), "node_exporter has no {theirs}");
    }

    // CPU: the same logical CPUs, and seconds per mode between the two scrapes (node_exporter
    // and procfs both turn clock ticks into seconds; 10 ms of slack for the rounding).
    let cpus = a.label_values("node_cpu_seconds_total", "cpu");
    assert_eq!(
        h.label_values("system_cpu_time_seconds_total", "cpu_logical_number"),
        cpus
    );
    for cpu in &cpus {
        for mode in [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ] {
            let at = |e: &Exposition| {
                e.value("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)])
                    .unwrap()
            };
            let ours = h
                .value(
                    "system_cpu_time_seconds_total",
                    &[("cpu_logical_number", cpu), ("cpu_mode", mode)],
                )
                .unwrap_or_else(|| panic!("cpu {cpu} mode {mode}"));
            between(&format!("cpu {cpu} {mode}"), at(&a), ours, at(&b), 0.011);
        }
    }
    assert_eq!(
        h.value("system_cpu_logical_cpus", &[]),
        Some(cpus.len() as f64)
    );

    // Memory: the total exactly; available (total minus used) within 2% of the total, as
    // other processes allocate meanwhile.
    let total = a.value("node_memory_MemTotal_bytes", &[]).unwrap();
    assert_eq!(h.value("system_memory_limit_bytes", &[]), Some(total));
    let used = h
        .value(
            "system_memory_usage_bytes",
            &[("system_memory_state", "used")],
        )
        .unwrap();
    let (avail_a, avail_b) = (
        a.value("node_memory_MemAvailable_bytes", &[]).unwrap(),
        b.value("node_memory_MemAvailable_bytes", &[]).unwrap(),
    );
    between(
        "memory available",
        avail_a.min(avail_b),
        total - used,
        avail_a.max(avail_b),
        total * 0.02,
    );

    // File systems: the same mount points (the same default filters), and / with the same
    // size and, within 1% of the size, the same space available.
    let mounts = a.label_values("node_filesystem_size_bytes", "mountpoint");
    assert_eq!(
        h.label_values(
            "system_filesystem_usage_bytes",
            "system_filesystem_mountpoint"
        ),
        mounts
    );
    let root = |e: &Exposition, n: &str, state: &str| {
        e.value(
            n,
            &[
                ("system_filesystem_mountpoint", "/"),
                ("system_filesystem_state", state),
            ],
        )
        .unwrap_or(0.0)
    };
    let size = a
        .value("node_filesystem_size_bytes", &[("mountpoint", "/")])
        .unwrap();
    let ours_size: f64 = ["used", "free", "reserved"]
        .iter()
        .map(|s| root(&h, "system_filesystem_usage_bytes", s))
        .sum();
    assert_eq!(ours_size, size, "size of /");
    let avail = |e: &Exposition| {
        e.value("node_filesystem_avail_bytes", &[("mountpoint", "/")])
            .unwrap()
    };
    let (x, y) = (avail(&a), avail(&b));
    between(
        "avail of /",
        x.min(y),
        root(&h, "system_filesystem_usage_bytes", "free"),
        x.max(y),
        size * 0.01,
    );
    let files = a
        .value("node_filesystem_files", &[("mountpoint", "/")])
        .unwrap();
    let ours_files = root(&h, "system_filesystem_inodes_usage", "used")
        + root(&h, "system_filesystem_inodes_usage", "free");
    assert_eq!(ours_files, files, "inodes of /");

    // Network: the same interfaces; lo's counters between the scrapes, and the traffic the
    // test sent counted by healthd (both directions of lo see it).
    let ifaces = a.label_values("node_network_receive_bytes_total", "device");
    assert_eq!(
        h.label_values("system_network_io_bytes_total", "network_interface_name"),
        ifaces
    );
    for (dir, node_name) in [
        ("receive", "node_network_receive_bytes_total"),
        ("transmit", "node_network_transmit_bytes_total"),
    ] {
        let with = [
            ("network_interface_name", "lo"),
            ("network_io_direction", dir),
        ];
        let ours = h.value("system_network_io_bytes_total", &with).unwrap();
        let at = |e: &Exposition| e.value(node_name, &[("device", "lo")]).unwrap();
        between(&format!("lo {dir} bytes"), at(&a), ours, at(&b), 0.0);
        let sent = ours
            - before
                .value("system_network_io_bytes_total", &with)
                .unwrap();
        assert!(
            sent >= lo_bytes as f64,
            "lo {dir}: healthd counted {sent} bytes of the {lo_bytes} sent"
        );
    }

    // Disks: the same devices (partitions, loop and RAM disks left out by both), counters
    // between the scrapes and never going back.
    let devices = a.label_values("node_disk_read_bytes_total", "device");
    assert_eq!(
        h.label_values("system_disk_io_bytes_total", "system_device"),
        devices
    );
    for dev in &devices {
        for (dir, node_name) in [
            ("read", "node_disk_read_bytes_total"),
            ("write", "node_disk_written_bytes_total"),
        ] {
            let with = [("system_device", dev.as_str()), ("disk_io_direction", dir)];
            let ours = h.value("system_disk_io_bytes_total", &with).unwrap();
            let at = |e: &Exposition| e.value(node_name, &[("device", dev)]).unwrap();
            between(&format!("{dev} {dir} bytes"), at(&a), ours, at(&b), 0.0);
            assert!(
                ours >= before.value("system_disk_io_bytes_total", &with).unwrap(),
                "{dev} {dir} went back"
            );
        }
    }

    // Pressure: the stall totals between the scrapes (microseconds turned into seconds on
    // both sides).
    for (resource, kind, node_name) in [
        ("cpu", "some", "node_pressure_cpu_waiting_seconds_total"),
        (
            "memory",
            "some",
            "node_pressure_memory_waiting_seconds_total",
        ),
        (
            "memory",
            "full",
            "node_pressure_memory_stalled_seconds_total",
        ),
        ("io", "some", "node_pressure_io_waiting_seconds_total"),
        ("io", "full", "node_pressure_io_stalled_seconds_total"),
    ] {
        let ours = h
            .value(
                "system_linux_pressure_time_seconds_total",
                &[
                    ("system_linux_pressure_resource", resource),
                    ("system_linux_pressure_type", kind),
                ],
            )
            .unwrap_or_else(|| panic!("pressure {resource} {kind}"));
        between(
            &format!("pressure {resource} {kind}"),
            a.value(node_name, &[]).unwrap(),
            ours,
            b.value(node_name, &[]).unwrap(),
            1e-6,
        );
    }

    // Processes: created since boot between the scrapes; running is a moment's count, at
    // least one (the reader itself) on both sides.
    between(
        "processes created",
        a.value("node_forks_total", &[]).unwrap(),
        h.value("system_process_created_total", &[]).unwrap(),
        b.value("node_forks_total", &[]).unwrap(),
        0.0,
    );
    assert!(
        h.value("system_processes", &[("process_state", "running")])
            .unwrap()
            >= 1.0
    );
    assert!(a.value("node_procs_running", &[]).unwrap() >= 1.0);
    let faults = |e: &Exposition| e.value("node_vmstat_pgmajfault", &[]).unwrap();
    between(
        "major faults",
        faults(&a),
        h.value(
            "system_paging_faults_total",
            &[("system_paging_fault_type", "major")],
        )
        .unwrap(),
        faults(&b),
        0.0,
    );

    // Load: the kernel updates it every 5 s; within 0.5 of either scrape.
    let (la, lb) = (
        a.value("node_load1", &[]).unwrap(),
        b.value("node_load1", &[]).unwrap(),
    );
    between(
        "load1",
        la.min(lb),
        h.value("system_cpu_load_average_1m", &[]).unwrap(),
        la.max(lb),
        0.5,
    );
    drop(d);
}
