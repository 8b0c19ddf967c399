//! The timing rules: a `startupProbe` must leave healthd time for a first result from every
//! check, and `healthd check` as an exec probe must get the time its checks need.

use std::time::Duration;

use super::Pod;
use crate::config::CheckConfig;
use crate::lint::config_rules::fmt;
use crate::lint::manifest::Probe;
use crate::lint::{Finding, Severity};
use crate::scheduler::FIRST_RUN_SPREAD;

impl Pod<'_> {
    /// `healthd check` as an exec probe decides on one run of every check.
    pub(super) fn exec_rules(&self, p: &Probe, out: &mut Vec<Finding>) {
        let checks = &self.config.checks;
        if let Some(slowest) = checks.iter().max_by_key(|c| c.timeout)
            && Duration::from_secs(p.timeout.max(0) as u64) <= slowest.timeout
        {
            out.push(self.finding(
                Severity::Error,
                "exec-timeout",
                p,
                format!("{}.timeoutSeconds", p.at.path),
                format!(
                    "kubelet stops `healthd check` after {}s, but checks.\"{}\" alone may take {} (its timeout), and the command has to start and print as well",
                    p.timeout,
                    slowest.name,
                    fmt(slowest.timeout)
                ),
                format!("set timeoutSeconds to at least {}", slowest.timeout.as_secs() + 1),
            ));
        }
        let detection = |c: &CheckConfig| (c.interval + c.timeout) * c.failure_threshold;
        if let Some(slowest) = checks.iter().max_by_key(|c| detection(c)) {
            let bound = detection(slowest);
            let window = Duration::from_secs((p.period * p.failure_threshold).max(0) as u64);
            if window < bound {
                let needed = bound.as_secs().div_ceil(p.period.max(1) as u64);
                out.push(self.finding(
                    Severity::Warning,
                    "exec-window",
                    p,
                    format!("{}.failureThreshold", p.at.path),
                    format!(
                        "each `healthd check` decides on one run (healthd's thresholds do not apply), so kubelet acts after {}s of failures (periodSeconds × failureThreshold), sooner than healthd itself would decide about checks.\"{}\" ({}: (interval + timeout) × failure_threshold): a blip healthd rides out flips the pod",
                        p.period * p.failure_threshold,
                        slowest.name,
                        fmt(bound)
                    ),
                    format!("raise failureThreshold to {needed}, or run healthd as a sidecar and probe /readyz"),
                ));
            }
        }
    }

    /// A startupProbe must leave healthd time for a first result from every check.
    pub(super) fn startup_budget(&self, p: &Probe, out: &mut Vec<Finding>) {
        let first = |c: &CheckConfig| c.interval.min(FIRST_RUN_SPREAD) + c.timeout;
        let Some(slowest) = self.config.checks.iter().max_by_key(|c| first(c)) else {
            return;
        };
        let bound = first(slowest);
        if Duration::from_secs(p.budget_secs().max(0) as u64) >= bound {
            return;
        }
        let needed = bound
            .as_secs()
            .saturating_sub(p.initial_delay.max(0) as u64)
            .div_ceil(p.period.max(1) as u64)
            .max(1);
        out.push(self.finding(
            Severity::Error,
            "startup-probe-too-short",
            p,
            format!("{}.failureThreshold", p.at.path),
            format!(
                "kubelet gives up after {}s (initialDelaySeconds + periodSeconds × failureThreshold), before healthd can have a first result from checks.\"{}\" (first run within {}, then up to its timeout {}): /startupz cannot pass in time",
                p.budget_secs(),
                slowest.name,
                fmt(slowest.interval.min(FIRST_RUN_SPREAD)),
                fmt(slowest.timeout)
            ),
            format!("raise failureThreshold to at least {needed}"),
        ));
    }
}
