//! The open-file limit against the configured checks, checked at start (after healthd raised
//! its soft limit to the hard one, `descriptors::raise_limit`): with too low a limit, probes
//! fail with "too many open files" one by one, long after start-up. healthd refuses to start
//! instead, naming both numbers.

use super::Config;
use crate::check::ProbeConfig;

/// Descriptors besides the checks': the listeners, the store, logs, the host collector and
/// the runtime's own. HTTP connections beyond what is left are shed by the server
/// (`server.limits.max_connections`), so they do not count here.
const RESERVE: u64 = 64;

/// How many descriptors the config may hold open at once, and how they add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed {
    /// Checks that keep a connection open between runs (postgres, redis, gRPC, HTTP).
    pub kept: u64,
    /// Other checks' runs open at once: at most `server.max_in_flight`.
    pub in_flight: u64,
    pub total: u64,
}

/// The descriptors `config` needs at most.
pub fn needed(config: &Config) -> Needed {
    let kept = config
        .checks
        .iter()
        .filter(|c| keeps_open(&c.probe))
        .count() as u64;
    let others = config.checks.len() as u64 - kept;
    let in_flight = others.min(config.server.max_in_flight as u64);
    Needed {
        kept,
        in_flight,
        total: kept + in_flight + RESERVE,
    }
}

fn keeps_open(probe: &ProbeConfig) -> bool {
    matches!(
        probe,
        ProbeConfig::Postgres(_)
            | ProbeConfig::Redis(_)
            | ProbeConfig::Grpc(_)
            | ProbeConfig::Http(_)
    )
}

/// Whether `limit` descriptors are enough for `config`; the checks may use three quarters
/// of it (client connections may take the last quarter, `descriptors::client_cap`).
/// `Err` when the kept connections alone do not fit: they could never all be open.
/// `Ok(Some(warning))` when they fit but not with every probe running at once: such runs
/// lack a descriptor at times, which the `descriptors` self-check reports and which is not
/// counted against the checks. Both texts name the numbers and what to change.
pub fn check(config: &Config, limit: u64) -> Result<Option<String>, String> {
    let n = needed(config);
    let share = limit - limit / 4;
    if n.total <= share {
        return Ok(None);
    }
    let text = format!(
        "the open-file limit (RLIMIT_NOFILE) is {limit}, but {checks} checks need up to {total} \
         descriptors ({kept} kept connections, {in_flight} probes at once \
         (server.max_in_flight) and {RESERVE} for healthd itself) and client connections may \
         take a quarter of the limit; raise the limit \
         (LimitNOFILE= in the systemd unit, ulimit -n) or lower server.max_in_flight",
        checks = config.checks.len(),
        total = n.total,
        kept = n.kept,
        in_flight = n.in_flight,
    );
    if n.kept > share {
        Err(text)
    } else {
        Ok(Some(text))
    }
}
