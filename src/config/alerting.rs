//! Loading what decides who is told: `[[notify]]` receivers, `[[maintenance]]` windows and
//! the checks' `depends_on`, validated once every check is known.

use std::collections::HashMap;

use super::Config;
use super::maintenance::{self, MaintenanceEntry};
use super::notify::{self, MIN_REPEAT_INTERVAL, ReceiverConfig, TEST_MIN_REPEAT_VAR};
use super::problems::Problems;
use super::recover::{deserialize_all, join_key};

pub(crate) fn load(
    root: &toml::Table,
    file: &str,
    env: &HashMap<String, String>,
    config: &mut Config,
    problems: &mut Problems,
) {
    for (check, key, reason) in super::dependencies::validate(&config.checks) {
        let origin = config
            .origins
            .get(&check)
            .map(String::as_str)
            .unwrap_or(file);
        problems.push(origin, format!("checks.\"{check}\".{key}"), reason);
    }
    let names: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();

    let min_repeat = env
        .get(TEST_MIN_REPEAT_VAR)
        .and_then(|v| crate::model::parse_duration(v).ok())
        .unwrap_or(MIN_REPEAT_INTERVAL);
    let mut receivers = Vec::new();
    for (i, value) in entries(root, "notify", file, problems) {
        let at = match value.get("name").and_then(|n| n.as_str()) {
            Some(n) => format!("notify.\"{n}\""),
            None => format!("notify[{i}]"),
        };
        let mut found = Vec::new();
        let Some(r) = deserialize_all::<ReceiverConfig>(value, &["kind"], &mut found) else {
            for (path, reason) in found {
                problems.push(file, join_key(&at, &path), reason);
            }
            continue;
        };
        for (key, reason) in r.validate(&names, min_repeat, env) {
            problems.push(file, join_key(&at, &key), reason);
        }
        receivers.push(r);
    }
    for (i, reason) in notify::duplicate_names(&receivers) {
        problems.push(file, format!("notify[{i}].name"), reason);
    }
    config.notify = receivers;

    let mut windows = Vec::new();
    for (i, value) in entries(root, "maintenance", file, problems) {
        let mut found = Vec::new();
        match deserialize_all::<MaintenanceEntry>(value, &[], &mut found) {
            Some(e) => windows.push((i, e)),
            None => {
                for (path, reason) in found {
                    problems.push(file, join_key(&format!("maintenance[{i}]"), &path), reason);
                }
            }
        }
    }
    let (valid, found) = maintenance::validate(&windows, &names, jiff::Timestamp::now());
    for (key, reason) in found {
        problems.push(file, key, reason);
    }
    config.maintenance = valid;
}

/// The tables of an array of tables (`[[name]]`), with their index.
fn entries(
    root: &toml::Table,
    name: &str,
    file: &str,
    problems: &mut Problems,
) -> Vec<(usize, toml::Value)> {
    match root.get(name) {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items.iter().cloned().enumerate().collect(),
        Some(_) => {
            problems.push(
                file,
                name,
                format!("must be an array of tables ([[{name}]])"),
            );
            Vec::new()
        }
    }
}
