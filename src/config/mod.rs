//! Configuration: the main file (or the embedded default), drop-in files in `probes.d/`, and
//! `HEALTHD_*` environment overrides, loaded into one typed [`Config`] and validated as a whole.
//!
//! Plain data: nothing here runs a check, serves a request or exports a metric. Every
//! problem is collected rather than stopping at the first one, and each names the file, the
//! key path and the reason, so `healthd validate` can show them all at once.
//!
//! - this file: the types;
//! - [`load`]: merging the sources and validating the whole;
//! - [`sources`]: reading files and drop-ins, and the `HEALTHD_*` environment overlay;
//! - [`files`]: reading a file without trusting it (size bound, regular drop-ins only);
//! - [`recover`]: turning serde's first error into every error, each with its key path;
//! - [`check`]: the keys every check shares (listed once, [`COMMON_KEYS`]) and one check's
//!   parsing;
//! - [`server`], [`telemetry`], [`metrics`], [`history`]: the `[server]`, `[telemetry]`,
//!   `[metrics]` and `[history]` sections (and a check's `slo`), each validating itself;
//! - [`notify`], [`maintenance`], [`dependencies`]: `[[notify]]` receivers,
//!   `[[maintenance]]` windows and the checks' `depends_on` graph.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::check::ProbeConfig;
use crate::model::{Group, MAX_MESSAGE, de_duration, de_opt_duration, printable};
use crate::resilience::Resilience;

mod alerting;
pub mod check;
pub mod dependencies;
mod files;
pub mod history;
mod lengths;
pub mod load;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod open_files;
mod problems;
pub mod recover;
pub mod server;
pub mod sources;
pub mod telemetry;

pub use check::COMMON_KEYS;
pub use files::MAX_FILE_BYTES;
pub use history::{DegradeOn, HistoryConfig, SloConfig};
pub use lengths::MAX_STRING_BYTES;
pub use load::load;
pub use server::{DEFAULT_MAX_IN_FLIGHT, ServerConfig};

/// Where the daemon looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/healthd/healthd.toml";
/// The config used when no file is given and [`DEFAULT_CONFIG_PATH`] does not exist.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../examples/healthd.toml");
/// How the embedded default is named in error messages.
pub const EMBEDDED_NAME: &str = "<embedded default>";
/// Prefix of environment overrides: `HEALTHD_SERVER__LISTEN` sets `server.listen`.
pub const ENV_PREFIX: &str = "HEALTHD";

/// One configuration problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `environment (HEALTHD_…)`, or the embedded default) holding the value.
    pub file: String,
    /// Dotted key path, e.g. `checks."api".timeout`; empty for whole-file problems.
    pub key: String,
    /// What is wrong, in words an operator can act on.
    pub reason: String,
}

/// Longest file name or key path a [`ConfigError`] shows.
pub(crate) const MAX_SHOWN: usize = 512;

impl ConfigError {
    /// A problem, with every part made safe to print ([`printable`]): a file name, a key
    /// path and a reason can all hold text from the config (a check's name, a value), and
    /// they end up on a terminal and in the journal.
    pub fn new(file: impl AsRef<str>, key: impl AsRef<str>, reason: impl AsRef<str>) -> Self {
        ConfigError {
            file: printable(file.as_ref(), MAX_SHOWN),
            key: printable(key.as_ref(), MAX_SHOWN),
            reason: printable(reason.as_ref(), MAX_MESSAGE),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.reason)
        }
    }
}

/// `[defaults]`: values every check inherits unless it sets its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultsConfig {
    /// Time between two runs of a check. Default `10s`.
    #[serde(deserialize_with = "de_duration")]
    pub interval: Duration,
    /// Bound on one run; must be below the interval. Default `2s`.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Consecutive failures before a check turns unhealthy (kubelet semantics). Default 3.
    pub failure_threshold: u32,
    /// Consecutive successes before a failed check turns healthy again. Default 1.
    pub success_threshold: u32,
    /// Probe an unhealthy check less often (exponential backoff with jitter, from the
    /// interval up to `max_backoff`). Default true.
    pub backoff: bool,
    /// Longest wait between two probes of an unhealthy check. Default 8 × the check's
    /// interval, at most 5 minutes (and never below the interval).
    #[serde(deserialize_with = "de_opt_duration")]
    pub max_backoff: Option<Duration>,
    /// After a failure below `failure_threshold`, probe again after this instead of a whole
    /// interval. Default off; a check whose interval is not longer ignores the default.
    #[serde(deserialize_with = "de_opt_duration")]
    pub confirm_after: Option<Duration>,
    /// Results kept for flap detection; 0 turns it off. Default 20.
    pub flap_window: u32,
    /// Share of state changes within the window above which a check is flapping; it stops
    /// flapping below half of this. Default 0.5.
    pub flap_threshold: f64,
}

impl Default for DefaultsConfig {
    fn default() -> Self {
        DefaultsConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            failure_threshold: 3,
            success_threshold: 1,
            backoff: true,
            max_backoff: None,
            confirm_after: None,
            flap_window: crate::resilience::DEFAULT_FLAP_WINDOW,
            flap_threshold: crate::resilience::DEFAULT_FLAP_THRESHOLD,
        }
    }
}

/// `[groups.<name>]`: per-group options.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupOptions {
    /// Answer `503` (not `200`) when the group is degraded. Default false.
    pub fail_on_degraded: bool,
}

/// One check, after defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// Unique name; appears in endpoints, logs and metrics.
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// A failing critical check makes its groups unhealthy; a non-critical one only degraded.
    pub critical: bool,
    pub groups: Vec<Group>,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// An answer slower than this makes the run degraded (reason `threshold`); judged by
    /// the scheduler for every kind.
    pub degraded_after: Option<Duration>,
    /// Checks this one depends on: while one of them fails, this check's failures are
    /// `blocked` (shown, not notified).
    pub depends_on: Vec<String>,
    /// Backoff, confirmation, flap detection and staleness (see `resilience`).
    pub resilience: Resilience,
    /// The check's service-level objective (`slo = { objective = 99.9 }`), if any.
    pub slo: Option<SloConfig>,
    /// The kind and its own settings.
    pub probe: ProbeConfig,
}

impl CheckConfig {
    pub fn kind(&self) -> &'static str {
        self.probe.kind()
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub defaults: DefaultsConfig,
    pub groups: BTreeMap<Group, GroupOptions>,
    /// Each check's settings, shared (not copied) with the scheduler and its task.
    pub checks: Vec<Arc<CheckConfig>>,
    /// Which file each check came from, by name (for messages).
    pub origins: HashMap<String, String>,
    /// `[telemetry]`: OTLP export (resolved against `OTEL_*` variables at start).
    pub telemetry: telemetry::TelemetryConfig,
    /// `[[notify]]`: notification receivers.
    pub notify: Vec<notify::ReceiverConfig>,
    /// `[[maintenance]]`: windows in which nothing notifies.
    pub maintenance: Vec<maintenance::MaintenanceWindow>,
    /// `[admin]`: the local control socket (`healthd maintenance`).
    pub admin: AdminConfig,
    /// `[metrics]`: host metrics.
    pub metrics: metrics::MetricsConfig,
    /// `[history]`: the store of past results.
    pub history: HistoryConfig,
}

/// `[admin]`: how `healthd maintenance` reaches the running daemon.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Path of the control socket (a Unix socket, mode 0600). Default:
    /// `$RUNTIME_DIRECTORY/admin.sock` when systemd sets `RUNTIME_DIRECTORY`, else none.
    pub socket: Option<PathBuf>,
}

impl Config {
    pub fn group_options(&self, group: Group) -> GroupOptions {
        self.groups.get(&group).cloned().unwrap_or_default()
    }
}

/// Where to load the configuration from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The main file; `None` means [`DEFAULT_CONFIG_PATH`] if it exists, else the embedded default.
    pub config: Option<PathBuf>,
    /// The drop-in directory; `None` means `probes.d` next to the main file
    /// (`/etc/healthd/probes.d` for the embedded default).
    pub probes_dir: Option<PathBuf>,
    /// Environment overrides; `None` reads the process environment.
    pub env: Option<HashMap<String, String>>,
}

impl Sources {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Sources {
            config: Some(path.into()),
            ..Sources::default()
        }
    }

    /// The environment the config is resolved against: `env`, or the process environment.
    /// A variable whose name or value is not UTF-8 can be neither an override nor a
    /// reference and is left out (`std::env::vars` would panic on it).
    pub fn environment(&self) -> HashMap<String, String> {
        match &self.env {
            Some(map) => map.clone(),
            None => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
        let dir = std::env::temp_dir().join(format!(
            "healthd-config-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("healthd.toml");
        std::fs::write(&path, text).unwrap();
        let result = load(&Sources {
            config: Some(path),
            probes_dir: None,
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        });
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn embedded_default_validates() {
        let cfg = load(&Sources {
            config: None,
            probes_dir: Some(std::env::temp_dir().join("healthd-no-such-dir-for-sure")),
            env: Some(HashMap::new()),
        });
        // The drop-in directory given explicitly but missing is an error; the default is not.
        assert!(cfg.is_err());
        let text = EMBEDDED_DEFAULT;
        let cfg = load_str(text, &[]).expect("embedded default is valid");
        let kinds: Vec<&str> = cfg.checks.iter().map(|c| c.kind()).collect();
        assert!(kinds.contains(&"cpu") && kinds.contains(&"memory") && kinds.contains(&"disk"));
    }

    #[test]
    fn env_overrides_server_and_checks() {
        let cfg = load_str(
            "[[checks]]\nname = \"db\"\nkind = \"tcp\"\nhost = \"127.0.0.1\"\nport = 5432\n",
            &[
                ("HEALTHD_SERVER__LISTEN", "127.0.0.1:9999"),
                ("HEALTHD_CHECKS__DB__PORT", "6543"),
                ("HEALTHD_DEFAULTS__INTERVAL", "30s"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.server.listen.port(), 9999);
        assert_eq!(cfg.checks[0].interval, Duration::from_secs(30));
        match &cfg.checks[0].probe {
            ProbeConfig::Tcp(t) => assert_eq!(t.port, 6543),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn single_level_variables_are_not_config_overrides() {
        let cfg = load_str(
            "",
            &[
                ("HEALTHD_LOG_LEVEL", "debug"),
                ("HEALTHD_LOG_FORMAT", "json"),
                ("HEALTHD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"),
                ("HEALTHD_TEST_STALL_ON_SIGUSR2", "1"),
            ],
        );
        assert!(cfg.is_ok(), "{cfg:?}");
    }

    #[test]
    fn host_metrics_section_and_its_environment_override() {
        let cfg = load_str("[metrics.host]\ninterval = \"30s\"\n", &[]).unwrap();
        assert_eq!(cfg.metrics.host.interval, Duration::from_secs(30));
        assert!(cfg.metrics.host.enabled);
        let cfg = load_str("", &[("HEALTHD_METRICS__HOST__ENABLED", "false")]).unwrap();
        assert!(cfg.metrics.host.settings().is_none());
        let errs =
            load_str("[metrics.host]\ndevices_exclude = \"(\"\nspeed = 1\n", &[]).unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"metrics.host.speed"), "{errs:?}");
    }

    #[test]
    fn env_errors_name_the_variable() {
        let errs = load_str("", &[("HEALTHD_SERVER__LISTEN", "nowhere")]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].file, "environment (HEALTHD_SERVER__LISTEN)");
        assert_eq!(errs[0].key, "server.listen");
    }
}
