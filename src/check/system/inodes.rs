//! `kind = "inodes"`: inodes used per mount point, in percent. A file system out of inodes
//! refuses new files with space to spare, which the `disk` check does not see.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::disk::judge_paths;
use super::{Kind, Run};
use crate::model::{Outcome, Thresholds, round1};

/// Settings of an inodes check: inodes used per mount point, in percent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InodesConfig {
    /// Paths to watch; each is measured on the file system that holds it. Default `["/"]`.
    #[serde(default = "default_mounts")]
    pub mounts: Vec<PathBuf>,
    /// Default 85.
    #[serde(default = "inodes_degraded")]
    pub degraded_above: f64,
    /// Default 95.
    #[serde(default = "inodes_unhealthy")]
    pub unhealthy_above: f64,
}

fn inodes_degraded() -> f64 {
    85.0
}
fn inodes_unhealthy() -> f64 {
    95.0
}
fn default_mounts() -> Vec<PathBuf> {
    vec![PathBuf::from("/")]
}

impl InodesConfig {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            degraded_above: self.degraded_above,
            unhealthy_above: self.unhealthy_above,
        }
    }
}

impl Kind for InodesConfig {
    type Probe = InodesProbe;

    fn build(&self, _timeout: Duration) -> Result<InodesProbe, String> {
        Ok(InodesProbe {
            mounts: self.mounts.clone(),
            thresholds: self.thresholds(),
            last_run: None,
        })
    }

    fn validate(&self, timeout: Duration, problems: &mut Vec<(String, String)>) {
        // The same keys as a disk check, validated the same way.
        super::disk::DiskConfig {
            mounts: self.mounts.clone(),
            degraded_above: self.degraded_above,
            unhealthy_above: self.unhealthy_above,
        }
        .validate(timeout, problems);
    }
}

pub struct InodesProbe {
    mounts: Vec<PathBuf>,
    thresholds: Thresholds,
    last_run: Option<Instant>,
}

impl Run for InodesProbe {
    async fn run(&mut self) -> Outcome {
        judge_paths(
            &self.mounts,
            &mut self.last_run,
            // File systems that allocate inodes on demand (btrfs, vfat) report none: no limit.
            |f| (f.inodes_total > 0).then(|| f.inodes_used() as f64 * 100.0 / f.inodes_total as f64),
            |path, percent| {
                self.thresholds
                    .outcome(&format!("inodes of {path}"), percent)
            },
            |m| {
                serde_json::json!({
                    "path": m.path,
                    "mountpoint": m.fs.mountpoint,
                    "percent_used": m.percent.map(round1),
                    "inodes_total": m.fs.inodes_total,
                    "inodes_used": m.fs.inodes_used(),
                    "inodes_free": m.fs.inodes_free,
                })
            },
        )
    }
}
