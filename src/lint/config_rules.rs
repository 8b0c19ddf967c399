//! Rules on healthd's configuration alone.

use std::time::Duration;

use super::{Finding, Names, Severity};
use crate::config::{CheckConfig, Config};
use crate::model::Group;

/// Kinds that read the host healthd runs on (their files are under `src/check/system/`;
/// `tests/it/lint.rs` keeps the two lists equal). Every other kind depends on something else
/// (a server, a name server, a plugin's target, a job that pushes).
pub const HOST_KINDS: &[&str] = &["cpu", "memory", "disk", "inodes", "oom", "pressure"];

pub fn check(config: &Config, names: &Names, out: &mut Vec<Finding>) {
    for c in &config.checks {
        let file = names.of_check(config, &c.name);
        let at = format!("checks.\"{}\"", c.name);
        if c.groups.contains(&Group::Liveness) && !HOST_KINDS.contains(&c.kind()) {
            out.push(Finding::new(
                Severity::Error,
                "liveness-dependency",
                &file,
                format!("{at}.groups"),
                format!(
                    "a {} check in liveness: when its dependency fails, kubelet restarts every pod at once, which cannot fix the dependency and adds load to it",
                    c.kind()
                ),
                "remove \"liveness\" from groups; dependencies belong in readiness (the default)",
            ));
        }
        if c.interval < c.timeout * 2 {
            out.push(Finding::new(
                Severity::Warning,
                "interval-below-twice-timeout",
                &file,
                format!("{at}.interval"),
                format!(
                    "interval {} is less than twice the timeout {}: against a dependency that hangs, a run is in flight most of the time and the next one starts late",
                    fmt(c.interval),
                    fmt(c.timeout)
                ),
                format!(
                    "set interval to at least {} or lower the timeout",
                    fmt(c.timeout * 2)
                ),
            ));
        }
    }
    let readiness: Vec<&CheckConfig> = config
        .checks
        .iter()
        .filter(|c| c.groups.contains(&Group::Readiness))
        .map(|c| &**c)
        .collect();
    if !readiness.is_empty()
        && readiness.iter().all(|c| !c.critical)
        && !config.group_options(Group::Readiness).fail_on_degraded
    {
        let names_list: Vec<&str> = readiness.iter().map(|c| c.name.as_str()).collect();
        out.push(Finding::new(
            Severity::Warning,
            "non-critical-group",
            &names.main,
            "groups.readiness",
            format!(
                "every check in readiness is non-critical ({}): a failing one only degrades the group and /readyz answers 200 while degraded, so readiness never fails",
                names_list.join(", ")
            ),
            "make the checks that must take the pod out of rotation critical (critical = true, the default), or set [groups.readiness] fail_on_degraded = true",
        ));
    }
}

/// A duration as `2s`, `1m 30s`.
pub fn fmt(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
