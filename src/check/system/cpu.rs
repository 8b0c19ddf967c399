//! `kind = "cpu"`: utilisation of all cores, in percent, read through `sysinfo`.

use std::time::{Duration, Instant};

use serde::Deserialize;
use sysinfo::System;

use super::{Kind, Run};
use crate::model::{CpuSample, Outcome, Sample, Thresholds, round1};

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
            system: System::new().map_err(|e| format!("cannot read CPU statistics: {e}"))?,
            last_refresh: None,
            thresholds: self.thresholds(),
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        self.thresholds().validate(problems);
    }
}

pub struct CpuProbe {
    system: System,
    last_refresh: Option<Instant>,
    thresholds: Thresholds,
}

impl Run for CpuProbe {
    /// Utilisation is averaged since the previous run (a run's whole interval); the first
    /// run measures over sysinfo's minimum window.
    async fn run(&mut self) -> Outcome {
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
        let Some(Sample::Cpu(s)) = out.sample else {
            panic!("no cpu sample")
        };
        assert!((0.0..=1.0).contains(&s.utilization), "{s:?}");
        assert!(s.logical_cpus >= 1);
    }
}
