//! One reading of the host, family by family, as the host collector takes it and the
//! renderers and resource checks read it. Plain data: `host` fills it, nothing here reads
//! the system.
//!
//! Each family carries the instant it was read, so a reader can tell whether a figure is
//! fresh enough to reuse instead of reading it again. Counters are cumulative since boot
//! (as the kernel keeps them); times are in seconds, sizes in bytes.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The latest reading of every family the platform has (`None`: not readable here).
#[derive(Debug, Clone, Default)]
pub struct HostSample {
    /// When the newest family in it was read.
    pub taken_at: Option<SystemTime>,
    pub cpu: Option<Arc<CpuReading>>,
    pub memory: Option<Arc<MemoryReading>>,
    pub filesystems: Option<Arc<FilesystemsReading>>,
    pub disks: Option<Arc<DisksReading>>,
    pub network: Option<Arc<NetworkReading>>,
    pub system: Option<Arc<SystemReading>>,
    pub pressure: Option<Arc<PressureReading>>,
    /// Only inside a container (cgroup v2 namespace of its own).
    pub cgroup: Option<Arc<CgroupReading>>,
}

/// Seconds spent in each mode, as `/proc/stat` counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
}

impl CpuTimes {
    /// `(cpu.mode, seconds)` in the order they are exported.
    pub fn modes(&self) -> [(&'static str, f64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    pub fn total(&self) -> f64 {
        self.modes().iter().map(|(_, s)| s).sum()
    }

    /// Time neither idle nor waiting for I/O.
    pub fn busy(&self) -> f64 {
        self.total() - self.idle - self.iowait
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CpuReading {
    pub at: Instant,
    /// All CPUs together.
    pub total: CpuTimes,
    /// One per logical CPU, by `cpu.logical_number`.
    pub per_cpu: Vec<CpuTimes>,
    /// Busy share of all CPUs since the previous reading, 0 to 1; `None` on the first.
    pub utilization: Option<f64>,
    /// Current frequency per logical CPU in hertz, where cpufreq is readable.
    pub frequency_hz: Vec<Option<f64>>,
    /// From the same `/proc/stat` read: processes running and blocked on I/O now, and
    /// processes (and threads) created since boot.
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
    pub procs_created: u64,
}

/// `/proc/meminfo` and the paging counters of `/proc/vmstat`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryReading {
    pub at: Instant,
    pub total: u64,
    pub free: u64,
    pub available: u64,
    pub buffers: u64,
    pub cached: u64,
    pub swap_total: u64,
    pub swap_free: u64,
    pub paging: PagingCounters,
}

impl MemoryReading {
    /// In use as the conventions define it: total minus available.
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    pub fn swap_used(&self) -> u64 {
        self.swap_total.saturating_sub(self.swap_free)
    }
}

/// Cumulative paging counters from `/proc/vmstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PagingCounters {
    /// Pages swapped in and out (`pswpin`, `pswpout`).
    pub swap_in: u64,
    pub swap_out: u64,
    /// Paged in from and out to disk (`pgpgin`, `pgpgout`).
    pub page_in: u64,
    pub page_out: u64,
    /// All page faults (`pgfault`) and the major ones (`pgmajfault`).
    pub faults: u64,
    pub major_faults: u64,
    /// Processes killed by the kernel's OOM killer (`oom_kill`, Linux 4.13+).
    pub oom_kills: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilesystemsReading {
    pub at: Instant,
    pub list: Vec<Filesystem>,
}

/// One mounted file system, as `statvfs` and the mount table describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filesystem {
    pub device: String,
    pub mountpoint: String,
    pub fs_type: String,
    pub read_only: bool,
    pub total: u64,
    /// Free blocks, including those reserved for root.
    pub free: u64,
    /// Free to unprivileged users.
    pub available: u64,
    pub inodes_total: u64,
    pub inodes_free: u64,
}

impl Filesystem {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }

    pub fn inodes_used(&self) -> u64 {
        self.inodes_total.saturating_sub(self.inodes_free)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DisksReading {
    pub at: Instant,
    pub list: Vec<DiskIo>,
}

/// One block device's counters from `/proc/diskstats`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskIo {
    pub device: String,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub reads: u64,
    pub writes: u64,
    pub reads_merged: u64,
    pub writes_merged: u64,
    /// Seconds spent on reads and writes (summed over requests).
    pub read_time: f64,
    pub write_time: f64,
    /// Seconds the device was busy.
    pub io_time: f64,
    /// Requests in flight now.
    pub pending: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkReading {
    pub at: Instant,
    pub interfaces: Vec<Interface>,
    /// `(network.connection.state, count)` of TCP sockets over IPv4 and IPv6; `None` when
    /// connection counting is off.
    pub tcp_states: Option<Vec<(&'static str, u64)>>,
}

/// One network interface's counters from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// Load and uptime.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemReading {
    pub at: Instant,
    /// 1, 5 and 15 minute load averages.
    pub load_average: Option<[f64; 3]>,
    pub uptime_seconds: Option<f64>,
}

/// Pressure stall information of one resource.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Psi {
    pub some: PsiLine,
    /// `None` where the kernel has no `full` line (CPU before Linux 5.13).
    pub full: Option<PsiLine>,
}

/// One line of a pressure file: shares of time stalled, 0 to 1, and the total stall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Seconds stalled since boot (or since the cgroup was created).
    pub total: f64,
}

impl PsiLine {
    /// The average over `window` ("avg10", "avg60" or "avg300").
    pub fn average(&self, window: PsiWindow) -> f64 {
        match window {
            PsiWindow::Avg10 => self.avg10,
            PsiWindow::Avg60 => self.avg60,
            PsiWindow::Avg300 => self.avg300,
        }
    }
}

/// The averaging windows of a pressure line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsiWindow {
    Avg10,
    Avg60,
    Avg300,
}

impl PsiWindow {
    pub const ALL: [PsiWindow; 3] = [PsiWindow::Avg10, PsiWindow::Avg60, PsiWindow::Avg300];

    pub fn as_str(self) -> &'static str {
        match self {
            PsiWindow::Avg10 => "avg10",
            PsiWindow::Avg60 => "avg60",
            PsiWindow::Avg300 => "avg300",
        }
    }
}

/// `/proc/pressure/{cpu,memory,io}` (or the cgroup's `*.pressure`).
#[derive(Debug, Clone, PartialEq)]
pub struct PressureReading {
    pub at: Instant,
    pub cpu: Option<Psi>,
    pub memory: Option<Psi>,
    pub io: Option<Psi>,
}

impl PressureReading {
    /// `(resource, figures)` for the resources the kernel reports.
    pub fn resources(&self) -> impl Iterator<Item = (&'static str, &Psi)> {
        [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("io", &self.io),
        ]
        .into_iter()
        .filter_map(|(r, p)| p.as_ref().map(|p| (r, p)))
    }
}

/// The container's own figures from its cgroup v2 directory.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupReading {
    pub at: Instant,
    /// The cgroup's path as `/proc/self/cgroup` gives it.
    pub path: String,
    /// CPU seconds used in user and system mode (`cpu.stat`).
    pub cpu_user: f64,
    pub cpu_system: f64,
    /// Enforcement periods, those throttled, and the time throttled (`cpu.stat`).
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: f64,
    /// CPUs the quota allows (`cpu.max` quota / period); `None` when unlimited.
    pub cpu_limit: Option<f64>,
    /// `memory.current` and `memory.max` (`None` when unlimited).
    pub memory_current: u64,
    pub memory_max: Option<u64>,
    /// `memory.events`: (event, count) for low, high, max, oom, oom_kill.
    pub memory_events: Vec<(String, u64)>,
    pub pressure: Option<PressureReading>,
}

impl CgroupReading {
    /// The `oom_kill` count of `memory.events`.
    pub fn oom_kills(&self) -> Option<u64> {
        self.memory_events
            .iter()
            .find(|(e, _)| e == "oom_kill")
            .map(|(_, n)| *n)
    }
}
