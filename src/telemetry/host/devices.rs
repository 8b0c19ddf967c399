//! The `system.*` families of devices, as the semantic conventions and the Collector's
//! hostmetrics receiver name them: file systems, disks and network interfaces.

use super::system::family;
use super::{AttrValue, Family, Kind, MetricName, Point, with};
use crate::model::host::{Filesystem, HostSample, Interface};
use crate::model::used_percent;

fn fs_attrs(f: &Filesystem) -> Vec<(&'static str, AttrValue)> {
    vec![
        ("system.device", f.device.clone().into()),
        ("system.filesystem.mountpoint", f.mountpoint.clone().into()),
        ("system.filesystem.type", f.fs_type.clone().into()),
        (
            "system.filesystem.mode",
            if f.read_only { "ro" } else { "rw" }.into(),
        ),
    ]
}

/// A value, with its `system.filesystem.state` where the family has states.
type StateValue = (Option<&'static str>, f64);

fn filesystems(s: &HostSample, each: fn(&Filesystem) -> Vec<StateValue>) -> Vec<Point> {
    let Some(fs) = &s.filesystems else {
        return vec![];
    };
    fs.list
        .iter()
        .flat_map(|f| {
            each(f).into_iter().map(move |(state, v)| {
                let mut attrs = fs_attrs(f);
                if let Some(state) = state {
                    attrs.push(("system.filesystem.state", state.into()));
                }
                with(attrs, v)
            })
        })
        .collect()
}

/// Per device and direction (read, write), from two counters of a disk.
fn disks(
    s: &HostSample,
    read: fn(&crate::model::host::DiskIo) -> f64,
    write: fn(&crate::model::host::DiskIo) -> f64,
) -> Vec<Point> {
    let Some(d) = &s.disks else { return vec![] };
    d.list
        .iter()
        .flat_map(|d| {
            [("read", read(d)), ("write", write(d))].map(|(dir, v)| {
                with(
                    vec![
                        ("system.device", d.device.clone().into()),
                        ("disk.io.direction", dir.into()),
                    ],
                    v,
                )
            })
        })
        .collect()
}

fn disk_device(s: &HostSample, value: fn(&crate::model::host::DiskIo) -> f64) -> Vec<Point> {
    let Some(d) = &s.disks else { return vec![] };
    d.list
        .iter()
        .map(|d| with(vec![("system.device", d.device.clone().into())], value(d)))
        .collect()
}

/// Per interface and direction (receive, transmit).
fn interfaces(s: &HostSample, rx: fn(&Interface) -> u64, tx: fn(&Interface) -> u64) -> Vec<Point> {
    let Some(n) = &s.network else { return vec![] };
    n.interfaces
        .iter()
        .flat_map(|i| {
            [("receive", rx(i)), ("transmit", tx(i))].map(|(dir, v)| {
                with(
                    vec![
                        ("network.interface.name", i.name.clone().into()),
                        ("network.io.direction", dir.into()),
                    ],
                    v as f64,
                )
            })
        })
        .collect()
}

pub(super) static FAMILIES: [Family; 14] = [
    family!(
        UpDownCounter,
        true,
        "system.filesystem.usage",
        "By",
        "system_filesystem_usage_bytes",
        "File system space by state (free: available to unprivileged users; reserved: for root)",
        |s| filesystems(s, |f| vec![
            (Some("used"), f.used() as f64),
            (Some("free"), f.available as f64),
            (Some("reserved"), f.free.saturating_sub(f.available) as f64),
        ])
    ),
    family!(
        Gauge,
        false,
        "system.filesystem.utilization",
        "1",
        "system_filesystem_utilization_ratio",
        "Share of file system space used, as df counts it (used / (used + available))",
        |s| filesystems(s, |f| vec![(
            None,
            used_percent(f.used(), f.available) / 100.0
        )])
    ),
    family!(
        UpDownCounter,
        true,
        "system.filesystem.inodes.usage",
        "{inode}",
        "system_filesystem_inodes_usage",
        "File system inodes by state",
        |s| filesystems(s, |f| vec![
            (Some("used"), f.inodes_used() as f64),
            (Some("free"), f.inodes_free as f64)
        ])
    ),
    family!(
        Counter,
        true,
        "system.disk.io",
        "By",
        "system_disk_io_bytes_total",
        "Bytes read from and written to each disk",
        |s| disks(s, |d| d.read_bytes as f64, |d| d.written_bytes as f64)
    ),
    family!(
        Counter,
        true,
        "system.disk.operations",
        "{operation}",
        "system_disk_operations_total",
        "Reads and writes completed",
        |s| disks(s, |d| d.reads as f64, |d| d.writes as f64)
    ),
    family!(
        Counter,
        false,
        "system.disk.io_time",
        "s",
        "system_disk_io_time_seconds_total",
        "Time each disk was busy",
        |s| disk_device(s, |d| d.io_time)
    ),
    family!(
        Counter,
        false,
        "system.disk.operation_time",
        "s",
        "system_disk_operation_time_seconds_total",
        "Time spent on reads and writes (summed over requests)",
        |s| disks(s, |d| d.read_time, |d| d.write_time)
    ),
    family!(
        Counter,
        true,
        "system.disk.merged",
        "{operation}",
        "system_disk_merged_total",
        "Adjacent reads and writes merged into one",
        |s| disks(s, |d| d.reads_merged as f64, |d| d.writes_merged as f64)
    ),
    family!(
        UpDownCounter,
        true,
        "system.disk.pending_operations",
        "{operation}",
        "system_disk_pending_operations",
        "Requests in flight",
        |s| disk_device(s, |d| d.pending as f64)
    ),
    family!(
        Counter,
        true,
        "system.network.io",
        "By",
        "system_network_io_bytes_total",
        "Bytes received and transmitted",
        |s| interfaces(s, |i| i.rx_bytes, |i| i.tx_bytes)
    ),
    family!(
        Counter,
        true,
        "system.network.packets",
        "{packet}",
        "system_network_packets_total",
        "Packets received and transmitted",
        |s| interfaces(s, |i| i.rx_packets, |i| i.tx_packets)
    ),
    family!(
        Counter,
        true,
        "system.network.errors",
        "{error}",
        "system_network_errors_total",
        "Receive and transmit errors",
        |s| interfaces(s, |i| i.rx_errors, |i| i.tx_errors)
    ),
    family!(
        Counter,
        true,
        "system.network.dropped",
        "{packet}",
        "system_network_dropped_total",
        "Packets dropped on receive and transmit",
        |s| interfaces(s, |i| i.rx_dropped, |i| i.tx_dropped)
    ),
    family!(
        UpDownCounter,
        true,
        "system.network.connections",
        "{connection}",
        "system_network_connections",
        "TCP connections by state (IPv4 and IPv6)",
        |s| {
            let Some(states) = s.network.as_ref().and_then(|n| n.tcp_states.as_ref()) else {
                return vec![];
            };
            states
                .iter()
                .map(|(state, n)| {
                    with(
                        vec![
                            ("network.transport", "tcp".into()),
                            ("network.connection.state", (*state).into()),
                        ],
                        *n as f64,
                    )
                })
                .collect()
        }
    ),
];
