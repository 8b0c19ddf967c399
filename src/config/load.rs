//! Loading: read the main file and the drop-ins, overlay the environment, deserialize each
//! section and check, and validate the whole; every problem at once.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::check::{collect_checks, parse_check};
use super::lengths::refuse_long_strings;
use super::problems::Problems;
use super::recover::section;
use super::sources::{apply_env, parse_table, read_drop_ins, read_main, toml_reason};
use super::{Config, ConfigError, DefaultsConfig, GroupOptions, Sources};
use crate::model::Group;

const TOP_LEVEL_KEYS: &[&str] = &[
    "server",
    "defaults",
    "groups",
    "checks",
    "telemetry",
    "notify",
    "maintenance",
    "admin",
    "metrics",
    "history",
];

/// Load, merge and validate; all problems at once on failure.
pub fn load(sources: &Sources) -> Result<Config, Vec<ConfigError>> {
    let (main_name, main_text, default_probes_dir) = match read_main(sources) {
        Ok(v) => v,
        Err(e) => return Err(vec![e]),
    };
    let mut problems = Problems {
        errors: Vec::new(),
        env_keys: HashMap::new(),
    };

    let mut root = match parse_table(&main_text) {
        Ok(t) => t,
        Err(e) => {
            problems.push(&main_name, "", toml_reason(&e));
            return Err(problems.errors);
        }
    };

    let env = sources.environment();
    let check_overrides = apply_env(&mut root, &env, &mut problems, &main_name);
    for (key, value) in root.iter_mut().filter(|(k, _)| *k != "checks") {
        refuse_long_strings(value, key, &main_name, &mut problems);
    }

    for key in root.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            problems.push(
                &main_name,
                key.clone(),
                format!(
                    "unknown key (expected one of: {})",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            );
        }
    }

    let mut config = Config {
        server: section(&root, "server", &main_name, &mut problems),
        defaults: section(&root, "defaults", &main_name, &mut problems),
        telemetry: section(&root, "telemetry", &main_name, &mut problems),
        admin: section(&root, "admin", &main_name, &mut problems),
        metrics: section(&root, "metrics", &main_name, &mut problems),
        history: section(&root, "history", &main_name, &mut problems),
        ..Config::default()
    };
    for (key, reason) in config.history.validate() {
        problems.push(&main_name, key, reason);
    }
    for (key, reason) in config.metrics.host.validate() {
        problems.push(&main_name, format!("metrics.host.{key}"), reason);
    }
    if let Err(errs) = super::telemetry::resolve(&config.telemetry, &env) {
        for p in errs {
            match p.var {
                Some(var) => problems.errors.push(ConfigError::new(
                    format!("environment ({var})"),
                    p.key,
                    p.reason,
                )),
                None => problems.push(&main_name, p.key, p.reason),
            }
        }
    }
    let groups: BTreeMap<String, GroupOptions> =
        section(&root, "groups", &main_name, &mut problems);
    for (name, opts) in groups {
        match Group::deserialize(toml::Value::String(name.clone())) {
            Ok(g) => {
                config.groups.insert(g, opts);
            }
            Err(_) => problems.push(
                &main_name,
                format!("groups.{name}"),
                "unknown group (expected liveness, readiness or startup)",
            ),
        }
    }
    validate_defaults(&config.defaults, &main_name, &mut problems);
    for (key, reason) in config.server.validate() {
        problems.push(&main_name, key, reason);
    }
    if let Some(path) = &sources.config
        && crate::redact::has_inline_secret(&main_text)
    {
        crate::redact::warn_if_world_readable(path, "inline password or token");
    }

    // Check entries from the main file, then from each drop-in in name order.
    let mut entries: Vec<(String, usize, toml::Value)> = Vec::new();
    collect_checks(&mut root, &main_name, &mut entries, &mut problems);
    let probes_dir = sources
        .probes_dir
        .clone()
        .or(default_probes_dir)
        .filter(|d| sources.probes_dir.is_some() || d.is_dir());
    if let Some(dir) = probes_dir {
        for (path, file, text) in read_drop_ins(&dir, &mut problems) {
            if crate::redact::has_inline_secret(&text) {
                crate::redact::warn_if_world_readable(&path, "inline password or token");
            }
            match parse_table(&text) {
                Ok(mut table) => {
                    for key in table.keys() {
                        if key != "checks" {
                            problems.push(
                                &file,
                                key.clone(),
                                "unknown key (drop-in files hold only [[checks]] entries)",
                            );
                        }
                    }
                    collect_checks(&mut table, &file, &mut entries, &mut problems);
                }
                Err(e) => problems.push(&file, "", toml_reason(&e)),
            }
        }
    }

    // Environment overrides of single checks: HEALTHD_CHECKS__<NAME>__<KEY>.
    for ((check, key), (var, value)) in &check_overrides {
        let target = entries.iter_mut().find(|(_, _, v)| {
            v.get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.eq_ignore_ascii_case(check))
        });
        match target {
            Some((_, _, toml::Value::Table(t))) => {
                t.insert(key.clone(), value.clone());
                let name = t.get("name").and_then(|n| n.as_str()).unwrap_or(check);
                problems
                    .env_keys
                    .insert(format!("checks.\"{name}\".{key}"), var.clone());
            }
            _ => problems.errors.push(ConfigError::new(
                format!("environment ({var})"),
                format!("checks.\"{check}\""),
                "no check with this name to override",
            )),
        }
    }

    // Names are unique ignoring case: `HEALTHD_CHECKS__CACHE__PORT` must name one check,
    // and `cache` beside `Cache` in one status page reads as a mistake.
    let mut first_seen: HashMap<String, (String, String)> = HashMap::new();
    for (file, index, value) in entries {
        if let Some(check) = parse_check(&file, index, value, &config.defaults, &mut problems) {
            if let Some((prev_name, prev)) = first_seen.get(&check.name.to_ascii_lowercase()) {
                let reason = if *prev_name == check.name {
                    format!(
                        "duplicate check name \"{}\" (first defined in {prev})",
                        check.name
                    )
                } else {
                    format!(
                        "duplicate check name \"{}\": \"{prev_name}\" in {prev} differs only in case (names are unique ignoring case)",
                        check.name
                    )
                };
                problems.push(&file, format!("checks.\"{}\".name", check.name), reason);
                continue;
            }
            if let Some(slo) = &check.slo {
                for (key, reason) in slo.validate(config.history.days) {
                    problems.push(
                        &file,
                        format!("checks.\"{}\".slo.{key}", check.name),
                        reason,
                    );
                }
            }
            first_seen.insert(
                check.name.to_ascii_lowercase(),
                (check.name.clone(), file.clone()),
            );
            config.origins.insert(check.name.clone(), file);
            config.checks.push(std::sync::Arc::new(check));
        }
    }

    super::alerting::load(&root, &main_name, &env, &mut config, &mut problems);

    if problems.errors.is_empty() {
        Ok(config)
    } else {
        Err(problems.errors)
    }
}

fn validate_defaults(d: &DefaultsConfig, file: &str, problems: &mut Problems) {
    if d.failure_threshold == 0 {
        problems.push(file, "defaults.failure_threshold", "must be at least 1");
    }
    if d.success_threshold == 0 {
        problems.push(file, "defaults.success_threshold", "must be at least 1");
    }
    if !(d.flap_threshold > 0.0 && d.flap_threshold <= 1.0) {
        problems.push(
            file,
            "defaults.flap_threshold",
            "must be above 0 and at most 1",
        );
    }
}
