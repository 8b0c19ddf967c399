//! The SLO arithmetic, pure: availability, error budget, burn rates and the Google SRE
//! workbook's multiwindow, multi-burn-rate alert policy, over counts of good and valid runs.
//!
//! Windows are read from buckets aligned to UTC minutes, hours or days (see
//! [`Series::counts`]): a window is the current, partial bucket plus whole earlier ones.

use std::time::Duration;

use serde::Serialize;

use super::record::{Bucket, Resolution};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Good and valid runs over a window (unknown runs are not valid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub good: u64,
    pub valid: u64,
}

impl Counts {
    /// Good runs ÷ valid runs; `None` without any run (no data is never "up").
    pub fn availability(self) -> Option<f64> {
        (self.valid > 0).then(|| self.good as f64 / self.valid as f64)
    }

    pub fn error_rate(self) -> Option<f64> {
        self.availability().map(|a| 1.0 - a)
    }
}

/// How fast the error budget burns: the error rate ÷ the allowed error rate (1 − objective).
/// 1 spends the budget exactly over the SLO window. `None` below `min_runs` valid runs.
pub fn burn_rate(c: Counts, objective: f64, min_runs: u32) -> Option<f64> {
    if c.valid < min_runs as u64 {
        return None;
    }
    c.error_rate().map(|e| e / (1.0 - objective))
}

/// Share of the error budget left over the SLO window: 1 − error rate ÷ (1 − objective);
/// negative once overspent. `None` without data.
pub fn budget_remaining(c: Counts, objective: f64) -> Option<f64> {
    c.error_rate().map(|e| 1.0 - e / (1.0 - objective))
}

/// The whole error budget as time: (1 − objective) × window (43m12s for 99.9 % over 30d).
pub fn budget_time(objective: f64, window: Duration) -> Duration {
    window.mul_f64((1.0 - objective).max(0.0))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// One line of the policy: fire when the burn rate is at least `factor` over both the long
/// and the short window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRule {
    pub severity: Severity,
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
}

/// The SRE workbook's policy for a 30-day SLO (chapter 5, "Alerting on SLOs", table 5-8).
pub const POLICY_30D: [AlertRule; 4] = [
    AlertRule {
        severity: Severity::Page,
        long: HOUR,
        short: Duration::from_secs(300),
        factor: 14.4,
    },
    AlertRule {
        severity: Severity::Page,
        long: Duration::from_secs(6 * 3600),
        short: Duration::from_secs(1800),
        factor: 6.0,
    },
    AlertRule {
        severity: Severity::Ticket,
        long: DAY,
        short: Duration::from_secs(2 * 3600),
        factor: 3.0,
    },
    AlertRule {
        severity: Severity::Ticket,
        long: Duration::from_secs(3 * 86_400),
        short: Duration::from_secs(6 * 3600),
        factor: 1.0,
    },
];

/// The reference window of [`POLICY_30D`].
pub const POLICY_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// `d` scaled from a 30-day SLO window to `window` (as the workbook says: the windows, not
/// the factors, scale), rounded to whole minutes and at least one.
pub fn scaled(d: Duration, window: Duration) -> Duration {
    let secs = d.as_secs_f64() * window.as_secs_f64() / POLICY_WINDOW.as_secs_f64();
    MINUTE * ((secs / 60.0).round() as u32).max(1)
}

/// The policy's rules with windows scaled to an SLO window.
pub fn policy(window: Duration) -> Vec<AlertRule> {
    POLICY_30D
        .iter()
        .map(|r| AlertRule {
            long: scaled(r.long, window),
            short: scaled(r.short, window),
            ..*r
        })
        .collect()
}

/// Whether each severity fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertState {
    pub page: bool,
    pub ticket: bool,
}

/// The alert state: a rule fires when both its windows burn at least its factor (each with
/// at least `min_runs` valid runs).
pub fn alert_state(
    counts: impl Fn(Duration) -> Counts,
    objective: f64,
    window: Duration,
    min_runs: u32,
) -> AlertState {
    let mut state = AlertState::default();
    for rule in policy(window) {
        let burns = |d| burn_rate(counts(d), objective, min_runs).is_some_and(|b| b >= rule.factor);
        if burns(rule.long) && burns(rule.short) {
            match rule.severity {
                Severity::Page => state.page = true,
                Severity::Ticket => state.ticket = true,
            }
        }
    }
    state
}

/// Per-bucket tallies of one check at the three resolutions, ending at `now_ms`: what the
/// windows are summed from.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub now_ms: u64,
    /// `(bucket index, ok, degraded, failed)` per resolution, in index order.
    pub minutes: Vec<(u32, Tally)>,
    pub hours: Vec<(u32, Tally)>,
    pub days: Vec<(u32, Tally)>,
}

/// The counts of a bucket the SLO arithmetic needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub ok: u32,
    pub degraded: u32,
    pub failed: u32,
}

impl From<&Bucket> for Tally {
    fn from(b: &Bucket) -> Self {
        Tally {
            ok: b.ok,
            degraded: b.degraded,
            failed: b.failed_total(),
        }
    }
}

impl Series {
    /// The resolution a window is read at: minutes up to 2h, hours up to 3d, days beyond.
    pub fn resolution(window: Duration) -> Resolution {
        if window <= 2 * HOUR {
            Resolution::Minute
        } else if window <= 3 * DAY {
            Resolution::Hour
        } else {
            Resolution::Day
        }
    }

    /// Good and valid runs over the last `window`: the current bucket and the earlier
    /// ones, as many buckets as the window holds (rounded up).
    pub fn counts(&self, window: Duration, degraded_is_bad: bool) -> Counts {
        let res = Self::resolution(window);
        let n = window.as_secs().div_ceil(res.seconds()).max(1) as u32;
        let current = res.index(self.now_ms);
        let from = current.saturating_sub(n - 1);
        let rows = match res {
            Resolution::Minute => &self.minutes,
            Resolution::Hour => &self.hours,
            Resolution::Day => &self.days,
        };
        rows.iter()
            .filter(|(i, _)| (from..=current).contains(i))
            .fold(Counts::default(), |c, (_, t)| Counts {
                good: c.good
                    + t.ok as u64
                    + if degraded_is_bad {
                        0
                    } else {
                        t.degraded as u64
                    },
                valid: c.valid + (t.ok + t.degraded + t.failed) as u64,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJ: f64 = 0.999;

    #[test]
    fn one_failure_in_a_hundred_runs() {
        let c = Counts {
            good: 99,
            valid: 100,
        };
        assert_eq!(c.availability(), Some(0.99));
        // error rate 1 % against an allowed 0.1 %: ten times the sustainable rate.
        assert!((burn_rate(c, OBJ, 10).unwrap() - 10.0).abs() < 1e-9);
        // 1 − 0.01 / 0.001 = −9: the budget is overspent nine times over.
        assert!((budget_remaining(c, OBJ).unwrap() + 9.0).abs() < 1e-9);
        assert_eq!(burn_rate(c, OBJ, 101), None, "below min_runs");
        assert_eq!(Counts::default().availability(), None, "no data is not up");
    }

    #[test]
    fn budget_as_time() {
        let b = budget_time(OBJ, POLICY_WINDOW);
        assert_eq!(b.as_secs(), 2592); // 43m12s
        assert_eq!(
            budget_time(0.99, Duration::from_secs(7 * 86_400)).as_secs(),
            6048
        );
    }

    #[test]
    fn windows_scale_with_the_slo_window() {
        assert_eq!(policy(POLICY_WINDOW), POLICY_30D.to_vec());
        let week = policy(Duration::from_secs(7 * 86_400));
        // 1h × 7/30 = 14 min; 5m × 7/30 = 70 s → 1 min; 3d × 7/30 = 16.8h.
        assert_eq!(week[0].long, Duration::from_secs(14 * 60));
        assert_eq!(week[0].short, Duration::from_secs(60));
        assert_eq!(week[3].long, Duration::from_secs(1008 * 60));
        assert_eq!(week[0].factor, 14.4);
    }

    #[test]
    fn page_needs_both_windows_and_enough_runs() {
        let window = POLICY_WINDOW;
        // 2 % errors in the last hour and the last 5 minutes: burn 20 ≥ 14.4 on both.
        let burning = |_: Duration| Counts {
            good: 980,
            valid: 1000,
        };
        assert_eq!(
            alert_state(burning, OBJ, window, 10),
            AlertState {
                page: true,
                ticket: true
            }
        );
        // The short window recovered: no page from the 1h/5m pair; 6h/30m still burn ≥ 6.
        let recovered = |d: Duration| {
            if d <= Duration::from_secs(300) {
                Counts {
                    good: 30,
                    valid: 30,
                }
            } else {
                Counts {
                    good: 980,
                    valid: 1000,
                }
            }
        };
        assert!(alert_state(recovered, OBJ, window, 10).page);
        let quiet = |d: Duration| {
            if d <= Duration::from_secs(1800) {
                Counts {
                    good: 180,
                    valid: 180,
                }
            } else {
                Counts {
                    good: 980,
                    valid: 1000,
                }
            }
        };
        assert_eq!(
            alert_state(quiet, OBJ, window, 10),
            AlertState {
                page: false,
                ticket: true
            }
        );
        // One failed probe among 3 runs would burn 333, but 3 runs are below min_runs.
        let one = |_: Duration| Counts { good: 2, valid: 3 };
        assert_eq!(alert_state(one, OBJ, window, 10), AlertState::default());
    }

    #[test]
    fn series_reads_aligned_buckets() {
        let now_ms = 1_700_000_000_000 + 30_000;
        let cur = Resolution::Minute.index(now_ms);
        let t = |ok, failed| Tally {
            ok,
            degraded: 0,
            failed,
        };
        let s = Series {
            now_ms,
            // 61 minutes of 6 runs each; one failure in the current minute, one 59 minutes
            // ago (inside the 1h window) and one 60 minutes ago (outside).
            minutes: (0..=60)
                .rev()
                .map(|back| {
                    let failed = matches!(back, 0 | 59 | 60);
                    (cur - back, if failed { t(5, 1) } else { t(6, 0) })
                })
                .collect(),
            ..Series::default()
        };
        let hour = s.counts(HOUR, false);
        assert_eq!(
            hour,
            Counts {
                good: 358,
                valid: 360
            }
        );
        assert_eq!(
            s.counts(Duration::from_secs(300), false),
            Counts {
                good: 29,
                valid: 30
            }
        );
    }
}
