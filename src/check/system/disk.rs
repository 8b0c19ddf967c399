//! `kind = "disk"`: space used per mount point, in percent, as `df` shows it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Kind, Run};
use crate::host::{filesystem, sampler};
use crate::model::host::{Filesystem, FilesystemsReading};
use crate::model::{Level, Outcome, Reason, Thresholds, round1, used_percent};

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
            mounts: self.mounts.clone(),
            thresholds: self.thresholds(),
            last_run: None,
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
    mounts: Vec<PathBuf>,
    thresholds: Thresholds,
    /// When the previous run finished: a host reading taken since then is shared.
    last_run: Option<Instant>,
}

/// One configured path as measured.
struct Measured {
    path: String,
    fs: Filesystem,
    percent: f64,
}

impl DiskProbe {
    /// The file system holding `real` (canonical): from the host collector's reading when
    /// it is fresh and lists that mount point, else `statvfs` of the mount point now.
    fn measure(&self, real: &Path, shared: Option<&FilesystemsReading>) -> Option<Filesystem> {
        let mountpoint = mount_point_of(real).unwrap_or_else(|| real.to_path_buf());
        let at = mountpoint.display().to_string();
        if let Some(f) = shared.and_then(|r| r.list.iter().find(|f| f.mountpoint == at)) {
            return Some(f.clone());
        }
        let (device, fs_type, ro) = filesystem::entry(&mountpoint)
            .map(|m| {
                let ro = m.mount_options.contains_key("ro");
                (m.mount_source.unwrap_or_default(), m.fs_type, ro)
            })
            .unwrap_or_default();
        filesystem::stat(&mountpoint, device, fs_type, ro)
    }
}

impl Run for DiskProbe {
    async fn run(&mut self) -> Outcome {
        let latest = sampler().latest().filesystems;
        let shared = latest
            .as_deref()
            .filter(|r| self.last_run.is_some_and(|t| r.at >= t));
        let mut measured = Vec::new();
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
            let Some(fs) = self.measure(&real, shared) else {
                return Outcome::failed(
                    Reason::Config,
                    format!("no mounted file system holds {}", path.display()),
                );
            };
            measured.push(Measured {
                path: path.display().to_string(),
                percent: used_percent(fs.used(), fs.available),
                fs,
            });
        }
        self.last_run = Some(Instant::now());
        let rank = |l: Level| match l {
            Level::Ok => 0,
            Level::Degraded => 1,
            Level::Failed => 2,
        };
        let Some(worst) = measured.iter().max_by(|a, b| {
            let key = |m: &Measured| (rank(self.thresholds.level(m.percent)), m.percent);
            key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
        }) else {
            return Outcome::failed(Reason::Config, "no mounts configured");
        };
        let mut outcome = self
            .thresholds
            .outcome(&format!("disk {}", worst.path), worst.percent);
        let mounts: Vec<serde_json::Value> = measured
            .iter()
            .map(|m| {
                serde_json::json!({
                    "path": m.path,
                    "mountpoint": m.fs.mountpoint,
                    "device": m.fs.device,
                    "fs_type": m.fs.fs_type,
                    "percent_used": round1(m.percent),
                    "total_bytes": m.fs.total,
                    "used_bytes": m.fs.used(),
                    "available_bytes": m.fs.available,
                })
            })
            .collect();
        outcome
            .details
            .insert("mounts".into(), serde_json::Value::Array(mounts));
        outcome
    }
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
        let m = &out.details["mounts"][0];
        assert_eq!(m["mountpoint"], "/", "{out:?}");
        assert!(m["used_bytes"].as_u64().unwrap() <= m["total_bytes"].as_u64().unwrap());
    }
}
