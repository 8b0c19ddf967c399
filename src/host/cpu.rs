//! CPU: seconds per mode from `/proc/stat` (procfs), the busy share since the previous
//! reading derived from them, and the current frequency from cpufreq where the kernel
//! exposes it. The process counts of the same file come along, so it is read once.

use std::path::Path;
use std::time::{Duration, Instant};

use procfs::{CpuTime, CurrentSI, KernelStats};

use crate::model::host::{CpuReading, CpuTimes};

/// The window of the very first utilization.
pub const FIRST_WINDOW: Duration = Duration::from_millis(200);
/// Below this, the clock-tick counters are too coarse for a share: a reading this soon
/// after the previous one keeps the previous utilization.
const MIN_WINDOW: Duration = Duration::from_millis(100);

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn times(t: &CpuTime) -> CpuTimes {
    CpuTimes {
        user: seconds(t.user_ms()),
        nice: seconds(t.nice_ms()),
        system: seconds(t.system_ms()),
        idle: seconds(t.idle_ms()),
        iowait: seconds(t.iowait_ms().unwrap_or(0)),
        irq: seconds(t.irq_ms().unwrap_or(0)),
        softirq: seconds(t.softirq_ms().unwrap_or(0)),
        steal: seconds(t.steal_ms().unwrap_or(0)),
    }
}

/// Busy share of all CPUs between two readings, 0 to 1; `None` when no time passed.
pub fn utilization(prev: &CpuTimes, now: &CpuTimes) -> Option<f64> {
    let total = now.total() - prev.total();
    (total > 0.0).then(|| ((now.busy() - prev.busy()) / total).clamp(0.0, 1.0))
}

/// Read `/proc/stat`; `prev` (the previous reading) gives the utilization.
pub fn read(prev: Option<&CpuReading>) -> Option<CpuReading> {
    let stats = KernelStats::current().ok()?;
    let total = times(&stats.total);
    let per_cpu: Vec<CpuTimes> = stats.cpu_time.iter().map(times).collect();
    let frequency_hz = (0..per_cpu.len())
        .map(|n| {
            let path = format!("/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_cur_freq");
            super::read_value(Path::new(&path))
                .and_then(|khz| khz.parse::<f64>().ok())
                .map(|khz| khz * 1000.0)
        })
        .collect();
    Some(CpuReading {
        at: Instant::now(),
        utilization: prev.and_then(|p| {
            if p.at.elapsed() < MIN_WINDOW {
                p.utilization
            } else {
                utilization(&p.total, &total)
            }
        }),
        total,
        per_cpu,
        frequency_hz,
        procs_running: stats.procs_running.map(u64::from),
        procs_blocked: stats.procs_blocked.map(u64::from),
        procs_created: stats.processes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_is_the_busy_share_of_the_elapsed_time() {
        let a = CpuTimes {
            user: 10.0,
            idle: 10.0,
            ..CpuTimes::default()
        };
        let b = CpuTimes {
            user: 13.0,
            system: 1.0,
            idle: 14.0,
            iowait: 2.0,
            ..a
        };
        // 4 s busy out of 10 s.
        assert_eq!(utilization(&a, &b), Some(0.4));
        assert_eq!(utilization(&a, &a), None);
    }

    #[test]
    fn reads_this_machine() {
        let first = read(None).expect("/proc/stat");
        assert!(!first.per_cpu.is_empty());
        assert!(first.total.total() > 0.0 && first.utilization.is_none());
        assert!(first.procs_created > 0);
    }
}
