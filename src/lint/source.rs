//! Which healthd configuration a lint judges: `--config` (and `--probes-dir`) as given, else
//! the ConfigMap key the healthd container mounts at its `--config` path, else what
//! `healthd run` would read. In a manifest, the container's literal `HEALTHD_*` env values
//! and its `--listen` argument apply on top, as they do when it runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use super::manifest::{Container, Manifest};
use super::{Finding, Names, Options, Severity};
use crate::config::{self, Config, ConfigError, DEFAULT_CONFIG_PATH, EMBEDDED_NAME, Sources};

/// A loaded (or failed) config and how to name its files.
pub struct View {
    pub config: Result<Config, Vec<Finding>>,
    pub names: Names,
}

impl View {
    /// `healthd.toml (3 check(s))` for the closing line.
    pub fn describe(&self) -> String {
        match &self.config {
            Ok(c) => format!("{} ({} check(s))", self.names.main, c.checks.len()),
            Err(_) => self.names.main.clone(),
        }
    }
}

/// The config without a manifest: as `healthd validate` reads it.
pub fn without_manifest(options: &Options) -> View {
    from_options(options, None)
}

/// `--config` and `--probes-dir` as given (or their defaults), with `env` if given.
fn from_options(options: &Options, env: Option<HashMap<String, String>>) -> View {
    let sources = Sources {
        config: options.config.clone(),
        probes_dir: options.probes_dir.clone(),
        env,
    };
    let main = default_name(&sources);
    load(
        &sources,
        Names {
            main,
            renamed: None,
        },
    )
}

/// The config the healthd container of a workload runs.
pub fn for_container(options: &Options, manifest: &Manifest, container: &Container) -> View {
    let env: HashMap<String, String> = container
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let path_inside = container
        .flag(&["--config", "-c"])
        .unwrap_or(DEFAULT_CONFIG_PATH);
    let mounted = match &options.config {
        Some(_) => None,
        None => manifest.mounted_config(container, path_inside),
    };
    let mut view = match mounted {
        Some(found) => from_config_map(options, &found.label, found.text, env),
        None => from_options(options, Some(env)),
    };
    if let (Ok(config), Some(listen)) = (&mut view.config, container.flag(&["--listen"])) {
        match listen.parse::<SocketAddr>() {
            Ok(addr) => config.server.listen = addr,
            Err(_) => {
                view.config = Err(vec![Finding::new(
                    Severity::Error,
                    "config",
                    manifest.place(container.args_line),
                    format!("{}: --listen", container.key),
                    format!("invalid address {listen:?}"),
                    "give IP:port, e.g. 0.0.0.0:9750",
                )])
            }
        }
    }
    view
}

/// Load a ConfigMap's text through a private temporary copy (the loader reads files), naming
/// it after the ConfigMap in every finding.
fn from_config_map(
    options: &Options,
    label: &str,
    text: &str,
    env: HashMap<String, String>,
) -> View {
    let dir = std::env::temp_dir().join(format!(
        "healthd-lint-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let file = dir.join("healthd.toml");
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, text));
    let names = Names {
        main: label.to_string(),
        renamed: Some((file.display().to_string(), label.to_string())),
    };
    let view = match written {
        Ok(()) => load(
            &Sources {
                config: Some(file),
                probes_dir: options.probes_dir.clone(),
                env: Some(env),
            },
            names,
        ),
        Err(e) => View {
            config: Err(vec![config_finding(
                &names,
                ConfigError {
                    file: label.to_string(),
                    key: String::new(),
                    reason: format!("cannot copy it to {} to read it: {e}", dir.display()),
                },
                false,
            )]),
            names,
        },
    };
    let _ = std::fs::remove_dir_all(&dir);
    view
}

fn load(sources: &Sources, names: Names) -> View {
    // In a manifest, the files a config names (ca_file, token_file, …) are read inside the
    // container; one missing on the machine that lints is no reason to stop.
    let in_pod = sources.env.is_some();
    let config = config::load(sources).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| config_finding(&names, e, in_pod))
            .collect()
    });
    View { config, names }
}

fn config_finding(names: &Names, e: ConfigError, in_pod: bool) -> Finding {
    let elsewhere = in_pod && !e.key.is_empty() && e.reason.starts_with("cannot read /");
    Finding::new(
        if elsewhere {
            Severity::Warning
        } else {
            Severity::Error
        },
        "config",
        names.rename(&e.file),
        e.key,
        e.reason,
        if elsewhere {
            "the container reads it, not this machine: make sure the pod mounts it there (lint cannot judge the rest of this config)"
        } else {
            "correct it (`healthd validate` lists every configuration problem)"
        },
    )
}

/// How the loader will name the main file of `sources`.
fn default_name(sources: &Sources) -> String {
    match &sources.config {
        Some(p) => p.display().to_string(),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => DEFAULT_CONFIG_PATH.to_string(),
        None => EMBEDDED_NAME.to_string(),
    }
}
