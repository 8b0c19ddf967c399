//! What a restart carries over from the store to the health loop: each check's trailing
//! results, so that its failure and success thresholds go on counting where they stopped
//! (its status itself is not restored).
//!
//! Bounds: only checks whose name is in the store with the same kind; at most
//! `failure_threshold + success_threshold` results (capped at [`MOST`]); and only a run of
//! results that a running healthd would still trust — the newest no older than the check's
//! staleness bound at its longest delay (`max_staleness`, by default 2 × the interval, or
//! 2 × `max_backoff` with backoff, + the timeout) when healthd starts, and no gap longer
//! than that between two of them. A counter from last week does not count.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::record::unix_ms;
use super::store::{Reader, StoreError};
use crate::config::CheckConfig;
use crate::model::Level;

/// The most results read per check.
pub const MOST: u32 = 100;

/// How long a result of this check stays trustworthy, at its longest delay between runs.
fn trusted_for(c: &CheckConfig) -> Duration {
    let r = &c.resilience;
    let longest = if r.backoff {
        r.max_backoff.max(c.interval)
    } else {
        c.interval
    };
    r.stale_after(longest, c.interval, c.timeout)
}

/// Per check with history, its trailing trusted results at `now`, oldest first.
pub fn trailing(
    reader: &Reader,
    checks: &[std::sync::Arc<CheckConfig>],
    now: SystemTime,
) -> Result<HashMap<String, Vec<Level>>, StoreError> {
    let mut out = HashMap::new();
    for c in checks {
        let Some(info) = reader.check(&c.name)? else {
            continue;
        };
        if info.kind != c.kind() {
            continue;
        }
        let most = c
            .failure_threshold
            .saturating_add(c.success_threshold)
            .min(MOST);
        let bound = trusted_for(c).as_millis() as u64;
        let mut after = unix_ms(now);
        let mut levels: Vec<Level> = reader
            .raw(info.id, most as usize)?
            .into_iter()
            .take_while(|r| {
                let trusted = after.saturating_sub(r.at_ms) <= bound;
                after = r.at_ms;
                trusted
            })
            .map(|r| r.level.into())
            .collect();
        if !levels.is_empty() {
            levels.reverse();
            out.insert(c.name.clone(), levels);
        }
    }
    Ok(out)
}
