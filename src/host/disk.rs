//! Block devices' I/O counters from `/proc/diskstats` (procfs).

use std::time::Instant;

use crate::model::host::{DiskIo, DisksReading};

use super::NameFilter;

/// The kernel counts in 512-byte sectors whatever the device's sector size.
const SECTOR: u64 = 512;

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

pub fn read(filter: &NameFilter) -> Option<DisksReading> {
    let stats = procfs::diskstats().ok()?;
    let list = stats
        .into_iter()
        .filter(|d| filter.admits(&d.name))
        .map(|d| DiskIo {
            read_bytes: d.sectors_read.saturating_mul(SECTOR),
            written_bytes: d.sectors_written.saturating_mul(SECTOR),
            reads: d.reads,
            writes: d.writes,
            reads_merged: d.merged,
            writes_merged: d.writes_merged,
            read_time: seconds(d.time_reading),
            write_time: seconds(d.time_writing),
            io_time: seconds(d.time_in_progress),
            pending: d.in_progress,
            device: d.name,
        })
        .collect();
    Some(DisksReading {
        at: Instant::now(),
        list,
    })
}
