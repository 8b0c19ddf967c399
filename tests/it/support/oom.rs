//! A real out-of-memory kill on demand: a child memory cgroup with a small limit (cgroup v1
//! memory controller, or cgroup v2 `memory.max`) and a process in it that allocates past
//! the limit, so the kernel's OOM killer kills it. Only that process is at risk: the cgroup
//! OOM killer chooses within the cgroup. Needs root, as `scripts/test` runs.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::run_with_timeout;

/// A fresh child cgroup with a memory limit, and the file that admits a process to it.
fn child_cgroup() -> (PathBuf, PathBuf) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "healthd-oom-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let v1 = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()));
    let v1_root = PathBuf::from("/sys/fs/cgroup/memory");
    let (dir, limit_file) = match v1 {
        Some(path) if v1_root.is_dir() => (
            v1_root.join(path.trim_start_matches('/')).join(&name),
            "memory.limit_in_bytes",
        ),
        _ => (PathBuf::from("/sys/fs/cgroup").join(&name), "memory.max"),
    };
    std::fs::create_dir(&dir)
        .unwrap_or_else(|e| panic!("create cgroup {dir:?} (root needed): {e}"));
    std::fs::write(dir.join(limit_file), "33554432").expect("set the memory limit");
    // No swap to escape to (the file exists only where swap accounting is on).
    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
    let _ = std::fs::write(dir.join("memory.swappiness"), "0");
    let procs = dir.join("cgroup.procs");
    (dir, procs)
}

/// Run a process that the OOM killer kills; returns once it is dead and the cgroup gone.
pub fn kill_one() {
    let (dir, procs) = child_cgroup();
    // `tail` keeps the last line in memory, and /dev/zero has no newline: it grows until
    // the 32 MiB limit is reached and the kernel kills it.
    let script = format!(
        "echo $$ > {}; head -c 536870912 /dev/zero | tail > /dev/null",
        procs.display()
    );
    let out = run_with_timeout(
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdout(Stdio::null()),
        Duration::from_secs(60),
    )
    .expect("run the allocating process");
    assert!(
        !out.status.success(),
        "the allocation was not stopped: {out:?}"
    );
    let _ = std::fs::remove_dir(&dir);
}
