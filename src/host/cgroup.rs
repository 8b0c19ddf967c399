//! Inside a container, the container's own figures from its cgroup v2 directory: CPU used
//! and throttled, the CPU quota, memory current/max and events (`oom`, `oom_kill`) and
//! pressure. So healthd in a Kubernetes pod reports its container, not only the node.
//!
//! A container is recognised by a cgroup namespace of its own (`/proc/self/cgroup` reads
//! `0::/`, the default of Docker, containerd and Podman on cgroup v2) whose root has the
//! `memory.max` or `cpu.max` files the host's root cgroup lacks, or by the marker files
//! container engines leave (`/.dockerenv`, `/run/.containerenv`). cgroup v1 is not read.
//! procfs parses the pressure files; the others hold one number or `key value` lines.

use std::path::Path;
use std::time::Instant;

use crate::model::host::CgroupReading;

use super::read_value;

/// Where cgroup v2 is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup v2 path of this process (`0::<path>` in `/proc/self/cgroup`).
fn own_path() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// This process's container cgroup directory and path, if it runs in a container.
pub fn container_dir() -> Option<(std::path::PathBuf, String)> {
    let path = own_path()?;
    let root = Path::new(CGROUP_ROOT);
    let dir = root.join(path.trim_start_matches('/'));
    let limits = dir.join("memory.max").exists() || dir.join("cpu.max").exists();
    let namespaced = path == "/";
    let marked = Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists();
    (limits && (namespaced || marked)).then_some((dir, path))
}

/// `key value` lines (`cpu.stat`, `memory.events`).
fn flat_keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A number, or `None` for `max` (unlimited) or an unreadable file.
fn limit(text: &str) -> Option<u64> {
    text.parse().ok()
}

/// Read the cgroup directory `dir` (its path as the process sees it: `path`).
pub fn read_dir(dir: &Path, path: String) -> Option<CgroupReading> {
    let stat = flat_keyed(&read_value(&dir.join("cpu.stat")).unwrap_or_default());
    let get = |k: &str| stat.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    let usec = |k: &str| get(k).unwrap_or(0) as f64 / 1e6;
    let memory_current = limit(&read_value(&dir.join("memory.current"))?)?;
    let cpu_limit = read_value(&dir.join("cpu.max")).and_then(|t| {
        let (quota, period) = t.split_once(' ')?;
        let (quota, period) = (quota.parse::<f64>().ok()?, period.parse::<f64>().ok()?);
        (period > 0.0).then(|| quota / period)
    });
    Some(CgroupReading {
        at: Instant::now(),
        path,
        cpu_user: usec("user_usec"),
        cpu_system: usec("system_usec"),
        periods: get("nr_periods").unwrap_or(0),
        throttled_periods: get("nr_throttled").unwrap_or(0),
        throttled_time: usec("throttled_usec"),
        cpu_limit,
        memory_current,
        memory_max: read_value(&dir.join("memory.max")).and_then(|t| limit(&t)),
        memory_events: flat_keyed(&read_value(&dir.join("memory.events")).unwrap_or_default()),
        pressure: super::pressure::read_in(dir, |r| format!("{r}.pressure")),
    })
}

/// The container's figures; `None` outside a container.
pub fn read() -> Option<CgroupReading> {
    let (dir, path) = container_dir()?;
    read_dir(&dir, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's file formats, written as a cgroup v2 directory would hold them (this
    /// test machine runs cgroup v1 with no controllers on the unified hierarchy).
    #[test]
    fn reads_a_cgroup_v2_directory() {
        let dir = tempfile::tempdir().unwrap();
        let w = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).unwrap();
        w(
            "cpu.stat",
            "usage_usec 3500000\nuser_usec 2500000\nsystem_usec 1000000\nnr_periods 40\nnr_throttled 4\nthrottled_usec 250000\n",
        );
        w("cpu.max", "50000 100000\n");
        w("memory.current", "104857600\n");
        w("memory.max", "max\n");
        w(
            "memory.events",
            "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n",
        );
        w(
            "memory.pressure",
            "some avg10=1.50 avg60=0.50 avg300=0.10 total=2000000\nfull avg10=0.75 avg60=0.25 avg300=0.05 total=1000000\n",
        );
        let r = read_dir(dir.path(), "/".into()).expect("reading");
        assert_eq!((r.cpu_user, r.cpu_system), (2.5, 1.0));
        assert_eq!((r.periods, r.throttled_periods), (40, 4));
        assert_eq!(r.throttled_time, 0.25);
        assert_eq!(r.cpu_limit, Some(0.5));
        assert_eq!((r.memory_current, r.memory_max), (104857600, None));
        assert_eq!(r.oom_kills(), Some(1));
        let p = r.pressure.expect("pressure");
        assert!(p.cpu.is_none() && p.io.is_none());
        let m = p.memory.unwrap();
        assert_eq!((m.some.avg10, m.some.total), (0.015, 2.0));
        assert_eq!(m.full.unwrap().avg10, 0.0075);
    }
}
