//! Loading: read the main file and the drop-ins, overlay the environment, deserialize each
//! section and check, and validate the whole; every problem at once.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::check::{collect_checks, parse_check};
use super::problems::Problems;
use super::recover::section;
use super::sources::{apply_env, read_drop_ins, read_main, toml_reason};
use super::{Config, ConfigError, DefaultsConfig, GroupOptions, Sources};
use crate::model::Group;

const TOP_LEVEL_KEYS: &[&str] = &[
    "server",
    "defaults",
    "groups",
    "checks",
    "telemetry",
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

    let mut root = match toml::from_str::<toml::Table>(&main_text) {
        Ok(t) => t,
        Err(e) => {
            problems.push(&main_name, "", toml_reason(&e));
            return Err(problems.errors);
        }
    };

    let env = match &sources.env {
        Some(map) => map.clone(),
        None => std::env::vars().collect(),
    };
    let check_overrides = apply_env(&mut root, &env, &mut problems, &main_name);

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
        history: section(&root, "history", &main_name, &mut problems),
        ..Config::default()
    };
    for (key, reason) in config.history.validate() {
        problems.push(&main_name, key, reason);
    }
    if let Err(errs) = super::telemetry::resolve(&config.telemetry, &env) {
        for p in errs {
            match p.var {
                Some(var) => problems.errors.push(ConfigError {
                    file: format!("environment ({var})"),
                    key: p.key,
                    reason: p.reason,
                }),
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
        for (file, text) in read_drop_ins(&dir, &mut problems) {
            if crate::redact::has_inline_secret(&text) {
                crate::redact::warn_if_world_readable(Path::new(&file), "inline password or token");
            }
            match toml::from_str::<toml::Table>(&text) {
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
            _ => problems.errors.push(ConfigError {
                file: format!("environment ({var})"),
                key: format!("checks.\"{check}\""),
                reason: "no check with this name to override".into(),
            }),
        }
    }

    let mut first_seen: HashMap<String, String> = HashMap::new();
    for (file, index, value) in entries {
        if let Some(check) = parse_check(&file, index, value, &config.defaults, &mut problems) {
            if let Some(prev) = first_seen.get(&check.name) {
                problems.push(
                    &file,
                    format!("checks.\"{}\".name", check.name),
                    format!(
                        "duplicate check name \"{}\" (first defined in {prev})",
                        check.name
                    ),
                );
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
            first_seen.insert(check.name.clone(), file.clone());
            config.origins.insert(check.name.clone(), file);
            config.checks.push(check);
        }
    }

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
