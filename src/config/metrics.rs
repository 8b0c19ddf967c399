//! `[metrics.host]`: the host metrics healthd exports whatever checks are configured —
//! whether, how often, and which file systems, disks and interfaces. Plain data; it
//! validates itself and builds the collector's [`crate::host::Settings`].

use std::time::Duration;

use regex_lite::Regex;
use serde::Deserialize;

use crate::host::{NameFilter, Settings};
use crate::model::de_duration;

/// node_exporter's default: mount points of the kernel's own file systems and of
/// container storage.
pub const DEFAULT_MOUNTPOINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default: pseudo and read-only image file systems.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";
/// node_exporter's default: partitions, RAM disks, loop and floppy devices.
pub const DEFAULT_DEVICES_EXCLUDE: &str = "^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$";

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `[metrics.host]`: host metrics.
    pub host: HostMetricsConfig,
}

/// `[metrics.host]`: host metrics, exported on `/metrics` and over OTLP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostMetricsConfig {
    /// Export host metrics. Default true.
    pub enabled: bool,
    /// Time between two readings of the host. Default `15s`.
    #[serde(deserialize_with = "de_duration")]
    pub interval: Duration,
    /// Regular expressions over mount points: only those matching `mountpoints_include`
    /// (default: all), then leaving out those matching `mountpoints_exclude`.
    pub mountpoints_include: Option<String>,
    pub mountpoints_exclude: Option<String>,
    /// The same over file system types.
    pub fs_types_include: Option<String>,
    pub fs_types_exclude: Option<String>,
    /// The same over block device names (`sda`, `nvme0n1`).
    pub devices_include: Option<String>,
    pub devices_exclude: Option<String>,
    /// The same over network interface names.
    pub interfaces_include: Option<String>,
    pub interfaces_exclude: Option<String>,
    /// Count TCP connections by state (`system.network.connections`). Default false: the
    /// kernel walks its whole TCP hash table to list the sockets, which costs milliseconds
    /// on large machines (node_exporter's `tcpstat` collector is off by default likewise).
    pub connections: bool,
}

impl Default for HostMetricsConfig {
    fn default() -> Self {
        HostMetricsConfig {
            enabled: true,
            interval: Duration::from_secs(15),
            mountpoints_include: None,
            mountpoints_exclude: Some(DEFAULT_MOUNTPOINTS_EXCLUDE.into()),
            fs_types_include: None,
            fs_types_exclude: Some(DEFAULT_FS_TYPES_EXCLUDE.into()),
            devices_include: None,
            devices_exclude: Some(DEFAULT_DEVICES_EXCLUDE.into()),
            interfaces_include: None,
            interfaces_exclude: None,
            connections: false,
        }
    }
}

impl HostMetricsConfig {
    fn patterns(&self) -> [(&'static str, &Option<String>); 8] {
        [
            ("mountpoints_include", &self.mountpoints_include),
            ("mountpoints_exclude", &self.mountpoints_exclude),
            ("fs_types_include", &self.fs_types_include),
            ("fs_types_exclude", &self.fs_types_exclude),
            ("devices_include", &self.devices_include),
            ("devices_exclude", &self.devices_exclude),
            ("interfaces_include", &self.interfaces_include),
            ("interfaces_exclude", &self.interfaces_exclude),
        ]
    }

    /// Semantic problems as (key under `metrics.host`, reason).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.interval < Duration::from_secs(1) {
            problems.push(("interval".into(), "must be at least 1s".into()));
        }
        for (key, pattern) in self.patterns() {
            if let Some(p) = pattern
                && let Err(e) = Regex::new(p)
            {
                problems.push((key.into(), format!("not a regular expression: {e}")));
            }
        }
        problems
    }

    /// The collector's settings; `None` when host metrics are off (or a pattern is invalid,
    /// which [`Self::validate`] reports).
    pub fn settings(&self) -> Option<Settings> {
        if !self.enabled {
            return None;
        }
        let re = |p: &Option<String>| -> Result<Option<Regex>, regex_lite::Error> {
            p.as_deref()
                .filter(|p| !p.is_empty())
                .map(Regex::new)
                .transpose()
        };
        let filter = |inc: &Option<String>, exc: &Option<String>| {
            Some(NameFilter {
                include: re(inc).ok()?,
                exclude: re(exc).ok()?,
            })
        };
        Some(Settings {
            interval: self.interval,
            mountpoints: filter(&self.mountpoints_include, &self.mountpoints_exclude)?,
            fs_types: filter(&self.fs_types_include, &self.fs_types_exclude)?,
            devices: filter(&self.devices_include, &self.devices_exclude)?,
            interfaces: filter(&self.interfaces_include, &self.interfaces_exclude)?,
            connections: self.connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_out_what_node_exporter_leaves_out() {
        let s = HostMetricsConfig::default().settings().unwrap();
        assert_eq!(s.interval, Duration::from_secs(15));
        assert!(s.mountpoints.admits("/") && s.mountpoints.admits("/home"));
        assert!(!s.mountpoints.admits("/proc") && !s.mountpoints.admits("/sys/fs/cgroup"));
        assert!(s.fs_types.admits("ext4") && s.fs_types.admits("tmpfs"));
        assert!(!s.fs_types.admits("proc") && !s.fs_types.admits("cgroup2"));
        assert!(s.devices.admits("sda") && s.devices.admits("nvme0n1") && s.devices.admits("dm-0"));
        for part in ["sda1", "nvme0n1p2", "loop0", "ram1", "zram0", "vdb3"] {
            assert!(!s.devices.admits(part), "{part}");
        }
        assert!(s.interfaces.admits("lo"));
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let c = HostMetricsConfig {
            devices_exclude: Some("(".into()),
            interval: Duration::from_millis(10),
            ..Default::default()
        };
        let p = c.validate();
        assert_eq!(p[0], ("interval".into(), "must be at least 1s".into()));
        assert_eq!(p[1].0, "devices_exclude");
        assert!(p[1].1.starts_with("not a regular expression"), "{p:?}");
        assert!(c.settings().is_none());
        let unicode = HostMetricsConfig {
            interfaces_include: Some(r"^\p{L}+$".into()),
            ..Default::default()
        };
        let p = unicode.validate();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "interfaces_include");
        let off = HostMetricsConfig {
            enabled: false,
            ..Default::default()
        };
        assert!(off.settings().is_none());
    }
}
