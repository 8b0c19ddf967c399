//! A pair of percentage thresholds and how a measured percentage is judged against them.

use super::outcome::{Level, Outcome, Reason};

/// `degraded_above` / `unhealthy_above`, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub degraded_above: f64,
    pub unhealthy_above: f64,
}

impl Thresholds {
    pub fn validate(&self, problems: &mut Vec<(String, String)>) {
        for (key, v) in [
            ("degraded_above", self.degraded_above),
            ("unhealthy_above", self.unhealthy_above),
        ] {
            if !(0.0..=100.0).contains(&v) {
                problems.push((
                    key.into(),
                    format!("must be a percentage from 0 to 100, not {v}"),
                ));
            }
        }
        if self.degraded_above >= self.unhealthy_above {
            problems.push((
                "degraded_above".into(),
                format!(
                    "must be below unhealthy_above ({} is not below {})",
                    self.degraded_above, self.unhealthy_above
                ),
            ));
        }
    }

    /// The level a measured percentage falls in.
    pub fn level(&self, percent: f64) -> Level {
        if percent > self.unhealthy_above {
            Level::Failed
        } else if percent > self.degraded_above {
            Level::Degraded
        } else {
            Level::Ok
        }
    }

    /// An outcome for a measured percentage used, with a message naming what was measured.
    pub fn outcome(&self, what: &str, percent: f64) -> Outcome {
        self.outcome_as(what, percent, "used")
    }

    /// An outcome for a measured percentage, `state` saying of what (`used`, `stalled`).
    pub fn outcome_as(&self, what: &str, percent: f64, state: &str) -> Outcome {
        let level = self.level(percent);
        match level {
            Level::Degraded => Outcome::degraded(
                Reason::Threshold,
                format!(
                    "{what} {percent:.1}% {state}, above {}%",
                    self.degraded_above
                ),
            ),
            Level::Failed => Outcome::failed(
                Reason::Threshold,
                format!(
                    "{what} {percent:.1}% {state}, above {}%",
                    self.unhealthy_above
                ),
            ),
            // `level` gives only the three above; Unknown is not a measured percentage.
            Level::Ok | Level::Unknown => Outcome::ok(format!("{what} {percent:.1}% {state}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_map_values_to_levels() {
        let t = Thresholds {
            degraded_above: 80.0,
            unhealthy_above: 95.0,
        };
        assert_eq!(t.level(0.0), Level::Ok);
        assert_eq!(t.level(80.0), Level::Ok);
        assert_eq!(t.level(80.1), Level::Degraded);
        assert_eq!(t.level(95.0), Level::Degraded);
        assert_eq!(t.level(95.1), Level::Failed);
        assert_eq!(t.outcome("disk /", 96.0).reason, Some(Reason::Threshold));
        assert_eq!(t.outcome("disk /", 50.0).reason, None);
    }

    #[test]
    fn thresholds_validate() {
        let mut p = Vec::new();
        Thresholds {
            degraded_above: 95.0,
            unhealthy_above: 80.0,
        }
        .validate(&mut p);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "degraded_above");
        let mut p = Vec::new();
        Thresholds {
            degraded_above: 50.0,
            unhealthy_above: 150.0,
        }
        .validate(&mut p);
        assert_eq!(p[0].0, "unhealthy_above");
    }
}
