//! `kind = "cpu" | "memory" | "disk"`: resource thresholds read through `sysinfo`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sysinfo::{Disks, System};

use super::{Level, Outcome, Reason};

/// Settings of a CPU check: utilisation of all cores, in percent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuConfig {
    /// Above this percentage the check is degraded. Default 90.
    #[serde(default = "cpu_degraded")]
    pub degraded_above: f64,
    /// Above this percentage the check fails. Default 98.
    #[serde(default = "cpu_unhealthy")]
    pub unhealthy_above: f64,
}

/// Settings of a memory check: memory in use (total minus available), in percent. In a
/// container with a memory limit (cgroup), the limit is the total.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Default 90.
    #[serde(default = "mem_degraded")]
    pub degraded_above: f64,
    /// Default 98.
    #[serde(default = "mem_unhealthy")]
    pub unhealthy_above: f64,
}

/// Settings of a disk check: space used per mount point, in percent, as `df` shows it
/// (used / (used + available); blocks reserved for root are not counted as used).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Paths to watch; each is measured on the file system that holds it. Default `["/"]`.
    #[serde(default = "default_mounts")]
    pub mounts: Vec<PathBuf>,
    /// Default 85.
    #[serde(default = "disk_degraded")]
    pub degraded_above: f64,
    /// Default 95.
    #[serde(default = "disk_unhealthy")]
    pub unhealthy_above: f64,
}

fn cpu_degraded() -> f64 {
    90.0
}
fn cpu_unhealthy() -> f64 {
    98.0
}
fn mem_degraded() -> f64 {
    90.0
}
fn mem_unhealthy() -> f64 {
    98.0
}
fn disk_degraded() -> f64 {
    85.0
}
fn disk_unhealthy() -> f64 {
    95.0
}
fn default_mounts() -> Vec<PathBuf> {
    vec![PathBuf::from("/")]
}

/// A pair of percentage thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub degraded_above: f64,
    pub unhealthy_above: f64,
}

impl Thresholds {
    pub(crate) fn validate(&self, problems: &mut Vec<(String, String)>) {
        for (key, v) in [
            ("degraded_above", self.degraded_above),
            ("unhealthy_above", self.unhealthy_above),
        ] {
            if !(0.0..=100.0).contains(&v) {
                problems.push((
                    key.into(),
                    format!("must be a percentage from 0 to 100, not {v}"),
                ));
            }
        }
        if self.degraded_above >= self.unhealthy_above {
            problems.push((
                "degraded_above".into(),
                format!(
                    "must be below unhealthy_above ({} is not below {})",
                    self.degraded_above, self.unhealthy_above
                ),
            ));
        }
    }

    /// The level a measured percentage falls in.
    pub fn level(&self, percent: f64) -> Level {
        if percent > self.unhealthy_above {
            Level::Failed
        } else if percent > self.degraded_above {
            Level::Degraded
        } else {
            Level::Ok
        }
    }

    /// An outcome for a measured percentage, with a message naming what was measured.
    pub fn outcome(&self, what: &str, percent: f64) -> Outcome {
        let level = self.level(percent);
        let message = match level {
            Level::Ok => format!("{what} {percent:.1}% used"),
            Level::Degraded => format!("{what} {percent:.1}% used, above {}%", self.degraded_above),
            Level::Failed => format!("{what} {percent:.1}% used, above {}%", self.unhealthy_above),
        };
        match level {
            Level::Ok => Outcome::ok(message),
            Level::Degraded => Outcome::degraded(Reason::Threshold, message),
            Level::Failed => Outcome::failed(Reason::Threshold, message),
        }
    }
}

impl CpuConfig {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            degraded_above: self.degraded_above,
            unhealthy_above: self.unhealthy_above,
        }
    }
}

impl MemoryConfig {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            degraded_above: self.degraded_above,
            unhealthy_above: self.unhealthy_above,
        }
    }
}

impl DiskConfig {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            degraded_above: self.degraded_above,
            unhealthy_above: self.unhealthy_above,
        }
    }

    pub(crate) fn validate(&self, problems: &mut Vec<(String, String)>) {
        self.thresholds().validate(problems);
        if self.mounts.is_empty() {
            problems.push(("mounts".into(), "must list at least one path".into()));
        }
        for m in &self.mounts {
            if !m.is_absolute() {
                problems.push((
                    "mounts".into(),
                    format!("{} is not an absolute path", m.display()),
                ));
            }
        }
    }
}

/// Typed measurements kept in the snapshot for the metric renderers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sample {
    Cpu(CpuSample),
    Memory(MemorySample),
    Disk(Vec<DiskSample>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuSample {
    /// Busy share of all cores since the previous run, 0 to 1.
    pub utilization: f64,
    pub logical_cpus: usize,
    /// 1, 5 and 15 minute load averages, where the OS has them.
    pub load_average: Option<[f64; 3]>,
    /// Seconds since boot.
    pub uptime_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemorySample {
    /// Bytes; the cgroup limit when one applies.
    pub total: u64,
    pub used: u64,
    pub free: u64,
    pub available: u64,
    /// Kernel buffers and page cache (Linux `/proc/meminfo`), host-wide.
    pub buffers: Option<u64>,
    pub cached: Option<u64>,
    /// `host` or `cgroup`.
    pub source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskSample {
    /// The path configured.
    pub path: String,
    /// The mount point holding it.
    pub mountpoint: String,
    pub device: String,
    pub fs_type: String,
    pub total: u64,
    pub available: u64,
    pub used: u64,
}

pub struct CpuProbe {
    system: System,
    last_refresh: Option<Instant>,
    thresholds: Thresholds,
}

impl CpuProbe {
    pub fn new(c: &CpuConfig) -> Result<Self, String> {
        Ok(CpuProbe {
            system: System::new().map_err(|e| format!("cannot read CPU statistics: {e}"))?,
            last_refresh: None,
            thresholds: c.thresholds(),
        })
    }

    /// Utilisation is averaged since the previous run (a run's whole interval); the first
    /// run measures over sysinfo's minimum window.
    pub async fn run(&mut self) -> Outcome {
        let fresh = self
            .last_refresh
            .is_some_and(|t| t.elapsed() >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        if !fresh {
            self.system.refresh_cpu_usage();
            tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
        }
        self.system.refresh_cpu_usage();
        self.last_refresh = Some(Instant::now());
        let percent = f64::from(self.system.global_cpu_usage()).clamp(0.0, 100.0);
        let load = System::load_average()
            .ok()
            .map(|l| [l.one, l.five, l.fifteen]);
        let sample = CpuSample {
            utilization: percent / 100.0,
            logical_cpus: self.system.cpus().len(),
            load_average: load,
            uptime_seconds: System::uptime().ok(),
        };
        let mut outcome = self
            .thresholds
            .outcome("CPU", percent)
            .with_detail("percent_used", round1(percent))
            .with_detail("logical_cpus", sample.logical_cpus);
        if let Some(l) = load {
            outcome = outcome.with_detail("load_average", serde_json::json!(l));
        }
        outcome.sample = Some(Sample::Cpu(sample));
        outcome
    }
}

pub struct MemoryProbe {
    system: System,
    thresholds: Thresholds,
}

impl MemoryProbe {
    pub fn new(c: &MemoryConfig) -> Result<Self, String> {
        Ok(MemoryProbe {
            system: System::new().map_err(|e| format!("cannot read memory statistics: {e}"))?,
            thresholds: c.thresholds(),
        })
    }

    pub fn run(&mut self) -> Outcome {
        self.system.refresh_memory();
        let host_total = self.system.total_memory();
        let (buffers, cached) = meminfo_cache();
        let sample = match self.system.cgroup_limits() {
            Some(cg) if cg.total_memory > 0 && cg.total_memory < host_total => MemorySample {
                total: cg.total_memory,
                used: cg.total_memory.saturating_sub(cg.free_memory),
                free: cg.free_memory,
                available: cg.free_memory,
                buffers,
                cached,
                source: "cgroup",
            },
            _ => MemorySample {
                total: host_total,
                used: host_total.saturating_sub(self.system.available_memory()),
                free: self.system.free_memory(),
                available: self.system.available_memory(),
                buffers,
                cached,
                source: "host",
            },
        };
        if sample.total == 0 {
            return Outcome::failed(Reason::Internal, "total memory reads as 0");
        }
        let percent = sample.used as f64 * 100.0 / sample.total as f64;
        let what = if sample.source == "cgroup" {
            "memory (cgroup limit)"
        } else {
            "memory"
        };
        let mut outcome = self
            .thresholds
            .outcome(what, percent)
            .with_detail("percent_used", round1(percent))
            .with_detail("total_bytes", sample.total)
            .with_detail("used_bytes", sample.used)
            .with_detail("available_bytes", sample.available)
            .with_detail("source", sample.source);
        outcome.sample = Some(Sample::Memory(sample));
        outcome
    }
}

/// `Buffers` and `Cached` from `/proc/meminfo` (bytes); sysinfo does not report them.
fn meminfo_cache() -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return (None, None);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    (field("Buffers"), field("Cached"))
}

pub struct DiskProbe {
    disks: Disks,
    mounts: Vec<PathBuf>,
    thresholds: Thresholds,
}

impl DiskProbe {
    pub fn new(c: &DiskConfig) -> Result<Self, String> {
        Ok(DiskProbe {
            disks: Disks::new().map_err(|e| format!("cannot list file systems: {e}"))?,
            mounts: c.mounts.clone(),
            thresholds: c.thresholds(),
        })
    }

    pub fn run(&mut self) -> Outcome {
        self.disks.refresh(true);
        let mut samples = Vec::new();
        let mut worst: Option<(Level, f64, Outcome)> = None;
        for path in &self.mounts {
            // A path that does not exist would otherwise be measured on whatever holds its
            // parent (a typo'd /data silently reporting /); a symlink on its target's side.
            let real = match std::fs::canonicalize(path) {
                Ok(p) => p,
                Err(e) => {
                    return Outcome::failed(
                        Reason::Config,
                        format!("cannot access {}: {e}", path.display()),
                    );
                }
            };
            // statvfs and the mount table first; sysinfo's list (which leaves out tmpfs and
            // other virtual file systems) as the fallback.
            let listed = holding_disk(&self.disks, &real);
            let Some((total, available, used)) = space(&real).or_else(|| {
                listed.map(|d| {
                    let (total, available) = (d.total_space(), d.available_space());
                    (total, available, total.saturating_sub(available))
                })
            }) else {
                return Outcome::failed(
                    Reason::Config,
                    format!("no mounted file system holds {}", path.display()),
                );
            };
            let mountpoint = mount_point_of(&real)
                .or_else(|| listed.map(|d| d.mount_point().to_path_buf()))
                .unwrap_or_else(|| real.clone());
            let (device, fs_type) = mount_entry(&mountpoint)
                .or_else(|| {
                    listed.map(|d| {
                        (
                            d.name().to_string_lossy().into_owned(),
                            d.file_system().to_string_lossy().into_owned(),
                        )
                    })
                })
                .unwrap_or_default();
            let percent = used_percent(used, available);
            let outcome = self
                .thresholds
                .outcome(&format!("disk {}", path.display()), percent);
            let rank = |l: Level| match l {
                Level::Ok => 0,
                Level::Degraded => 1,
                Level::Failed => 2,
            };
            let replace = match &worst {
                None => true,
                Some((l, p, _)) => (rank(outcome.level), percent) > (rank(*l), *p),
            };
            if replace {
                worst = Some((outcome.level, percent, outcome));
            }
            samples.push(DiskSample {
                path: path.display().to_string(),
                mountpoint: mountpoint.display().to_string(),
                device,
                fs_type,
                total,
                available,
                used,
            });
        }
        let Some((_, _, mut outcome)) = worst else {
            return Outcome::failed(Reason::Config, "no mounts configured");
        };
        let mounts: Vec<serde_json::Value> = samples
            .iter()
            .map(|s| {
                serde_json::json!({
                    "path": s.path,
                    "mountpoint": s.mountpoint,
                    "percent_used": round1(used_percent(s.used, s.available)),
                    "total_bytes": s.total,
                    "used_bytes": s.used,
                    "available_bytes": s.available,
                })
            })
            .collect();
        outcome
            .details
            .insert("mounts".into(), serde_json::Value::Array(mounts));
        outcome.sample = Some(Sample::Disk(samples));
        outcome
    }
}

/// The mounted file system holding `path`: the longest mount point that is a prefix of it,
/// as `df PATH` reports.
fn holding_disk<'a>(disks: &'a Disks, path: &Path) -> Option<&'a sysinfo::Disk> {
    disks
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
}

/// `(total, available, used)` bytes of the file system holding `path`, as `df` counts
/// them: used is total minus free blocks, available is what unprivileged users may still
/// write (blocks reserved for root are neither).
fn space(path: &Path) -> Option<(u64, u64, u64)> {
    let s = rustix::fs::statvfs(path).ok()?;
    let unit = if s.f_frsize > 0 {
        s.f_frsize
    } else {
        s.f_bsize
    };
    let total = s.f_blocks.saturating_mul(unit);
    let free = s.f_bfree.saturating_mul(unit);
    let available = s.f_bavail.saturating_mul(unit);
    Some((total, available, total.saturating_sub(free)))
}

/// The mount point holding `path` (canonical): its highest ancestor on the same device.
fn mount_point_of(path: &Path) -> Option<PathBuf> {
    let dev = rustix::fs::stat(path).ok()?.st_dev;
    let mut mount = path.to_path_buf();
    for parent in path.ancestors().skip(1) {
        match rustix::fs::stat(parent) {
            Ok(s) if s.st_dev == dev => mount = parent.to_path_buf(),
            _ => break,
        }
    }
    Some(mount)
}

/// `(device, file system type)` of a mount point, from the mount table (the last mount
/// on a path is the visible one).
fn mount_entry(mountpoint: &Path) -> Option<(String, String)> {
    let table = std::fs::read_to_string("/proc/self/mounts").ok()?;
    table.lines().rev().find_map(|line| {
        let mut f = line.split_whitespace();
        let (device, at, fs_type) = (f.next()?, f.next()?, f.next()?);
        // Spaces and friends are octal escapes in the mount table.
        let at = at
            .replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\");
        (Path::new(&at) == mountpoint).then(|| (device.to_string(), fs_type.to_string()))
    })
}

/// Percent used as `df` shows it: used / (used + available), so space reserved for root
/// does not count as used.
pub fn used_percent(used: u64, available: u64) -> f64 {
    let usable = used.saturating_add(available);
    if usable == 0 {
        0.0
    } else {
        used as f64 * 100.0 / usable as f64
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_map_values_to_levels() {
        let t = Thresholds {
            degraded_above: 80.0,
            unhealthy_above: 95.0,
        };
        assert_eq!(t.level(0.0), Level::Ok);
        assert_eq!(t.level(80.0), Level::Ok);
        assert_eq!(t.level(80.1), Level::Degraded);
        assert_eq!(t.level(95.0), Level::Degraded);
        assert_eq!(t.level(95.1), Level::Failed);
        assert_eq!(t.outcome("disk /", 96.0).reason, Some(Reason::Threshold));
        assert_eq!(t.outcome("disk /", 50.0).reason, None);
    }

    #[test]
    fn thresholds_validate() {
        let mut p = Vec::new();
        Thresholds {
            degraded_above: 95.0,
            unhealthy_above: 80.0,
        }
        .validate(&mut p);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "degraded_above");
        let mut p = Vec::new();
        Thresholds {
            degraded_above: 50.0,
            unhealthy_above: 150.0,
        }
        .validate(&mut p);
        assert_eq!(p[0].0, "unhealthy_above");
    }

    #[tokio::test]
    async fn real_readings_are_in_range() {
        let mut cpu = CpuProbe::new(&CpuConfig {
            degraded_above: 99.0,
            unhealthy_above: 100.0,
        })
        .unwrap();
        let out = cpu.run().await;
        let Some(Sample::Cpu(s)) = out.sample else {
            panic!("no cpu sample")
        };
        assert!((0.0..=1.0).contains(&s.utilization), "{s:?}");
        assert!(s.logical_cpus >= 1);

        let mut mem = MemoryProbe::new(&MemoryConfig {
            degraded_above: 99.0,
            unhealthy_above: 100.0,
        })
        .unwrap();
        let Some(Sample::Memory(m)) = mem.run().sample else {
            panic!("no memory sample")
        };
        assert!(
            m.total > 0 && m.used <= m.total && m.available <= m.total,
            "{m:?}"
        );

        let mut disk = DiskProbe::new(&DiskConfig {
            mounts: vec!["/".into()],
            degraded_above: 99.0,
            unhealthy_above: 100.0,
        })
        .unwrap();
        let out = disk.run();
        let Some(Sample::Disk(d)) = out.sample else {
            panic!("no disk sample: {}", out.message)
        };
        assert_eq!(d[0].mountpoint, "/");
        assert!(d[0].total > 0 && d[0].used <= d[0].total);
    }
}
