//! `kind = "memory"`: memory in use (total minus available), in percent, read through
//! `sysinfo`; in a container with a memory limit (cgroup), the limit is the total.

use std::time::Duration;

use serde::Deserialize;
use sysinfo::System;

use super::{Kind, Run};
use crate::model::{MemorySample, Outcome, Reason, Sample, Thresholds, round1};

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

fn mem_degraded() -> f64 {
    90.0
}
fn mem_unhealthy() -> f64 {
    98.0
}

impl MemoryConfig {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            degraded_above: self.degraded_above,
            unhealthy_above: self.unhealthy_above,
        }
    }
}

impl Kind for MemoryConfig {
    type Probe = MemoryProbe;

    fn build(&self, _timeout: Duration) -> Result<MemoryProbe, String> {
        Ok(MemoryProbe {
            system: System::new().map_err(|e| format!("cannot read memory statistics: {e}"))?,
            thresholds: self.thresholds(),
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        self.thresholds().validate(problems);
    }
}

pub struct MemoryProbe {
    system: System,
    thresholds: Thresholds,
}

impl Run for MemoryProbe {
    async fn run(&mut self) -> Outcome {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn real_readings_are_in_range() {
        let mut mem = MemoryConfig {
            degraded_above: 99.0,
            unhealthy_above: 100.0,
        }
        .build(Duration::from_secs(1))
        .unwrap();
        let Some(Sample::Memory(m)) = mem.run().await.sample else {
            panic!("no memory sample")
        };
        assert!(
            m.total > 0 && m.used <= m.total && m.available <= m.total,
            "{m:?}"
        );
    }
}
