//! Linux figures that have no semantic convention yet, named in the namespace the
//! conventions use for OS-specific metrics: pressure stall information of the host
//! (`system.linux.pressure.*`) and, inside a container, of its cgroup
//! (`container.linux.pressure.*`), and the container's CPU throttling, quota, memory limit
//! and memory events (`container.linux.*`). The container's CPU time and memory use have
//! conventions (`container.cpu.time`, `container.memory.usage`).

use super::system::family;
use super::{AttrValue, Family, Kind, MetricName, Point, point, with};
use crate::model::host::{CgroupReading, HostSample, PressureReading, PsiLine, PsiWindow};

/// Points per resource (`cpu`, `memory`, `io`) and type (`some`, `full`).
fn pressure(
    p: Option<&PressureReading>,
    prefix: &'static str,
    value: impl Fn(&PsiLine) -> f64,
) -> Vec<Point> {
    let Some(p) = p else { return vec![] };
    let (resource_key, type_key) = match prefix {
        "container" => (
            "container.linux.pressure.resource",
            "container.linux.pressure.type",
        ),
        _ => (
            "system.linux.pressure.resource",
            "system.linux.pressure.type",
        ),
    };
    p.resources()
        .flat_map(|(resource, psi)| {
            [("some", Some(psi.some)), ("full", psi.full)]
                .into_iter()
                .filter_map(|(t, line)| line.map(|l| (t, l)))
                .map(|(t, line)| {
                    with(
                        vec![
                            (resource_key, AttrValue::Word(resource)),
                            (type_key, t.into()),
                        ],
                        value(&line),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn host(s: &HostSample) -> Option<&PressureReading> {
    s.pressure.as_deref()
}

fn container_psi(s: &HostSample) -> Option<&PressureReading> {
    s.cgroup.as_ref().and_then(|c| c.pressure.as_ref())
}

fn cgroup(s: &HostSample, value: fn(&CgroupReading) -> Option<f64>) -> Vec<Point> {
    s.cgroup
        .as_deref()
        .and_then(value)
        .map(|v| vec![point(v)])
        .unwrap_or_default()
}

pub(super) static FAMILIES: [Family; 16] = [
    family!(
        Counter,
        false,
        "system.linux.pressure.time",
        "s",
        "system_linux_pressure_time_seconds_total",
        "Time some or all non-idle tasks stalled on a resource (/proc/pressure)",
        |s| pressure(host(s), "system", |l| l.total)
    ),
    family!(
        Gauge,
        false,
        "system.linux.pressure.avg10",
        "1",
        "system_linux_pressure_avg10_ratio",
        "Share of the last 10 s stalled on a resource",
        |s| pressure(host(s), "system", |l| l.average(PsiWindow::Avg10))
    ),
    family!(
        Gauge,
        false,
        "system.linux.pressure.avg60",
        "1",
        "system_linux_pressure_avg60_ratio",
        "Share of the last 60 s stalled on a resource",
        |s| pressure(host(s), "system", |l| l.average(PsiWindow::Avg60))
    ),
    family!(
        Gauge,
        false,
        "system.linux.pressure.avg300",
        "1",
        "system_linux_pressure_avg300_ratio",
        "Share of the last 300 s stalled on a resource",
        |s| pressure(host(s), "system", |l| l.average(PsiWindow::Avg300))
    ),
    family!(
        Counter,
        false,
        "container.cpu.time",
        "s",
        "container_cpu_time_seconds_total",
        "CPU time the container used, by mode (cgroup cpu.stat)",
        |s| {
            let Some(c) = &s.cgroup else { return vec![] };
            vec![
                with(vec![("cpu.mode", "user".into())], c.cpu_user),
                with(vec![("cpu.mode", "system".into())], c.cpu_system),
            ]
        }
    ),
    family!(
        Counter,
        false,
        "container.linux.cpu.throttled.time",
        "s",
        "container_linux_cpu_throttled_time_seconds_total",
        "Time the container's tasks were throttled by its CPU quota",
        |s| cgroup(s, |c| Some(c.throttled_time))
    ),
    family!(
        Counter,
        true,
        "container.linux.cpu.periods",
        "{period}",
        "container_linux_cpu_periods_total",
        "CPU quota enforcement periods",
        |s| cgroup(s, |c| Some(c.periods as f64))
    ),
    family!(
        Counter,
        true,
        "container.linux.cpu.throttled.periods",
        "{period}",
        "container_linux_cpu_throttled_periods_total",
        "Enforcement periods in which the container was throttled",
        |s| cgroup(s, |c| Some(c.throttled_periods as f64))
    ),
    family!(
        Gauge,
        false,
        "container.linux.cpu.limit",
        "{cpu}",
        "container_linux_cpu_limit",
        "CPUs the container's quota allows (absent when unlimited)",
        |s| cgroup(s, |c| c.cpu_limit)
    ),
    family!(
        UpDownCounter,
        true,
        "container.memory.usage",
        "By",
        "container_memory_usage_bytes",
        "Memory the container uses (cgroup memory.current)",
        |s| cgroup(s, |c| Some(c.memory_current as f64))
    ),
    family!(
        UpDownCounter,
        true,
        "container.linux.memory.limit",
        "By",
        "container_linux_memory_limit_bytes",
        "The container's memory limit (absent when unlimited)",
        |s| cgroup(s, |c| c.memory_max.map(|m| m as f64))
    ),
    family!(
        Counter,
        true,
        "container.linux.memory.events",
        "{event}",
        "container_linux_memory_events_total",
        "Memory events of the container's cgroup (oom, oom_kill, max, high, low)",
        |s| {
            let Some(c) = &s.cgroup else { return vec![] };
            c.memory_events
                .iter()
                .map(|(e, n)| {
                    with(
                        vec![("container.linux.memory.event", e.clone().into())],
                        *n as f64,
                    )
                })
                .collect()
        }
    ),
    family!(
        Counter,
        false,
        "container.linux.pressure.time",
        "s",
        "container_linux_pressure_time_seconds_total",
        "Time the container's tasks stalled on a resource (cgroup *.pressure)",
        |s| pressure(container_psi(s), "container", |l| l.total)
    ),
    family!(
        Gauge,
        false,
        "container.linux.pressure.avg10",
        "1",
        "container_linux_pressure_avg10_ratio",
        "Share of the last 10 s the container stalled on a resource",
        |s| pressure(container_psi(s), "container", |l| l
            .average(PsiWindow::Avg10))
    ),
    family!(
        Gauge,
        false,
        "container.linux.pressure.avg60",
        "1",
        "container_linux_pressure_avg60_ratio",
        "Share of the last 60 s the container stalled on a resource",
        |s| pressure(container_psi(s), "container", |l| l
            .average(PsiWindow::Avg60))
    ),
    family!(
        Gauge,
        false,
        "container.linux.pressure.avg300",
        "1",
        "container_linux_pressure_avg300_ratio",
        "Share of the last 300 s the container stalled on a resource",
        |s| pressure(container_psi(s), "container", |l| l
            .average(PsiWindow::Avg300))
    ),
];
