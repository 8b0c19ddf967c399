//! `healthd lint`: the probe mistakes no peer catches, in healthd's config and, optionally, in
//! the Kubernetes manifest that runs it (Pod, Deployment, StatefulSet, DaemonSet).
//!
//! - this file: options, findings, the report and its exit code;
//! - [`yaml`]: the manifest as a tree whose nodes know their line;
//! - [`manifest`]: workloads, containers and probes read from that tree;
//! - [`source`]: which healthd config a container runs (a ConfigMap of the same manifest or
//!   `--config`, its `HEALTHD_*` env and `--listen`);
//! - [`config_rules`]: rules on the config alone; [`probe_rules`]: rules on each probe that
//!   reaches healthd, against that config; [`endpoint`]: what a path or gRPC service asks.
//!
//! Each finding names the file (and line, in a manifest), the key and a fix; every rule is
//! listed in `docs/lint.md` with a fixture in `tests/fixtures/lint/`.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::Config;

mod config_rules;
pub use config_rules::HOST_KINDS;
mod endpoint;
mod manifest;
mod probe_rules;
mod source;
pub mod yaml;

/// What to lint.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// healthd's main config file (`None`: a ConfigMap of the manifest holding the file the
    /// healthd container reads, else what `healthd run` would read).
    pub config: Option<PathBuf>,
    /// The drop-in directory (`None`: `probes.d` beside the config).
    pub probes_dir: Option<PathBuf>,
    /// A manifest: Pod, Deployment, StatefulSet, DaemonSet (several documents allowed).
    pub pod: Option<PathBuf>,
    /// Warnings count as errors.
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem: where, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Finding {
    pub severity: Severity,
    /// The rule's name (`docs/lint.md`).
    pub rule: &'static str,
    /// `healthd.toml`, or `pod.yaml:57`.
    pub place: String,
    /// `checks."db".groups`, or `Pod/shop-api: spec.containers[1].livenessProbe.httpGet.path`;
    /// empty for the whole file.
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl Finding {
    fn new(
        severity: Severity,
        rule: &'static str,
        place: impl Into<String>,
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            severity,
            rule,
            place: place.into(),
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// The outcome of a lint run.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// What was read, for the closing line of a clean run.
    pub summary: String,
    strict: bool,
}

impl Report {
    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| self.effective(f) == severity)
            .count()
    }

    fn effective(&self, f: &Finding) -> Severity {
        if self.strict {
            Severity::Error
        } else {
            f.severity
        }
    }

    /// 1 when any finding is an error (every one with `--strict`), else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.count(Severity::Error) > 0)
    }

    /// The report as printed: each finding and its fix, then one closing line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let word = match self.effective(f) {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let key = if f.key.is_empty() {
                String::new()
            } else {
                format!("{}: ", f.key)
            };
            let _ = writeln!(
                out,
                "{word}[{}]: {}: {key}{}\n  fix: {}",
                f.rule, f.place, f.problem, f.fix
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(out, "ok: {}", self.summary);
        } else {
            let _ = writeln!(
                out,
                "{} error(s), {} warning(s) in {}",
                self.count(Severity::Error),
                self.count(Severity::Warning),
                self.summary
            );
        }
        out
    }
}

/// Lint the config and, if given, the manifest.
pub fn run(options: &Options) -> Report {
    let mut findings = Vec::new();
    let summary = match &options.pod {
        None => {
            let view = source::without_manifest(options);
            let summary = view.describe();
            match &view.config {
                Ok(config) => config_rules::check(config, &view.names, &mut findings),
                Err(errors) => findings.extend(errors.iter().cloned()),
            }
            summary
        }
        Some(pod) => probe_rules::check_manifest(options, pod, &mut findings),
    };
    // One config seen from several containers or workloads says the same thing once.
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert(f.clone()));
    Report {
        findings,
        summary,
        strict: options.strict,
    }
}

/// The file names a config's findings point at.
#[derive(Debug, Clone)]
pub struct Names {
    /// How the main file is named (its path, or `pod.yaml (ConfigMap/x healthd.toml)`).
    pub main: String,
    /// Replaces the name `config::load` gave a file (a temporary copy of a ConfigMap key).
    pub renamed: Option<(String, String)>,
}

impl Names {
    /// The file a check was defined in.
    fn of_check(&self, config: &Config, check: &str) -> String {
        config
            .origins
            .get(check)
            .map(|f| self.rename(f))
            .unwrap_or_else(|| self.main.clone())
    }

    fn rename(&self, file: &str) -> String {
        match &self.renamed {
            Some((from, to)) if file == from => to.clone(),
            _ => file.to_string(),
        }
    }
}
