//! `kind = "memory"`: memory in use (total minus available), in percent, from the host
//! sampler's `/proc/meminfo` readings (shared with the host metrics); in a container with a
//! memory limit (cgroup v2 `memory.max`), the limit is the total and `memory.current` used.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Kind, Run};
use crate::host::sampler;
use crate::model::{Outcome, Reason, Thresholds, round1};

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
            last_run: None,
            thresholds: self.thresholds(),
        })
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        self.thresholds().validate(problems);
    }
}

pub struct MemoryProbe {
    /// When the previous run finished: a host reading taken since then is shared.
    last_run: Option<Instant>,
    thresholds: Thresholds,
}

/// What the check judges: bytes in use out of a total.
struct Usage {
    total: u64,
    used: u64,
    source: &'static str,
}

impl Run for MemoryProbe {
    async fn run(&mut self) -> Outcome {
        let host = sampler();
        let memory = host.memory(self.last_run);
        let cgroup = host.cgroup(self.last_run);
        self.last_run = Some(Instant::now());
        let Some(m) = memory else {
            return Outcome::failed(Reason::Internal, "cannot read /proc/meminfo");
        };
        let usage = match cgroup.as_ref().and_then(|c| Some((c.memory_max?, c.memory_current))) {
            Some((limit, current)) if limit > 0 && limit < m.total => Usage {
                total: limit,
                used: current.min(limit),
                source: "cgroup",
            },
            _ => Usage {
                total: m.total,
                used: m.used(),
                source: "host",
            },
        };
        if usage.total == 0 {
            return Outcome::failed(Reason::Internal, "total memory reads as 0");
        }
        let percent = usage.used as f64 * 100.0 / usage.total as f64;
        let what = if usage.source == "cgroup" {
            "memory (cgroup limit)"
        } else {
            "memory"
        };
        self.thresholds
            .outcome(what, percent)
            .with_detail("percent_used", round1(percent))
            .with_detail("total_bytes", usage.total)
            .with_detail("used_bytes", usage.used)
            .with_detail("available_bytes", usage.total - usage.used)
            .with_detail("source", usage.source)
    }
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
        let out = mem.run().await;
        let total = out.details["total_bytes"].as_u64().unwrap();
        let used = out.details["used_bytes"].as_u64().unwrap();
        assert!(total > 0 && used <= total, "{out:?}");
    }
}
