//! One check's entry: the keys every check shares (listed once, here) and the kind's own
//! keys, deserialized with every problem reported, defaults applied and validated.

use std::time::Duration;

use serde::Deserialize;

use super::lengths::refuse_long_strings;
use super::problems::Problems;
use super::recover::{MISSING, deserialize_all, join_key};
use super::{CheckConfig, ConfigError, DefaultsConfig};
use crate::check::ProbeConfig;
use crate::model::{Group, de_opt_duration, printable};
use crate::resilience::Resilience;

/// A lenient view of the keys every check shares; unknown keys are left to the kind's struct.
#[derive(Deserialize, Default)]
struct CommonRaw {
    /// Read for its type check; the value is taken from the table directly.
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    timeout: Option<Duration>,
    critical: Option<bool>,
    groups: Option<Vec<Group>>,
    failure_threshold: Option<u32>,
    success_threshold: Option<u32>,
    backoff: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    max_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    confirm_after: Option<Duration>,
    flap_window: Option<u32>,
    flap_threshold: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    max_staleness: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    degraded_after: Option<Duration>,
    depends_on: Option<Vec<String>>,
    slo: Option<super::SloConfig>,
}

/// The keys every check shares, whatever its kind.
pub const COMMON_KEYS: &[&str] = &[
    "degraded_after",
    "backoff",
    "max_backoff",
    "confirm_after",
    "flap_window",
    "flap_threshold",
    "max_staleness",
    "name",
    "interval",
    "timeout",
    "critical",
    "groups",
    "failure_threshold",
    "success_threshold",
    "depends_on",
    "slo",
];

pub(crate) fn collect_checks(
    table: &mut toml::Table,
    file: &str,
    out: &mut Vec<(String, usize, toml::Value)>,
    problems: &mut Problems,
) {
    match table.remove("checks") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                out.push((file.to_string(), i, item));
            }
        }
        Some(_) => problems.push(file, "checks", "must be an array of tables ([[checks]])"),
    }
}

pub(crate) fn parse_check(
    file: &str,
    index: usize,
    mut value: toml::Value,
    defaults: &DefaultsConfig,
    problems: &mut Problems,
) -> Option<CheckConfig> {
    let name = value
        .get("name")
        .and_then(|n| n.as_str())
        .map(str::to_string);
    // Only a valid name goes into key paths: an invalid one may hold anything.
    let at = match &name {
        Some(n) if valid_name(n) => format!("checks.\"{n}\""),
        _ => format!("checks[{index}]"),
    };
    let before = problems.errors.len();
    refuse_long_strings(&mut value, &at, file, problems);
    let toml::Value::Table(mut table) = value else {
        problems.push(file, format!("checks[{index}]"), "must be a table");
        return None;
    };

    let mut common_table = toml::Table::new();
    for key in COMMON_KEYS {
        if let Some(v) = table.remove(*key) {
            common_table.insert(key.to_string(), v);
        }
    }
    let mut found = Vec::new();
    let common: CommonRaw =
        deserialize_all(toml::Value::Table(common_table), &[], &mut found).unwrap_or_default();
    for (path, reason) in found {
        problems.push(file, join_key(&at, &path), reason);
    }
    match &name {
        None if !common_has_name(problems, before, &at) => problems.push(
            file,
            join_key(&at, "name"),
            "missing (every check needs a name)",
        ),
        Some(n) if !valid_name(n) => problems.push(
            file,
            join_key(&at, "name"),
            format!("invalid name \"{}\" ({NAME_RULE})", printable(n, 80)),
        ),
        _ => {}
    }

    let probe = match table
        .get("kind")
        .and_then(|k| k.as_str())
        .map(str::to_string)
    {
        None if !table.contains_key("kind") => {
            problems.push(file, join_key(&at, "kind"), "missing (e.g. kind = \"tcp\")");
            None
        }
        kind => {
            let kind_key = join_key(&at, "kind");
            let kind_var = problems.env_keys.get(&kind_key).cloned();
            let mut found = Vec::new();
            let probe =
                deserialize_all::<ProbeConfig>(toml::Value::Table(table), &["kind"], &mut found);
            for (path, mut reason) in found {
                let key = join_key(&at, &path);
                if reason == MISSING
                    && let Some(kind) = &kind
                {
                    reason = format!("missing (kind \"{kind}\" needs it)");
                }
                // Keys that do not fit a kind set by a variable: the variable is the cause.
                match (&kind_var, &kind) {
                    (Some(var), Some(kind))
                        if path != "kind"
                            && (reason.starts_with("unknown key") || reason.starts_with("missing")) =>
                    {
                        problems.errors.push(ConfigError::new(
                            format!("environment ({var})"),
                            &key,
                            format!(
                                "{reason}; {var} sets kind = \"{kind}\" for this check, defined in {file}"
                            ),
                        ))
                    }
                    _ => problems.push(file, key, reason),
                }
            }
            probe
        }
    };

    let interval = common.interval.unwrap_or(defaults.interval);
    let timeout = common.timeout.unwrap_or(defaults.timeout);
    if let Some(reason) = not_below(timeout, interval, "the interval") {
        problems.push(file, join_key(&at, "timeout"), reason);
    }
    // A push is the job's own verdict: it counts at once unless the check says otherwise.
    let is_push = matches!(probe, Some(ProbeConfig::Push(_)));
    let failure_threshold = common.failure_threshold.unwrap_or(if is_push {
        1
    } else {
        defaults.failure_threshold
    });
    let success_threshold = common
        .success_threshold
        .unwrap_or(defaults.success_threshold);
    if common.failure_threshold == Some(0) {
        problems.push(
            file,
            join_key(&at, "failure_threshold"),
            "must be at least 1",
        );
    }
    if common.success_threshold == Some(0) {
        problems.push(
            file,
            join_key(&at, "success_threshold"),
            "must be at least 1",
        );
    }
    let resilience = Resilience {
        backoff: common.backoff.unwrap_or(defaults.backoff),
        // An inherited default never undercuts a longer interval; a per-check value must
        // be at least the interval (validated below).
        max_backoff: common
            .max_backoff
            .or(defaults.max_backoff.map(|d| d.max(interval)))
            .unwrap_or_else(|| crate::resilience::default_max_backoff(interval)),
        confirm_after: common
            .confirm_after
            .or(defaults.confirm_after.filter(|d| *d < interval)),
        flap_window: common.flap_window.unwrap_or(defaults.flap_window),
        flap_threshold: common.flap_threshold.unwrap_or(defaults.flap_threshold),
        max_staleness: common.max_staleness,
    };
    for (key, reason) in resilience.validate(interval, timeout) {
        problems.push(file, join_key(&at, key), reason);
    }
    // Room below the timeout, or the check could never be degraded.
    if let Some(reason) = common
        .degraded_after
        .and_then(|d| not_below(d, timeout, "the timeout"))
    {
        problems.push(file, join_key(&at, "degraded_after"), reason);
    }
    let probe = probe?;
    for (key, reason) in probe.validate(timeout) {
        problems.push(file, join_key(&at, &key), reason);
    }
    if problems.errors.len() > before {
        return None;
    }
    let mut groups = common.groups.unwrap_or_else(|| vec![Group::Readiness]);
    groups.sort();
    groups.dedup();
    Some(CheckConfig {
        name: name?,
        interval,
        timeout,
        critical: common.critical.unwrap_or(true),
        groups,
        failure_threshold,
        success_threshold,
        degraded_after: common.degraded_after,
        depends_on: common.depends_on.unwrap_or_default(),
        resilience,
        slo: common.slo,
        probe,
    })
}

/// The reason `value` is not below `limit` (named `what`), if it is not.
fn not_below(value: Duration, limit: Duration, what: &str) -> Option<String> {
    (value >= limit).then(|| {
        format!(
            "must be below {what} ({} is not below {})",
            humantime::format_duration(value),
            humantime::format_duration(limit)
        )
    })
}

/// What a check name may be, for messages.
const NAME_RULE: &str = "use 1 to 64 letters, digits, '-', '_' and '.', but not \".\" or \"..\"";

/// A check name appears in URLs (`/readyz/<name>`), logs, metrics labels and environment
/// variable names, so it is held to a small safe set.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether a problem with `name` was already reported (e.g. not a string).
fn common_has_name(problems: &Problems, before: usize, at: &str) -> bool {
    let key = join_key(at, "name");
    problems.errors[before..].iter().any(|e| e.key == key)
}
