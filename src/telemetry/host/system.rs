//! The `system.*` families, as the semantic conventions and the Collector's hostmetrics
//! receiver name them: cpu, memory, paging, load, processes and uptime
//! ([`super::devices`] has file systems, disks and network interfaces).

use super::{AttrValue, Family, Kind, MetricName, Point, point, ratio, with};
use crate::model::host::HostSample;

/// One family row: kind, integer values?, OTLP name, unit, Prometheus name, help, points.
macro_rules! family {
    ($kind:ident, $int:literal, $otlp:literal, $unit:literal, $prom:literal, $help:literal, $points:expr) => {
        Family {
            name: MetricName {
                otlp: $otlp,
                unit: $unit,
                prometheus: $prom,
                help: $help,
            },
            kind: Kind::$kind,
            int: $int,
            points: $points,
        }
    };
}
pub(super) use family;

fn cpu_time(s: &HostSample) -> Vec<Point> {
    let Some(c) = &s.cpu else { return vec![] };
    c.per_cpu
        .iter()
        .enumerate()
        .flat_map(|(n, t)| {
            t.modes().into_iter().map(move |(mode, secs)| {
                with(
                    vec![
                        ("cpu.logical_number", AttrValue::Int(n as i64)),
                        ("cpu.mode", mode.into()),
                    ],
                    secs,
                )
            })
        })
        .collect()
}

fn cpu_frequency(s: &HostSample) -> Vec<Point> {
    let Some(c) = &s.cpu else { return vec![] };
    c.frequency_hz
        .iter()
        .enumerate()
        .filter_map(|(n, f)| {
            f.map(|hz| with(vec![("cpu.logical_number", AttrValue::Int(n as i64))], hz))
        })
        .collect()
}

fn memory_states(s: &HostSample, value: fn(u64, u64) -> f64) -> Vec<Point> {
    let Some(m) = &s.memory else { return vec![] };
    [
        ("used", m.used()),
        ("free", m.free),
        ("buffers", m.buffers),
        ("cached", m.cached),
    ]
    .into_iter()
    .map(|(state, v)| {
        with(
            vec![("system.memory.state", state.into())],
            value(v, m.total),
        )
    })
    .collect()
}

fn paging_states(s: &HostSample, value: fn(u64, u64) -> f64) -> Vec<Point> {
    let Some(m) = s.memory.as_ref().filter(|m| m.swap_total > 0) else {
        return vec![];
    };
    [("used", m.swap_used()), ("free", m.swap_free)]
        .into_iter()
        .map(|(state, v)| {
            with(
                vec![("system.paging.state", state.into())],
                value(v, m.swap_total),
            )
        })
        .collect()
}

fn load(s: &HostSample, i: usize) -> Vec<Point> {
    s.system
        .as_ref()
        .and_then(|s| s.load_average)
        .map(|l| vec![point(l[i])])
        .unwrap_or_default()
}

pub(super) static FAMILIES: [Family; 17] = [
    family!(
        Counter,
        false,
        "system.cpu.time",
        "s",
        "system_cpu_time_seconds_total",
        "Seconds each logical CPU spent in each mode",
        cpu_time
    ),
    family!(
        Gauge,
        false,
        "system.cpu.utilization",
        "1",
        "system_cpu_utilization_ratio",
        "Busy share of all CPUs (not idle, not waiting for I/O) since the previous reading",
        |s| s
            .cpu
            .as_ref()
            .and_then(|c| c.utilization)
            .map(|u| vec![point(u)])
            .unwrap_or_default()
    ),
    family!(
        UpDownCounter,
        true,
        "system.cpu.logical.count",
        "{cpu}",
        "system_cpu_logical_cpus",
        "Logical CPUs",
        |s| s
            .cpu
            .as_ref()
            .map(|c| vec![point(c.per_cpu.len() as f64)])
            .unwrap_or_default()
    ),
    family!(
        Gauge,
        false,
        "system.cpu.frequency",
        "Hz",
        "system_cpu_frequency_hertz",
        "Current frequency of each logical CPU",
        cpu_frequency
    ),
    family!(
        UpDownCounter,
        true,
        "system.memory.usage",
        "By",
        "system_memory_usage_bytes",
        "Memory by state (used is total minus available)",
        |s| memory_states(s, |v, _| v as f64)
    ),
    family!(
        Gauge,
        false,
        "system.memory.utilization",
        "1",
        "system_memory_utilization_ratio",
        "Share of memory by state",
        |s| memory_states(s, ratio)
    ),
    family!(
        UpDownCounter,
        true,
        "system.memory.limit",
        "By",
        "system_memory_limit_bytes",
        "Total memory",
        |s| s
            .memory
            .as_ref()
            .map(|m| vec![point(m.total as f64)])
            .unwrap_or_default()
    ),
    family!(
        UpDownCounter,
        true,
        "system.paging.usage",
        "By",
        "system_paging_usage_bytes",
        "Swap space by state",
        |s| paging_states(s, |v, _| v as f64)
    ),
    family!(
        Gauge,
        false,
        "system.paging.utilization",
        "1",
        "system_paging_utilization_ratio",
        "Share of swap space by state",
        |s| paging_states(s, ratio)
    ),
    family!(
        Counter,
        true,
        "system.paging.operations",
        "{operation}",
        "system_paging_operations_total",
        "Pages swapped (major) and paged from and to disk (minor)",
        |s| {
            let Some(m) = &s.memory else { return vec![] };
            let p = m.paging;
            [
                ("in", "major", p.swap_in),
                ("out", "major", p.swap_out),
                ("in", "minor", p.page_in),
                ("out", "minor", p.page_out),
            ]
            .map(|(dir, t, v)| {
                with(
                    vec![
                        ("system.paging.direction", dir.into()),
                        ("system.paging.fault.type", t.into()),
                    ],
                    v as f64,
                )
            })
            .to_vec()
        }
    ),
    family!(
        Counter,
        true,
        "system.paging.faults",
        "{fault}",
        "system_paging_faults_total",
        "Page faults",
        |s| {
            let Some(m) = &s.memory else { return vec![] };
            let p = m.paging;
            [
                ("major", p.major_faults),
                ("minor", p.faults.saturating_sub(p.major_faults)),
            ]
            .map(|(t, v)| with(vec![("system.paging.fault.type", t.into())], v as f64))
            .to_vec()
        }
    ),
    family!(
        Gauge,
        false,
        "system.cpu.load_average.1m",
        "{thread}",
        "system_cpu_load_average_1m",
        "Load average over 1 minute",
        |s| load(s, 0)
    ),
    family!(
        Gauge,
        false,
        "system.cpu.load_average.5m",
        "{thread}",
        "system_cpu_load_average_5m",
        "Load average over 5 minutes",
        |s| load(s, 1)
    ),
    family!(
        Gauge,
        false,
        "system.cpu.load_average.15m",
        "{thread}",
        "system_cpu_load_average_15m",
        "Load average over 15 minutes",
        |s| load(s, 2)
    ),
    family!(
        UpDownCounter,
        true,
        "system.process.count",
        "{process}",
        "system_processes",
        "Processes running and blocked on I/O",
        |s| {
            let Some(c) = &s.cpu else { return vec![] };
            [("running", c.procs_running), ("blocked", c.procs_blocked)]
                .into_iter()
                .filter_map(|(st, n)| n.map(|n| with(vec![("process.state", st.into())], n as f64)))
                .collect()
        }
    ),
    family!(
        Counter,
        true,
        "system.process.created",
        "{process}",
        "system_process_created_total",
        "Processes and threads created since boot",
        |s| s
            .cpu
            .as_ref()
            .map(|c| vec![point(c.procs_created as f64)])
            .unwrap_or_default()
    ),
    family!(
        Gauge,
        false,
        "system.uptime",
        "s",
        "system_uptime_seconds",
        "Time since boot",
        |s| s
            .system
            .as_ref()
            .and_then(|s| s.uptime_seconds)
            .map(|u| vec![point(u)])
            .unwrap_or_default()
    ),
];
