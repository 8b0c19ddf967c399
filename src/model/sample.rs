//! Percentages of resources, as the resource checks and the host metrics count them.

/// Percent used as `df` shows it: used / (used + available), so space reserved for root
/// does not count as used.
pub fn used_percent(used: u64, available: u64) -> f64 {
    let usable = used.saturating_add(available);
    if usable == 0 {
        0.0
    } else {
        used as f64 * 100.0 / usable as f64
    }
}

/// A percentage rounded to one decimal, for details fields.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
