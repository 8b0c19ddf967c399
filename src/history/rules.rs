//! `healthd rules`: Prometheus recording and alerting rules for every check with an SLO,
//! the fleet-wide twin of what healthd computes locally (the same multiwindow,
//! multi-burn-rate policy, windows scaled to the SLO's), shaped as Sloth generates them:
//! an SLI error ratio recorded per window, the SLO's meta recordings, and one page and one
//! ticket alert per check. One group per check: rules of a group are evaluated in order,
//! so the alerts read the ratios recorded in the same evaluation (separate groups run
//! independently, and an alert could read the previous minute's ratio).
//!
//! The SLI is computed from what every healthd exports: failed runs
//! (`healthd_check_runs_total{healthd_check_result="failure"}`) over all runs (the count
//! of `healthd_check_duration_seconds`, present from a check's first run, so the ratio is
//! defined before the first failure), summed over instances by check name. Prometheus sees
//! degraded runs as successes: `degraded_is_bad` applies to healthd's own figures only.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

use super::slo::{POLICY_30D, Severity, policy};
use crate::config::{Config, SloConfig, Sources};

/// A duration as Prometheus writes it (`5m`, `6h`, `3d`, `14m`).
pub fn prom_duration(d: Duration) -> String {
    let m = (d.as_secs() / 60).max(1);
    if m.is_multiple_of(1440) {
        format!("{}d", m / 1440)
    } else if m.is_multiple_of(60) {
        format!("{}h", m / 60)
    } else {
        format!("{m}m")
    }
}

/// A YAML/PromQL double-quoted string.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The rule groups of one check.
fn check_rules(out: &mut String, name: &str, slo: &SloConfig) {
    let objective = slo.ratio();
    let budget = (1e9 - objective * 1e9).round() / 1e9;
    let rules = policy(slo.window);
    let windows: BTreeSet<Duration> = rules
        .iter()
        .flat_map(|r| [r.long, r.short])
        .chain([slo.window])
        .collect();
    let sel = format!("healthd_check_name={}", quoted(name));
    let labels = format!(
        "      labels:\n        healthd_check_name: {}\n",
        quoted(name)
    );
    let _ = write!(
        out,
        "  # {name}: {} % of runs good over {}.\n  - name: healthd-slo-{name}\n    rules:\n",
        slo.objective,
        prom_duration(slo.window),
    );
    for w in &windows {
        let w = prom_duration(*w);
        // At least min_runs runs in the window, or no ratio (one failed probe cannot page).
        let _ = write!(
            out,
            "    - record: healthd:slo_sli_error:ratio_rate{w}\n      expr: >-\n        \
             ((sum by (healthd_check_name) (rate(healthd_check_runs_total{{{sel},healthd_check_result=\"failure\"}}[{w}]))\n        \
             or 0 * sum by (healthd_check_name) (rate(healthd_check_duration_seconds_count{{{sel}}}[{w}])))\n        \
             / sum by (healthd_check_name) (rate(healthd_check_duration_seconds_count{{{sel}}}[{w}])))\n        \
             and on (healthd_check_name) sum by (healthd_check_name) (increase(healthd_check_duration_seconds_count{{{sel}}}[{w}])) >= {}\n{labels}",
            slo.min_runs
        );
    }
    let period = prom_duration(slo.window);
    let _ = write!(
        out,
        "    - record: healthd:slo_objective:ratio\n      expr: vector({objective})\n{labels}    \
         - record: healthd:slo_error_budget:ratio\n      expr: vector({budget})\n{labels}    \
         - record: healthd:slo_current_burn_rate:ratio\n      expr: healthd:slo_sli_error:ratio_rate{short}{{{sel}}} / {budget}\n{labels}    \
         - record: healthd:slo_period_error_budget_remaining:ratio\n      expr: 1 - healthd:slo_sli_error:ratio_rate{period}{{{sel}}} / {budget}\n{labels}",
        short = prom_duration(rules[0].short),
    );
    for severity in [Severity::Page, Severity::Ticket] {
        let pairs: Vec<String> = rules
            .iter()
            .filter(|r| r.severity == severity)
            .map(|r| {
                format!(
                    "(healthd:slo_sli_error:ratio_rate{}{{{sel}}} > {f} * {budget}\n         \
                     and healthd:slo_sli_error:ratio_rate{}{{{sel}}} > {f} * {budget})",
                    prom_duration(r.long),
                    prom_duration(r.short),
                    f = r.factor,
                )
            })
            .collect();
        let alert = match severity {
            Severity::Page => "HealthdSLOPage",
            Severity::Ticket => "HealthdSLOTicket",
        };
        let _ = write!(
            out,
            "    - alert: {alert}\n      expr: >-\n        {}\n      labels:\n        \
             severity: {}\n        healthd_check_name: {}\n      annotations:\n        \
             summary: {}\n        description: {}\n",
            pairs.join("\n        or\n        "),
            severity.as_str(),
            quoted(name),
            quoted(&format!(
                "{name} is burning its error budget ({} SLO)",
                severity.as_str()
            )),
            quoted(&format!(
                "{name} fails more often than its {} % objective over {} allows; \
                 healthd report shows its incidents.",
                slo.objective, period
            )),
        );
    }
}

/// The rules file for every check of `config` with an SLO (an empty `groups: []` without).
pub fn render(config: &Config) -> String {
    let lines: Vec<String> = POLICY_30D
        .iter()
        .map(|r| {
            format!(
                "#   {} when the burn rate is at least {} over {} and {}\n",
                r.severity.as_str(),
                r.factor,
                prom_duration(r.long),
                prom_duration(r.short)
            )
        })
        .collect();
    let mut out = format!(
        "# Generated by `healthd rules`: multiwindow, multi-burn-rate SLO alerts (SRE workbook).\n\
         # For a 30-day SLO (the windows scale with the SLO's window):\n{}",
        lines.concat()
    );
    let with_slo: Vec<_> = config
        .checks
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.slo.as_ref()?)))
        .collect();
    if with_slo.is_empty() {
        out.push_str("groups: []\n");
        return out;
    }
    out.push_str("groups:\n");
    for (name, slo) in with_slo {
        check_rules(&mut out, name, slo);
    }
    out
}

/// `healthd rules [--config FILE]`.
pub fn cli(sources: &Sources) -> Result<String, String> {
    super::cli::load(sources).map(|c| render(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_prometheus_writes_them() {
        assert_eq!(prom_duration(Duration::from_secs(300)), "5m");
        assert_eq!(prom_duration(Duration::from_secs(6 * 3600)), "6h");
        assert_eq!(prom_duration(Duration::from_secs(3 * 86_400)), "3d");
        assert_eq!(prom_duration(Duration::from_secs(14 * 60)), "14m");
        assert_eq!(prom_duration(Duration::from_secs(30)), "1m");
    }
}
