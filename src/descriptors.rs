//! healthd's own file descriptors: the limit is raised to the hard limit at start, client
//! connections get a share of it derived from it, and a run that failed because healthd ran
//! out of descriptors is healthd's failure, never the dependency's (the health loop keeps the
//! check's verdict and reports it in the `descriptors` self-check).

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The share of the descriptor limit that client connections may take at most; the rest is
/// for probes, kept connections, the listener, logs and the runtime.
const CLIENT_SHARE: u64 = 4;

/// The soft limit on open files before and after [`raise_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub was: Option<u64>,
    pub now: Option<u64>,
    pub hard: Option<u64>,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (1024 is a common soft default while the
/// hard one is far higher; tokio never uses `select`, so a high limit is safe). `None` means
/// unlimited.
pub fn raise_limit() -> std::io::Result<Raised> {
    let old = getrlimit(Resource::Nofile);
    if old.current != old.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: old.maximum,
                maximum: old.maximum,
            },
        )?;
    }
    Ok(Raised {
        was: old.current,
        now: limit(),
        hard: old.maximum,
    })
}

/// The current soft limit on open files (`None`: unlimited).
pub fn limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// How many client connections the listener may hold: the configured bound, but never more
/// than a quarter of the descriptor limit.
pub fn client_cap(configured: usize) -> usize {
    let share = limit().map_or(u64::MAX, |l| (l / CLIENT_SHARE).max(1));
    usize::try_from(share).map_or(configured, |s| configured.min(s))
}

/// Descriptors open now (`/proc/self/fd`), if readable.
pub fn in_use() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_share_is_a_quarter_of_the_limit_at_most() {
        let l = limit().expect("a finite descriptor limit");
        assert!(client_cap(usize::MAX) as u64 <= l / CLIENT_SHARE);
        assert_eq!(client_cap(1), 1);
    }
}
