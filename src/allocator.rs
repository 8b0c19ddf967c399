//! One malloc arena for the daemon (glibc only).
//!
//! glibc gives every thread that allocates an arena of its own, up to eight per core, and
//! the free space inside one arena serves no other thread. healthd's threads (the workers,
//! the probe lane's, the history thread) each kept megabytes of such free space: with
//! 10,000 checks, one arena instead of glibc's default takes 8–9 MiB off the daemon's peak
//! RSS (61 → 52 MiB), with no consistent difference in CPU in paired runs (bench/README.md,
//! round five): small allocations come from each thread's cache without the arena's lock.
//!
//! glibc reads the arena limit only when the process starts (`GLIBC_TUNABLES`), and setting
//! it from inside takes `mallopt`, an unsafe call. So `healthd run` executes itself once
//! more, at once, with `glibc.malloc.arena_max=1` added: the same program, arguments,
//! process id and open descriptors (`exec`, not a child). An operator's own
//! `glibc.malloc.arena_max` or `MALLOC_ARENA_MAX` is left as given, and when the program
//! cannot be executed again healthd simply goes on with glibc's default. Programs healthd
//! starts (exec checks) get a cleared environment, so the setting does not reach them.

/// The environment variable glibc reads its tunables from.
pub const TUNABLES: &str = "GLIBC_TUNABLES";
/// The tunable that limits the arenas.
pub const ARENA_MAX: &str = "glibc.malloc.arena_max";

/// The `GLIBC_TUNABLES` value to run with, or `None` when the arena limit is already set
/// (by the operator, or by the first execution).
pub fn tunables_with_one_arena(
    current: Option<&str>,
    malloc_arena_max: Option<&str>,
) -> Option<String> {
    if malloc_arena_max.is_some() {
        return None;
    }
    match current {
        Some(t)
            if t.split(':')
                .any(|kv| kv.split('=').next() == Some(ARENA_MAX)) =>
        {
            None
        }
        Some(t) if !t.is_empty() => Some(format!("{t}:{ARENA_MAX}=1")),
        _ => Some(format!("{ARENA_MAX}=1")),
    }
}

/// Execute this program again with one malloc arena, unless the limit is set already.
/// Returns only when nothing was done or the execution failed (then glibc's default holds).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn reexec_with_one_arena() {
    use std::os::unix::process::CommandExt;

    // A value that is not UTF-8 is the operator's and is kept as it is, never replaced.
    let current = match std::env::var_os(TUNABLES).map(|v| v.into_string()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return,
    };
    let legacy = std::env::var_os("MALLOC_ARENA_MAX").map(|v| v.to_string_lossy().into_owned());
    let Some(value) = tunables_with_one_arena(current.as_deref(), legacy.as_deref()) else {
        return;
    };
    // The program's own path (not /proc/self/exe, whose name would become the process
    // name that ps and the journal show).
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // `exec` returns only on failure; healthd then runs as it is.
    let _ = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(TUNABLES, value)
        .exec();
}

/// Other C libraries keep no per-thread arenas of this kind: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn reexec_with_one_arena() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_added_once_and_an_operators_setting_wins() {
        let one = "glibc.malloc.arena_max=1";
        assert_eq!(tunables_with_one_arena(None, None).as_deref(), Some(one));
        assert_eq!(
            tunables_with_one_arena(Some(""), None).as_deref(),
            Some(one)
        );
        assert_eq!(
            tunables_with_one_arena(Some("glibc.malloc.tcache_count=0"), None).as_deref(),
            Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1")
        );
        // Already set (by the first execution, or by the operator): left alone.
        assert_eq!(tunables_with_one_arena(Some(one), None), None);
        assert_eq!(
            tunables_with_one_arena(Some("glibc.malloc.arena_max=4:glibc.x=1"), None),
            None
        );
        assert_eq!(tunables_with_one_arena(None, Some("2")), None);
        // A longer tunable name that merely starts the same is not the limit.
        assert_eq!(
            tunables_with_one_arena(Some("glibc.malloc.arena_max_x=2"), None).as_deref(),
            Some("glibc.malloc.arena_max_x=2:glibc.malloc.arena_max=1")
        );
    }
}
