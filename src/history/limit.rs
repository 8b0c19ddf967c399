//! The in-memory store's limit (`[history] memory_limit`): each check may hold an equal
//! share of it, and a check over its share gives up its oldest rows, first those no uptime
//! or SLO window reads, then the oldest of its largest table. Without it the store grows
//! with its retention, to about 17 KB per check after 35 days: 1.7 GB at 100,000 checks.

use super::memory::Check;
use super::record::Resolution;

/// Raw results a check keeps before rows a window reads are touched.
pub const RAW_FLOOR: usize = 10;
/// Minute buckets a check keeps likewise: 2 hours, what the burn-rate windows read.
pub const MINUTE_FLOOR: usize = 120;

/// What fitting checks into their shares dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    pub rows: u64,
    /// Rows below the floors went: the uptime and SLO windows now see less than they cover.
    pub deep: bool,
}

impl std::ops::AddAssign for Trimmed {
    fn add_assign(&mut self, o: Trimmed) {
        self.rows += o.rows;
        self.deep |= o.deep;
    }
}

/// Each check's share of `limit` bytes when `checks` share it.
pub fn share(limit: u64, checks: usize) -> usize {
    usize::try_from(limit / checks.max(1) as u64).unwrap_or(usize::MAX)
}

/// Drop `c`'s oldest rows until it holds at most `share` bytes (or one row per table).
pub fn fit(c: &mut Check, share: usize) -> Trimmed {
    let mut out = Trimmed::default();
    let over = |c: &Check| c.bytes().saturating_sub(share);
    if over(c) == 0 {
        return out;
    }
    // What no window reads: raw results beyond the newest few, minute buckets beyond 2 h.
    out.rows += c.raw.drop_oldest_bytes(over(c), RAW_FLOOR) as u64;
    let excess = over(c);
    let minutes = &mut c.buckets[Resolution::Minute as usize];
    out.rows += minutes.drop_oldest_bytes(excess, MINUTE_FLOOR) as u64;
    // Then the oldest rows of the largest table, down to one row in each.
    loop {
        let excess = over(c);
        if excess == 0 {
            break;
        }
        let sizes = c
            .tables()
            .map(|(len, (_, held))| if len > 1 { held } else { 0 });
        let Some((largest, _)) = sizes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b > 0)
            .max_by_key(|(_, b)| **b)
        else {
            break;
        };
        let n = match largest {
            0 => c.raw.drop_oldest_bytes(excess, 1),
            4 => c.events.drop_oldest_bytes(excess, 1),
            b => c.buckets[b - 1].drop_oldest_bytes(excess, 1),
        };
        out.rows += n as u64;
        out.deep = true;
    }
    out
}
