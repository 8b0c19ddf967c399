//! The host collector: one task that reads every family each `[metrics.host] interval`
//! and publishes the result as one [`HostSample`], which `/metrics` and OTLP render.
//! Readings a check took since half an interval ago are reused, not read again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::model::host::HostSample;

use super::{Settings, sampler};

/// The latest published host sample (`None` while host metrics are off or not read yet).
pub type SharedHost = Arc<ArcSwapOption<HostSample>>;

/// Bound on reading the file systems; a mount that does not answer (a dead NFS server)
/// leaves the previous reading in place until it does.
const FS_BOUND: Duration = Duration::from_secs(5);

/// Set while a file system read is running (possibly stuck on a dead mount), so that reads
/// do not pile up behind it.
static FS_BUSY: AtomicBool = AtomicBool::new(false);

/// Read every family, reusing readings taken at or after `since`.
pub async fn collect(settings: &Settings, since: Option<Instant>) -> HostSample {
    let s = sampler();
    let cpu = s.cpu_with_utilization(since).await;
    let filesystems = read_filesystems(settings, since).await;
    HostSample {
        taken_at: Some(SystemTime::now()),
        cpu,
        memory: s.memory(since),
        filesystems,
        disks: s.disks(since, &settings.devices),
        network: s.network(since, &settings.interfaces, settings.connections),
        system: s.system(since),
        pressure: s.pressure(since),
        cgroup: s.cgroup(since),
    }
}

async fn read_filesystems(
    settings: &Settings,
    since: Option<Instant>,
) -> Option<Arc<crate::model::host::FilesystemsReading>> {
    let kept = || sampler().latest().filesystems;
    if FS_BUSY.swap(true, Ordering::AcqRel) {
        return kept();
    }
    let (mountpoints, fs_types) = (settings.mountpoints.clone(), settings.fs_types.clone());
    let read = tokio::task::spawn_blocking(move || {
        let r = sampler().filesystems(since, &mountpoints, &fs_types);
        FS_BUSY.store(false, Ordering::Release);
        r
    });
    match tokio::time::timeout(FS_BOUND.min(settings.interval), read).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => {
            FS_BUSY.store(false, Ordering::Release);
            kept()
        }
        Err(_) => {
            tracing::warn!(
                bound = %humantime::format_duration(FS_BOUND.min(settings.interval)),
                "A file system does not answer statvfs; file system metrics are kept from the previous reading."
            );
            kept()
        }
    }
}

/// A running host collector.
pub struct Collector {
    settings: Settings,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Collector {
    /// Start, keep, restart or stop the collector to match `wanted` (`None`: host metrics
    /// off, and nothing is published).
    pub fn apply(
        current: Option<Collector>,
        wanted: Option<Settings>,
        out: &SharedHost,
    ) -> Option<Collector> {
        if let (Some(c), Some(w)) = (&current, &wanted)
            && c.settings == *w
        {
            return current;
        }
        if let Some(c) = current {
            c.stop();
        }
        let Some(settings) = wanted else {
            out.store(None);
            return None;
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(settings.clone(), out.clone(), cancel.clone()));
        Some(Collector {
            settings,
            cancel,
            task,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn stop(self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

async fn run(settings: Settings, out: SharedHost, cancel: CancellationToken) {
    let mut next = tokio::time::Instant::now();
    loop {
        // A reading a check took within the last half period is recent enough to share.
        let since = Instant::now().checked_sub(settings.interval / 2);
        let sample = tokio::select! {
            _ = cancel.cancelled() => return,
            s = collect(&settings, since) => s,
        };
        out.store(Some(Arc::new(sample)));
        next += settings.interval;
        let now = tokio::time::Instant::now();
        while next <= now {
            next += settings.interval;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}
