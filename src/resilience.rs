//! Per-check resilience settings and the two small state machines behind them: the
//! scheduler's circuit breaker (backoff while down, quick confirmation of a first failure)
//! and the health loop's flap detector. Staleness is applied where the snapshot is built.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::model::Level;
use crate::model::Status;

/// Results kept for flap detection by default.
pub const DEFAULT_FLAP_WINDOW: u32 = 20;
/// Share of changes above which a check is flapping, by default.
pub const DEFAULT_FLAP_THRESHOLD: f64 = 0.5;
/// Backoff never grows past this unless `max_backoff` says otherwise.
const BACKOFF_CEILING: Duration = Duration::from_secs(300);
/// Default `max_backoff` in intervals.
const BACKOFF_INTERVALS: u32 = 8;

/// The resilience keys of one check, after defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Resilience {
    /// Probe less often while the check is unhealthy.
    pub backoff: bool,
    /// Longest delay between two probes while backing off.
    pub max_backoff: Duration,
    /// After a failure below `failure_threshold`, probe again after this instead of a whole
    /// interval.
    pub confirm_after: Option<Duration>,
    /// Results kept for flap detection; 0 turns it off.
    pub flap_window: u32,
    /// Share of changes within the window above which the check is flapping.
    pub flap_threshold: f64,
    /// A result older than this turns the check `unknown`. Default: 2 × the current delay
    /// between probes (the interval, or the backoff delay) + the timeout.
    pub max_staleness: Option<Duration>,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            backoff: true,
            max_backoff: BACKOFF_CEILING,
            confirm_after: None,
            flap_window: DEFAULT_FLAP_WINDOW,
            flap_threshold: DEFAULT_FLAP_THRESHOLD,
            max_staleness: None,
        }
    }
}

/// `max_backoff` when not configured: 8 intervals, at most 5 minutes, at least one interval.
pub fn default_max_backoff(interval: Duration) -> Duration {
    interval
        .saturating_mul(BACKOFF_INTERVALS)
        .min(BACKOFF_CEILING)
        .max(interval)
}

impl Resilience {
    /// Problems as (key, reason).
    pub fn validate(&self, interval: Duration, timeout: Duration) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.max_backoff < interval {
            problems.push((
                "max_backoff",
                format!(
                    "must be at least the interval ({} is below {})",
                    humantime::format_duration(self.max_backoff),
                    humantime::format_duration(interval)
                ),
            ));
        }
        if let Some(c) = self.confirm_after
            && c >= interval
        {
            problems.push((
                "confirm_after",
                format!(
                    "must be below the interval ({} is not below {})",
                    humantime::format_duration(c),
                    humantime::format_duration(interval)
                ),
            ));
        }
        if !(self.flap_threshold > 0.0 && self.flap_threshold <= 1.0) {
            problems.push(("flap_threshold", "must be above 0 and at most 1".into()));
        }
        if self.flap_window == 1 || self.flap_window > 1000 {
            problems.push(("flap_window", "must be 0 (off) or 2 to 1000 results".into()));
        }
        if let Some(s) = self.max_staleness
            && s <= timeout
        {
            problems.push((
                "max_staleness",
                format!(
                    "must be above the timeout ({} is not above {})",
                    humantime::format_duration(s),
                    humantime::format_duration(timeout)
                ),
            ));
        }
        problems
    }

    /// How old a result may get before it is not trusted, given the current delay between
    /// probes. Backing off never makes a check stale: the bound grows with the delay.
    pub fn stale_after(&self, delay: Duration, interval: Duration, timeout: Duration) -> Duration {
        let default = interval.saturating_mul(2).saturating_add(timeout);
        let base = self.max_staleness.unwrap_or(default);
        base.max(delay.saturating_mul(2).saturating_add(timeout))
    }
}

/// The circuit breaker's state, as the snapshot shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BreakerState {
    /// Probed on its normal interval.
    #[default]
    Closed,
    /// Unhealthy and probed with backoff.
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
        }
    }
}

/// What the scheduler should do after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextRun {
    /// Back on the normal schedule.
    Interval,
    /// Probe again after this delay (confirmation or backoff).
    After(Duration),
}

/// The scheduler's view of one check: it sees every outcome, so it counts consecutive
/// failures itself and needs no word back from the health loop.
#[derive(Debug, Clone)]
pub struct Breaker {
    interval: Duration,
    failure_threshold: u32,
    settings: Resilience,
    failures: u32,
    state: BreakerState,
}

impl Breaker {
    pub fn new(interval: Duration, failure_threshold: u32, settings: Resilience) -> Breaker {
        Breaker {
            interval,
            failure_threshold: failure_threshold.max(1),
            settings,
            failures: 0,
            state: BreakerState::Closed,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Record a run; `jitter` is a random number in `[0, 1)` (a parameter so tests are exact).
    pub fn record(&mut self, level: Level, jitter: f64) -> NextRun {
        if level != Level::Failed {
            self.failures = 0;
            self.state = BreakerState::Closed;
            return NextRun::Interval;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures < self.failure_threshold {
            return match self.settings.confirm_after {
                Some(d) => NextRun::After(d),
                None => NextRun::Interval,
            };
        }
        if !self.settings.backoff {
            return NextRun::Interval;
        }
        self.state = BreakerState::Open;
        // The first failure at the threshold doubles the interval, the next quadruples it…
        let exponent = (self.failures - self.failure_threshold + 1).min(20);
        let full = self
            .interval
            .saturating_mul(1u32 << exponent)
            .min(self.settings.max_backoff);
        // Jitter takes up to a quarter off, so checks that failed together spread out; never
        // below the normal interval.
        let cut = full.mul_f64(0.25 * jitter.clamp(0.0, 1.0));
        NextRun::After((full - cut).max(self.interval))
    }
}

/// Nagios-style flap detection: the share of results that differ from the one before, over
/// the last `window` results. Above `threshold` the check is flapping; it settles when the
/// share falls below half the threshold (hysteresis). While flapping, the status shown is
/// held at the worst seen during the episode.
#[derive(Debug, Clone)]
pub struct FlapDetector {
    window: usize,
    high: f64,
    low: f64,
    results: VecDeque<(Level, Status)>,
    flapping: bool,
    hold: Status,
}

impl FlapDetector {
    pub fn new(window: u32, threshold: f64) -> FlapDetector {
        FlapDetector {
            window: window as usize,
            high: threshold,
            low: threshold / 2.0,
            results: VecDeque::with_capacity(window as usize),
            flapping: false,
            hold: Status::Healthy,
        }
    }

    /// Share of changes between consecutive results; the denominator is the full window,
    /// so a short history cannot look like flapping.
    pub fn ratio(&self) -> f64 {
        if self.window < 2 {
            return 0.0;
        }
        let changes = self
            .results
            .iter()
            .zip(self.results.iter().skip(1))
            .filter(|(a, b)| a.0 != b.0)
            .count();
        changes as f64 / (self.window - 1) as f64
    }

    pub fn flapping(&self) -> bool {
        self.flapping
    }

    /// Record one result and the status the state machine gave it; returns the status to
    /// show.
    pub fn record(&mut self, level: Level, status: Status) -> Status {
        if self.window < 2 {
            return status;
        }
        if self.results.len() == self.window {
            self.results.pop_front();
        }
        self.results.push_back((level, status));
        let ratio = self.ratio();
        if !self.flapping && ratio > self.high {
            self.flapping = true;
            self.hold = self
                .results
                .iter()
                .fold(Status::Healthy, |w, (_, s)| w.worst(*s));
        } else if self.flapping && ratio < self.low {
            self.flapping = false;
        }
        if self.flapping {
            self.hold = self.hold.worst(status);
            self.hold
        } else {
            status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn breaker(threshold: u32, settings: Resilience) -> Breaker {
        Breaker::new(S * 10, threshold, settings)
    }

    #[test]
    fn backoff_doubles_up_to_max_and_success_closes() {
        let mut b = breaker(
            2,
            Resilience {
                max_backoff: S * 60,
                ..Resilience::default()
            },
        );
        assert_eq!(b.record(Level::Failed, 0.0), NextRun::Interval);
        assert_eq!(b.state(), BreakerState::Closed);
        let delays: Vec<NextRun> = (0..4).map(|_| b.record(Level::Failed, 0.0)).collect();
        assert_eq!(
            delays,
            vec![
                NextRun::After(S * 20),
                NextRun::After(S * 40),
                NextRun::After(S * 60),
                NextRun::After(S * 60)
            ]
        );
        assert_eq!(b.state(), BreakerState::Open);
        // Jitter takes up to a quarter off, never below the interval.
        assert_eq!(b.record(Level::Failed, 0.999_999), {
            let d = (S * 60).mul_f64(1.0 - 0.25 * 0.999_999);
            NextRun::After(d)
        });
        assert_eq!(b.record(Level::Ok, 0.0), NextRun::Interval);
        assert_eq!(b.state(), BreakerState::Closed);
        // Degraded is not a failure.
        assert_eq!(b.record(Level::Degraded, 0.0), NextRun::Interval);
    }

    #[test]
    fn confirm_after_only_below_threshold_and_backoff_can_be_off() {
        let mut b = breaker(
            3,
            Resilience {
                backoff: false,
                confirm_after: Some(S),
                ..Resilience::default()
            },
        );
        assert_eq!(b.record(Level::Failed, 0.5), NextRun::After(S));
        assert_eq!(b.record(Level::Failed, 0.5), NextRun::After(S));
        assert_eq!(b.record(Level::Failed, 0.5), NextRun::Interval);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn default_max_backoff_is_bounded() {
        assert_eq!(default_max_backoff(S * 10), S * 80);
        assert_eq!(default_max_backoff(S * 60), S * 300);
        assert_eq!(default_max_backoff(S * 600), S * 600);
    }

    #[test]
    fn staleness_grows_with_backoff() {
        let r = Resilience::default();
        assert_eq!(r.stale_after(S * 10, S * 10, S * 2), S * 22);
        assert_eq!(r.stale_after(S * 40, S * 10, S * 2), S * 82);
        let r = Resilience {
            max_staleness: Some(S * 5),
            ..Resilience::default()
        };
        assert_eq!(r.stale_after(S, S, S), S * 5);
    }

    #[test]
    fn flapping_holds_the_worst_status_until_it_settles() {
        let mut f = FlapDetector::new(6, 0.5);
        let mut shown = Vec::new();
        let pattern = [
            (Level::Ok, Status::Healthy),
            (Level::Failed, Status::Unhealthy),
            (Level::Ok, Status::Healthy),
            (Level::Failed, Status::Unhealthy),
            (Level::Ok, Status::Healthy),
        ];
        for (l, s) in pattern {
            shown.push(f.record(l, s));
        }
        // 4 changes out of 5 possible: flapping, held at unhealthy though the last was ok.
        assert!(f.flapping());
        assert_eq!(shown.last(), Some(&Status::Unhealthy));
        // Steady ok results bring the ratio down; the hold lasts until it is below 0.25.
        let mut settled_after = None;
        for i in 0..10 {
            let s = f.record(Level::Ok, Status::Healthy);
            if !f.flapping() {
                settled_after = Some(i);
                assert_eq!(s, Status::Healthy);
                break;
            }
            assert_eq!(s, Status::Unhealthy);
        }
        // The window must hold at most one change: 4 results after the last change.
        assert_eq!(settled_after, Some(3));
    }

    #[test]
    fn short_history_is_not_flapping_and_window_zero_is_off() {
        let mut f = FlapDetector::new(20, 0.5);
        for l in [Level::Ok, Level::Failed, Level::Ok] {
            f.record(l, Status::Healthy);
        }
        assert!(!f.flapping());
        let mut f = FlapDetector::new(0, 0.5);
        for _ in 0..10 {
            assert_eq!(
                f.record(Level::Failed, Status::Unhealthy),
                Status::Unhealthy
            );
            f.record(Level::Ok, Status::Healthy);
        }
        assert!(!f.flapping());
    }
}
