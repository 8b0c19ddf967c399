//! Memory from `/proc/meminfo` and paging from `/proc/vmstat`, both through procfs.
//! (`sysinfo` has the totals but not buffers, cached or the paging counters, and reading
//! the file through both would read it twice.)

use std::time::Instant;

use procfs::{Current, Meminfo};

use crate::model::host::{MemoryReading, PagingCounters};

pub fn read() -> Option<MemoryReading> {
    let m = Meminfo::current().ok()?;
    let vm = procfs::vmstat().unwrap_or_default();
    let count = |k: &str| vm.get(k).map(|v| u64::try_from(*v).unwrap_or(0));
    Some(MemoryReading {
        at: Instant::now(),
        total: m.mem_total,
        free: m.mem_free,
        // Before Linux 3.14 there is no MemAvailable; free + buffers + cached is the old
        // estimate.
        available: m.mem_available.unwrap_or(m.mem_free + m.buffers + m.cached),
        buffers: m.buffers,
        cached: m.cached,
        swap_total: m.swap_total,
        swap_free: m.swap_free,
        paging: PagingCounters {
            swap_in: count("pswpin").unwrap_or(0),
            swap_out: count("pswpout").unwrap_or(0),
            page_in: count("pgpgin").unwrap_or(0),
            page_out: count("pgpgout").unwrap_or(0),
            faults: count("pgfault").unwrap_or(0),
            major_faults: count("pgmajfault").unwrap_or(0),
            oom_kills: count("oom_kill"),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_machine() {
        let m = super::read().expect("/proc/meminfo");
        assert!(
            m.total > 0 && m.available <= m.total && m.used() <= m.total,
            "{m:?}"
        );
        assert!(m.paging.faults >= m.paging.major_faults);
    }
}
