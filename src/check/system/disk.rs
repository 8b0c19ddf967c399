//! `kind = "disk"`: space used per mount point, in percent, as `df` shows it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Kind, Run};
use crate::host::{filesystem, sampler};
use crate::model::host::Filesystem;
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

impl Run for DiskProbe {
    async fn run(&mut self) -> Outcome {
        judge_paths(
            &self.mounts,
            &mut self.last_run,
            |f| Some(used_percent(f.used(), f.available)),
            |path, percent| self.thresholds.outcome(&format!("disk {path}"), percent),
            |m| {
                serde_json::json!({
                    "path": m.path,
                    "mountpoint": m.fs.mountpoint,
                    "device": m.fs.device,
                    "fs_type": m.fs.fs_type,
                    "percent_used": m.percent.map(round1),
                    "total_bytes": m.fs.total,
                    "used_bytes": m.fs.used(),
                    "available_bytes": m.fs.available,
                })
            },
        )
    }
}

/// One configured path as measured.
pub struct Measured {
    pub path: String,
    pub fs: Filesystem,
    /// The figure judged; `None` where it does not apply (a file system without inodes).
    pub percent: Option<f64>,
}

/// Measure each path on the file system holding it (shared with the host collector when
/// its reading is fresh), judge each `percent` with `judge` (a path without one passes),
/// and report the worst with every path's `detail` under `mounts`. A path that does not
/// exist fails (`config`).
pub fn judge_paths(
    paths: &[PathBuf],
    last_run: &mut Option<Instant>,
    percent: impl Fn(&Filesystem) -> Option<f64>,
    judge: impl Fn(&str, f64) -> Outcome,
    detail: impl Fn(&Measured) -> serde_json::Value,
) -> Outcome {
    let latest = sampler().latest().filesystems;
    let shared = latest
        .as_deref()
        .filter(|r| last_run.is_some_and(|t| r.at >= t));
    let mut measured = Vec::new();
    for path in paths {
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
        let Some(fs) = filesystem::holding(&real, shared) else {
            return Outcome::failed(
                Reason::Config,
                format!("no mounted file system holds {}", path.display()),
            );
        };
        measured.push(Measured {
            path: path.display().to_string(),
            percent: percent(&fs),
            fs,
        });
    }
    *last_run = Some(Instant::now());
    let rank = |l: Level| match l {
        Level::Ok => 0,
        Level::Degraded => 1,
        Level::Unknown => 2,
        Level::Failed => 3,
    };
    let worst = measured
        .iter()
        .filter_map(|m| Some((m.percent?, judge(&m.path, m.percent?))))
        .max_by(|(pa, a), (pb, b)| {
            (rank(a.level), *pa)
                .partial_cmp(&(rank(b.level), *pb))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    let mut outcome = match worst {
        Some((_, o)) => o,
        None => Outcome::ok(format!("{} path(s) without a limit to judge", measured.len())),
    };
    let mounts: Vec<serde_json::Value> = measured.iter().map(detail).collect();
    outcome
        .details
        .insert("mounts", serde_json::Value::Array(mounts));
    outcome
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
