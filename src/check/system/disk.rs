//! `kind = "disk"`: space used per mount point, in percent, as `df` shows it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sysinfo::Disks;

use super::{Kind, Run};
use crate::model::{DiskSample, Level, Outcome, Reason, Sample, Thresholds, round1, used_percent};

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

fn disk_degraded() -> f64 {
    85.0
}
fn disk_unhealthy() -> f64 {
    95.0
}
fn default_mounts() -> Vec<PathBuf> {
    vec![PathBuf::from("/")]
}

impl DiskConfig {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            degraded_above: self.degraded_above,
            unhealthy_above: self.unhealthy_above,
        }
    }
}

impl Kind for DiskConfig {
    type Probe = DiskProbe;

    fn build(&self, _timeout: Duration) -> Result<DiskProbe, String> {
        Ok(DiskProbe {
            disks: Disks::new().map_err(|e| format!("cannot list file systems: {e}"))?,
            mounts: self.mounts.clone(),
            thresholds: self.thresholds(),
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {

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

pub struct DiskProbe {
    disks: Disks,
    mounts: Vec<PathBuf>,
    thresholds: Thresholds,
}

impl Run for DiskProbe {
    async fn run(&mut self) -> Outcome {
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
                Level::Unknown => 2,
                Level::Failed => 3,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn real_readings_are_in_range() {
        let mut disk = DiskConfig {
            mounts: vec!["/".into()],
            degraded_above: 99.0,
            unhealthy_above: 100.0,
        }
        .build(Duration::from_secs(1))
        .unwrap();
        let out = disk.run().await;
        let Some(Sample::Disk(d)) = out.sample else {
            panic!("no disk sample: {}", out.message)
        };
        assert_eq!(d[0].mountpoint, "/");
        assert!(d[0].total > 0 && d[0].used <= d[0].total);
    }
}
