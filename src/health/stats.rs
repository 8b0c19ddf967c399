//! Run counters and latency histograms, cumulative since a check was defined.

use std::time::Duration;

use crate::model::Reason;

/// Latency buckets of the duration histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Run counters and the latency histogram of one check, cumulative since it was defined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// Runs by result: `None` for success, the failure reason otherwise; sorted by it,
    /// one entry per result seen (a map's node would cost 144 bytes per check for the one
    /// entry most checks have).
    pub runs: Vec<(Option<Reason>, u64)>,
    /// Cumulative count per bucket of [`LATENCY_BUCKETS`] (non-cumulative storage).
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub latency_sum: f64,
    pub latency_count: u64,
}

impl RunStats {
    pub(crate) fn record(&mut self, failed: Option<Reason>, latency: Duration) {
        match self.runs.binary_search_by_key(&failed, |(r, _)| *r) {
            Ok(i) => self.runs[i].1 += 1,
            Err(i) => {
                self.runs.reserve_exact(1);
                self.runs.insert(i, (failed, 1));
            }
        }
        let secs = latency.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.latency_sum += secs;
        self.latency_count += 1;
    }

    /// Runs that ended with `result` (`None`: success).
    pub fn count(&self, result: Option<Reason>) -> u64 {
        let found = self.runs.iter().find(|(r, _)| *r == result);
        found.map_or(0, |(_, n)| *n)
    }

    /// `(upper bound, cumulative count)` pairs, `+Inf` last.
    pub fn cumulative_buckets(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        let mut out: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, n)| {
                acc += n;
                (*b, acc)
            })
            .collect();
        out.push((f64::INFINITY, self.latency_count));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut s = RunStats::default();
        s.record(None, Duration::from_micros(500));
        s.record(None, Duration::from_millis(30));
        s.record(None, Duration::from_secs(30));
        let b = s.cumulative_buckets();
        assert_eq!(b[0], (0.001, 1));
        assert_eq!(b[5], (0.05, 2));
        assert_eq!(b.last(), Some(&(f64::INFINITY, 3)));
    }
}
