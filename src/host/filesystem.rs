//! Mounted file systems: the mount table from `/proc/self/mountinfo` (procfs) and the
//! space and inodes of each through `statvfs` (rustix).

use std::path::{Path, PathBuf};
use std::time::Instant;

use procfs::process::{MountInfo, Process};

use crate::model::host::{Filesystem, FilesystemsReading};

/// The mount table, the visible mount per mount point (the last one mounted there).
pub fn mounts() -> Option<Vec<MountInfo>> {
    let all = Process::myself().ok()?.mountinfo().ok()?;
    let mut visible: Vec<MountInfo> = Vec::new();
    for m in all {
        visible.retain(|v| v.mount_point != m.mount_point);
        visible.push(m);
    }
    Some(visible)
}

/// The mount table's entry for `mountpoint`.
pub fn entry(mountpoint: &Path) -> Option<MountInfo> {
    mounts()?.into_iter().find(|m| m.mount_point == mountpoint)
}

/// `statvfs` of `path` as a [`Filesystem`] with the given identity.
pub fn stat(path: &Path, device: String, fs_type: String, read_only: bool) -> Option<Filesystem> {
    let s = rustix::fs::statvfs(path).ok()?;
    let unit = if s.f_frsize > 0 {
        s.f_frsize
    } else {
        s.f_bsize
    };
    Some(Filesystem {
        device,
        mountpoint: path.display().to_string(),
        fs_type,
        read_only,
        total: s.f_blocks.saturating_mul(unit),
        free: s.f_bfree.saturating_mul(unit),
        available: s.f_bavail.saturating_mul(unit),
        inodes_total: s.f_files,
        inodes_free: s.f_ffree,
    })
}

/// The mount point holding `path` (canonical): its highest ancestor on the same device.
pub fn mount_point_of(path: &Path) -> Option<PathBuf> {
    let dev = rustix::fs::stat(path).ok()?.st_dev;
    let mut mount = path.to_path_buf();
    for parent in path.ancestors().skip(1) {
        match rustix::fs::stat(parent) {
            Ok(s) if s.st_dev == dev => mount = parent.to_path_buf(),
            _ => break,
        }
    }
    Some(mount)
}

/// The file system holding `real` (a canonical path), as `df PATH` finds it: from `shared`
/// (a fresh reading of the host collector) when it lists that mount point, else read now.
pub fn holding(real: &Path, shared: Option<&FilesystemsReading>) -> Option<Filesystem> {
    let mountpoint = mount_point_of(real).unwrap_or_else(|| real.to_path_buf());
    let at = mountpoint.display().to_string();
    if let Some(f) = shared.and_then(|r| r.list.iter().find(|f| f.mountpoint == at)) {
        return Some(f.clone());
    }
    let (device, fs_type, ro) = entry(&mountpoint)
        .map(|m| {
            let ro = m.mount_options.contains_key("ro");
            (m.mount_source.unwrap_or_default(), m.fs_type, ro)
        })
        .unwrap_or_default();
    stat(&mountpoint, device, fs_type, ro)
}

/// Every mounted file system whose mount point and type are admitted.
pub fn read(
    mountpoint_ok: impl Fn(&str) -> bool,
    type_ok: impl Fn(&str) -> bool,
) -> Option<FilesystemsReading> {
    let list = mounts()?
        .into_iter()
        .filter(|m| type_ok(&m.fs_type) && mountpoint_ok(&m.mount_point.to_string_lossy()))
        .filter_map(|m| {
            let ro = m.mount_options.contains_key("ro");
            let device = m.mount_source.clone().unwrap_or_else(|| "none".into());
            stat(&m.mount_point, device, m.fs_type.clone(), ro)
        })
        // Like df: a file system of no blocks (autofs placeholders and the like) says nothing.
        .filter(|f| f.total > 0)
        .collect();
    Some(FilesystemsReading {
        at: Instant::now(),
        list,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_listed_with_its_inodes() {
        let r = super::read(|_| true, |_| true).expect("mount table");
        let root = r
            .list
            .iter()
            .find(|f| f.mountpoint == "/")
            .expect("/ mounted");
        assert!(root.total > 0 && root.available <= root.free && root.free <= root.total);
        assert!(root.inodes_total == 0 || root.inodes_free <= root.inodes_total);
    }
}
