//! Reading the host: CPU, memory and paging, file systems, disks, network, load and
//! processes, pressure stall information and, inside a container, the cgroup's own figures.
//!
//! One process-wide [`Sampler`] keeps the latest reading of each family. Whoever needs a
//! figure (the host collector every `[metrics.host] interval`, a `cpu`, `memory`, `disk`,
//! `pressure`, `inodes` or `oom` check at its own interval) asks for a reading taken since a
//! given instant: a fresh enough one is shared, an older one is read again and kept for the
//! next caller. So a figure is read once per period, however many readers there are.
//!
//! The files are parsed by maintained parsers: `procfs` for `/proc` (and the cgroup's
//! pressure files, which have the same format), `sysinfo` for the load average and uptime,
//! `rustix` for `statvfs`. Only single-number and `key value` cgroup files are read here.
//!
//! - this file: the sampler, its freshness rule and the settings;
//! - [`cpu`], [`memory`], [`filesystem`], [`disk`], [`network`], [`system`], [`pressure`],
//!   [`cgroup`]: one family each;
//! - [`collector`]: the task that reads every family each period and publishes a
//!   [`HostSample`] for the renderers.

pub mod cgroup;
pub mod collector;
pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod memory;
pub mod network;
pub mod pressure;
pub mod system;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use regex_lite::Regex;

use crate::model::host::{
    CgroupReading, CpuReading, DisksReading, FilesystemsReading, HostSample, MemoryReading,
    NetworkReading, PressureReading, SystemReading,
};

pub use collector::{Collector, SharedHost};

/// Which names to keep: those the include pattern matches (all, without one) that the
/// exclude pattern does not match.
#[derive(Debug, Clone)]
pub struct NameFilter {
    pub include: Option<Regex>,
    pub exclude: Option<Regex>,
}

impl NameFilter {
    pub fn admits(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(name))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(name))
    }
}

impl PartialEq for NameFilter {
    fn eq(&self, other: &Self) -> bool {
        let s = |r: &Option<Regex>| r.as_ref().map(|r| r.as_str().to_string());
        s(&self.include) == s(&other.include) && s(&self.exclude) == s(&other.exclude)
    }
}

/// What the host collector reads and how often (built from `[metrics.host]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub interval: Duration,
    /// File systems by mount point and by type.
    pub mountpoints: NameFilter,
    pub fs_types: NameFilter,
    /// Block devices by name (`sda`, `nvme0n1`).
    pub devices: NameFilter,
    /// Network interfaces by name.
    pub interfaces: NameFilter,
    /// Count TCP connections by state (reads `/proc/net/tcp{,6}`, one line per socket).
    pub connections: bool,
}

/// The process-wide sampler (there is one host).
pub fn sampler() -> &'static Sampler {
    static SAMPLER: OnceLock<Sampler> = OnceLock::new();
    SAMPLER.get_or_init(Sampler::default)
}

/// The latest reading of each family, shared by everyone who reads the host.
#[derive(Debug, Default)]
pub struct Sampler {
    latest: Mutex<HostSample>,
    /// The file system settings the kept reading was taken with.
    fs_settings: Mutex<Option<(NameFilter, NameFilter)>>,
}

/// A family reading that knows when it was taken.
pub trait Reading {
    fn at(&self) -> Instant;
}

macro_rules! reading {
    ($($t:ty),+) => { $(impl Reading for $t { fn at(&self) -> Instant { self.at } })+ };
}
reading!(
    CpuReading,
    MemoryReading,
    FilesystemsReading,
    DisksReading,
    NetworkReading,
    SystemReading,
    PressureReading,
    CgroupReading
);

/// The kept reading if it was taken at or after `since`, else a new one (kept for the next
/// caller). `since = None` always reads.
fn fresh<T: Reading>(
    kept: Option<Arc<T>>,
    since: Option<Instant>,
    read: impl FnOnce(Option<&T>) -> Option<T>,
) -> (Option<Arc<T>>, bool) {
    if let (Some(k), Some(since)) = (&kept, since)
        && k.at() >= since
    {
        return (kept, false);
    }
    match read(kept.as_deref()) {
        Some(new) => (Some(Arc::new(new)), true),
        None => (None, false),
    }
}

macro_rules! family {
    ($(#[$doc:meta])* $name:ident, $field:ident, $t:ty, |$prev:ident| $read:expr) => {
        $(#[$doc])*
        pub fn $name(&self, since: Option<Instant>) -> Option<Arc<$t>> {
            let kept = self.lock().$field.clone();
            let (got, new) = fresh(kept, since, |$prev: Option<&$t>| $read);
            if new {
                let mut l = self.lock();
                l.$field = got.clone();
                l.taken_at = Some(SystemTime::now());
            }
            got
        }
    };
}

impl Sampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, HostSample> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything kept now (families may be of different ages).
    pub fn latest(&self) -> HostSample {
        self.lock().clone()
    }

    family!(
        /// `/proc/stat` times per mode, utilization since the previous reading, frequency.
        cpu, cpu, CpuReading, |prev| cpu::read(prev)
    );
    family!(
        /// `/proc/meminfo` and the paging counters of `/proc/vmstat`.
        memory, memory, MemoryReading, |_prev| memory::read()
    );
    family!(
        /// Load average, uptime, process counts.
        system, system, SystemReading, |_prev| system::read()
    );
    family!(
        /// `/proc/pressure/*`.
        pressure, pressure, PressureReading, |_prev| pressure::read_host()
    );
    family!(
        /// The container's cgroup v2 figures; `None` outside a container.
        cgroup, cgroup, CgroupReading, |_prev| cgroup::read()
    );

    /// [`Self::cpu`], with a utilization: the very first reading has nothing to compare
    /// with, so a second one follows after [`cpu::FIRST_WINDOW`].
    pub async fn cpu_with_utilization(&self, since: Option<Instant>) -> Option<Arc<CpuReading>> {
        let reading = self.cpu(since);
        if reading.as_ref().is_some_and(|r| r.utilization.is_none()) {
            tokio::time::sleep(cpu::FIRST_WINDOW).await;
            return self.cpu(None);
        }
        reading
    }

    /// `/proc/diskstats`, the devices `filter` admits.
    pub fn disks(&self, since: Option<Instant>, filter: &NameFilter) -> Option<Arc<DisksReading>> {
        let kept = self.lock().disks.clone();
        let (got, new) = fresh(kept, since, |_| disk::read(filter));
        if new {
            let mut l = self.lock();
            l.disks = got.clone();
            l.taken_at = Some(SystemTime::now());
        }
        got
    }

    /// `/proc/net/dev` (interfaces `filter` admits) and, with `connections`, TCP states.
    pub fn network(
        &self,
        since: Option<Instant>,
        filter: &NameFilter,
        connections: bool,
    ) -> Option<Arc<NetworkReading>> {
        let kept = self.lock().network.clone();
        let (got, new) = fresh(kept, since, |_| network::read(filter, connections));
        if new {
            let mut l = self.lock();
            l.network = got.clone();
            l.taken_at = Some(SystemTime::now());
        }
        got
    }

    /// The mounted file systems `mountpoints` and `fs_types` admit, with `statvfs` of each.
    /// Blocks while a file system does not answer (a dead network mount): call it off the
    /// async runtime (the collector does).
    pub fn filesystems(
        &self,
        since: Option<Instant>,
        mountpoints: &NameFilter,
        fs_types: &NameFilter,
    ) -> Option<Arc<FilesystemsReading>> {
        let wanted = (mountpoints.clone(), fs_types.clone());
        let same = self
            .fs_settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            == Some(&wanted);
        let kept = if same {
            self.lock().filesystems.clone()
        } else {
            None
        };
        let (got, new) = fresh(kept, since, |_| {
            filesystem::read(|m| mountpoints.admits(m), |t| fs_types.admits(t))
        });
        if new {
            let mut l = self.lock();
            l.filesystems = got.clone();
            l.taken_at = Some(SystemTime::now());
            *self.fs_settings.lock().unwrap_or_else(|e| e.into_inner()) = Some(wanted);
        }
        got
    }
}

/// Read a sysfs or cgroup file holding one value.
pub(crate) fn read_value(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct R(Instant);
    impl Reading for R {
        fn at(&self) -> Instant {
            self.0
        }
    }

    /// A reading taken at or after `since` is shared; an older one, or none, is read again.
    #[test]
    fn a_fresh_reading_is_shared_and_an_old_one_read_again() {
        let taken = Instant::now();
        let kept = Some(Arc::new(R(taken)));
        let mut reads = 0;
        let (got, new) = fresh(kept.clone(), Some(taken), |_| {
            reads += 1;
            Some(R(Instant::now()))
        });
        assert!(!new && reads == 0 && got.unwrap().0 == taken);
        let later = Instant::now();
        let (got, new) = fresh(kept.clone(), Some(later), |prev| {
            assert_eq!(
                prev.map(|p| p.0),
                Some(taken),
                "the reader sees the previous reading"
            );
            reads += 1;
            Some(R(Instant::now()))
        });
        assert!(new && reads == 1 && got.unwrap().0 >= later);
        let (_, new) = fresh(kept, None, |_| Some(R(Instant::now())));
        assert!(new, "no `since`: always read");
    }

    /// Two readers within one period: the second gets the first one's reading.
    #[test]
    fn the_sampler_reads_a_family_once_per_period() {
        let s = Sampler::default();
        let start = Instant::now();
        let first = s.memory(Some(start)).expect("/proc/meminfo");
        let second = s.memory(Some(start)).expect("kept");
        assert!(Arc::ptr_eq(&first, &second));
        let third = s.memory(Some(Instant::now())).expect("read again");
        assert!(!Arc::ptr_eq(&first, &third));
    }
}
