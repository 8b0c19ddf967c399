//! `kind = "cpu"`: utilisation of all cores, in percent, from the host sampler's
//! `/proc/stat` readings (shared with the host metrics).

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Kind, Run};
use crate::host::sampler;
use crate::model::{Outcome, Reason, Thresholds, round1};

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

fn cpu_degraded() -> f64 {
    90.0
}
fn cpu_unhealthy() -> f64 {
    98.0
}

impl CpuConfig {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            degraded_above: self.degraded_above,
            unhealthy_above: self.unhealthy_above,
        }
    }
}

impl Kind for CpuConfig {
    type Probe = CpuProbe;

    fn build(&self, _timeout: Duration) -> Result<CpuProbe, String> {
        Ok(CpuProbe {
            last_run: None,
            thresholds: self.thresholds(),
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        self.thresholds().validate(problems);
    }
}

pub struct CpuProbe {
    /// When the previous run finished: a host reading taken since then is shared.
    last_run: Option<Instant>,
    thresholds: Thresholds,
}

impl Run for CpuProbe {
    /// Utilisation since the previous reading of the host (this check's or the host
    /// collector's, whichever came last); the very first one measures over a short window.
    async fn run(&mut self) -> Outcome {
        let host = sampler();
        let reading = host.cpu_with_utilization(self.last_run).await;
        let load = host.system(self.last_run).and_then(|s| s.load_average);
        self.last_run = Some(Instant::now());
        let Some((utilization, cpus)) = reading.and_then(|r| Some((r.utilization?, r.per_cpu.len())))
        else {
            return Outcome::failed(Reason::Internal, "cannot read CPU times from /proc/stat");
        };
        let percent = (utilization * 100.0).clamp(0.0, 100.0);
        let mut outcome = self
            .thresholds
            .outcome("CPU", percent)
            .with_detail("percent_used", round1(percent))
            .with_detail("logical_cpus", cpus);
        if let Some(l) = load {
            outcome = outcome.with_detail("load_average", serde_json::json!(l));
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn real_readings_are_in_range() {
        let mut cpu = CpuConfig {
            degraded_above: 99.0,
            unhealthy_above: 100.0,
        }
        .build(Duration::from_secs(1))
        .unwrap();
        let out = cpu.run().await;
        let percent = out.details["percent_used"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&percent), "{out:?}");
        assert!(out.details["logical_cpus"].as_u64().unwrap() >= 1);
    }
}
