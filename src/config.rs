//! Configuration: the main file (or the embedded default), drop-in files in `probes.d/`, and
//! `HEALTHD_*` environment overrides, loaded into one typed [`Config`] and validated as a whole.
//!
//! Every problem is collected rather than stopping at the first one, and each names the file,
//! the key path and the reason, so `healthd validate` can show them all at once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::check::ProbeConfig;

/// Where the daemon looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/healthd/healthd.toml";
/// The config used when no file is given and [`DEFAULT_CONFIG_PATH`] does not exist.
pub const EMBEDDED_DEFAULT: &str = include_str!("../examples/healthd.toml");
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

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.reason)
        }
    }
}

/// The three probe groups Kubernetes asks about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Liveness,
    Readiness,
    Startup,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Liveness, Group::Readiness, Group::Startup];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Liveness => "liveness",
            Group::Readiness => "readiness",
            Group::Startup => "startup",
        }
    }

    /// The endpoint path that serves this group (`/livez`, …).
    pub fn path(self) -> &'static str {
        match self {
            Group::Liveness => "livez",
            Group::Readiness => "readyz",
            Group::Startup => "startupz",
        }
    }
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:9750`; `healthd run --listen` overrides it.
    #[serde(deserialize_with = "de_listen")]
    pub listen: SocketAddr,
    /// After SIGTERM, how long `/readyz` answers 503 while still serving, so load balancers
    /// and Kubernetes stop sending traffic before healthd stops. Default `5s`.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_delay: Duration,
    /// The snapshot loop is considered stalled (liveness fails, watchdog pings stop) when
    /// the snapshot is older than this. Default `10s`.
    #[serde(deserialize_with = "de_duration")]
    pub stall_after: Duration,
    /// Most probes running at once over all checks (the bulkhead); changing it needs a
    /// restart. Default 512.
    pub max_in_flight: usize,
    /// `[server.auth]`: who may see details. Absent: everything is public.
    pub auth: Option<crate::server::auth::AuthConfig>,
    /// `[server.tls]`: serve HTTPS with this certificate and key. Absent: plain HTTP.
    pub tls: Option<crate::server::tls::TlsConfig>,
    /// `[server.limits]`: request limits of the HTTP edge.
    pub limits: crate::server::limits::LimitsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9750)),
            shutdown_delay: Duration::from_secs(5),
            stall_after: Duration::from_secs(10),
            max_in_flight: crate::scheduler::DEFAULT_MAX_IN_FLIGHT,
            auth: None,
            tls: None,
            limits: Default::default(),
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
    /// Backoff, confirmation, flap detection and staleness (see `resilience`).
    pub resilience: crate::resilience::Resilience,
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
    pub checks: Vec<CheckConfig>,
    /// Which file each check came from, by name (for messages).
    pub origins: HashMap<String, String>,
    /// `[telemetry]`: OTLP export (resolved against `OTEL_*` variables at start).
    pub telemetry: crate::telemetry::config::TelemetryConfig,
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
}

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
}

const COMMON_KEYS: &[&str] = &[
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
];

const TOP_LEVEL_KEYS: &[&str] = &["server", "defaults", "groups", "checks", "telemetry"];

/// Collects problems while loading; each one is tagged with the file it belongs to.
struct Problems {
    errors: Vec<ConfigError>,
    /// Keys whose value came from the environment, mapped to the variable's name.
    env_keys: HashMap<String, String>,
}

impl Problems {
    fn push(&mut self, file: &str, key: impl Into<String>, reason: impl Into<String>) {
        let key = key.into();
        let file = match self.env_keys.get(&key) {
            Some(var) => format!("environment ({var})"),
            None => file.to_string(),
        };
        self.errors.push(ConfigError {
            file,
            key,
            reason: reason.into(),
        });
    }
}

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
        ..Config::default()
    };
    if let Err(errs) = crate::telemetry::config::resolve(&config.telemetry, &env) {
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
    for (key, reason) in crate::server::validate(&config.server) {
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

fn read_main(sources: &Sources) -> Result<(String, String, Option<PathBuf>), ConfigError> {
    let path = match &sources.config {
        Some(p) => Some(p.clone()),
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG_PATH);
            p.exists().then_some(p)
        }
    };
    match path {
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(&p).map_err(|e| ConfigError {
                file: name.clone(),
                key: String::new(),
                reason: format!("cannot read: {e}"),
            })?;
            let dir = p.parent().map(|d| d.join("probes.d"));
            Ok((name, text, dir))
        }
        None => Ok((
            EMBEDDED_NAME.to_string(),
            EMBEDDED_DEFAULT.to_string(),
            Some(Path::new(DEFAULT_CONFIG_PATH).with_file_name("probes.d")),
        )),
    }
}

fn read_drop_ins(dir: &Path, problems: &mut Problems) -> Vec<(String, String)> {
    let shown = dir.display().to_string();
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            problems.push(&shown, "", format!("cannot read drop-in directory: {e}"));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let name = p.display().to_string();
            match std::fs::read_to_string(&p) {
                Ok(text) => Some((name, text)),
                Err(e) => {
                    problems.push(&name, "", format!("cannot read: {e}"));
                    None
                }
            }
        })
        .collect()
}

/// The first line of a TOML parse error, which carries the line and column.
fn toml_reason(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(_) => {
            // The full Display has "TOML parse error at line L, column C" first.
            let full = e.to_string();
            let head = full.lines().next().unwrap_or_default().to_string();
            format!("{}: {msg}", head.trim_start_matches("TOML parse error at "))
        }
        None => msg,
    }
}

/// Apply `HEALTHD_A__B=value` overrides to the root table. Overrides of single checks
/// (`HEALTHD_CHECKS__<NAME>__<KEY>`) are returned to be applied once all files are read.
type CheckOverrides = BTreeMap<(String, String), (String, toml::Value)>;

fn apply_env(
    root: &mut toml::Table,
    env: &HashMap<String, String>,
    problems: &mut Problems,
    main_name: &str,
) -> CheckOverrides {
    use config::Source;
    // Every config key is at least two levels deep (`server.listen`), so only
    // `HEALTHD_<SECTION>__<KEY>` variables are overrides; single-level ones such as
    // HEALTHD_LOG_LEVEL and HEALTHD_LOG_FORMAT belong to the command line.
    let prefix = format!("{ENV_PREFIX}_");
    let env: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| {
            k.len() > prefix.len()
                && k[..prefix.len()].eq_ignore_ascii_case(&prefix)
                && k[prefix.len()..].contains("__")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let source = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(Some(env));
    let mut overrides = CheckOverrides::new();
    let collected = match source.collect() {
        Ok(c) => c,
        Err(e) => {
            problems.push(main_name, "", format!("environment overrides: {e}"));
            return overrides;
        }
    };
    for (key, value) in collected {
        let var = format!("{ENV_PREFIX}_{}", key.to_uppercase().replace('.', "__"));
        let value = to_toml(value);
        let parts: Vec<&str> = key.split('.').collect();
        if parts.first() == Some(&"checks") {
            if parts.len() == 3 {
                overrides.insert((parts[1].to_string(), parts[2].to_string()), (var, value));
            } else {
                problems.errors.push(ConfigError {
                    file: format!("environment ({var})"),
                    key,
                    reason: "check overrides take the form HEALTHD_CHECKS__<NAME>__<KEY>".into(),
                });
            }
            continue;
        }
        set_path(root, &parts, value);
        problems.env_keys.insert(key, var);
    }
    overrides
}

/// Set `a.b.c = value`, creating tables on the way (a non-table in the way is replaced).
fn set_path(table: &mut toml::Table, parts: &[&str], value: toml::Value) {
    match parts {
        [] => {}
        [last] => {
            table.insert(last.to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

fn to_toml(value: config::Value) -> toml::Value {
    use config::ValueKind;
    match value.kind {
        ValueKind::Boolean(b) => toml::Value::Boolean(b),
        ValueKind::I64(i) => toml::Value::Integer(i),
        ValueKind::I128(i) => toml::Value::Integer(i as i64),
        ValueKind::U64(u) => toml::Value::Integer(u as i64),
        ValueKind::U128(u) => toml::Value::Integer(u as i64),
        ValueKind::Float(f) => toml::Value::Float(f),
        ValueKind::String(s) => toml::Value::String(s),
        ValueKind::Array(a) => toml::Value::Array(a.into_iter().map(to_toml).collect()),
        ValueKind::Table(t) => {
            toml::Value::Table(t.into_iter().map(|(k, v)| (k, to_toml(v))).collect())
        }
        ValueKind::Nil => toml::Value::String(String::new()),
    }
}

/// Deserialize `[name]` from the root, reporting problems with their key path.
fn section<T>(root: &toml::Table, name: &str, file: &str, problems: &mut Problems) -> T
where
    T: for<'de> Deserialize<'de> + Default,
{
    let Some(value) = root.get(name) else {
        return T::default();
    };
    let mut found = Vec::new();
    let parsed = deserialize_all::<T>(value.clone(), &[], &mut found);
    for (path, reason) in found {
        problems.push(file, join_key(name, &path), reason);
    }
    parsed.unwrap_or_default()
}

/// Deserialize a table reporting every bad key, not only the first: after each error the
/// offending key is set aside and the rest deserialized again. Keys in `keep` are never set
/// aside (e.g. `kind`). Returns the value only when there was no problem.
fn deserialize_all<T>(
    value: toml::Value,
    keep: &[&str],
    found: &mut Vec<(String, String)>,
) -> Option<T>
where
    T: for<'de> Deserialize<'de>,
{
    let toml::Value::Table(mut table) = value else {
        return match deserialize_at::<T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                found.push(e);
                None
            }
        };
    };
    let mut removed: Vec<String> = Vec::new();
    let before = found.len();
    for _ in 0..=table.len() {
        let (path, reason) = match deserialize_at::<T>(toml::Value::Table(table.clone())) {
            Ok(v) => return (found.len() == before).then_some(v),
            Err(e) => e,
        };
        // Setting a key aside makes it "missing"; that is not a new problem.
        if let Some(field) = missing_field(&reason)
            && removed.iter().any(|r| r == field)
        {
            break;
        }
        let key = match first_segment(&path) {
            Some(k) => Some(k.to_string()),
            None => culprit::<T>(&table, keep, &path, &reason),
        };
        let path = match (&key, path.is_empty()) {
            (Some(k), true) => k.clone(),
            _ => path,
        };
        found.push((path, reason));
        match key {
            Some(k) if !keep.contains(&k.as_str()) && table.remove(&k).is_some() => removed.push(k),
            _ => break,
        }
    }
    None
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(reason: &str) -> Option<&str> {
    reason
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
        .map(|(f, _)| f)
}

/// The top-level key of a path such as `headers.x` or `groups[1]`.
fn first_segment(path: &str) -> Option<&str> {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    (end > 0).then(|| &path[..end])
}

/// Serde loses the key path inside internally tagged enums (the check kinds); find the key
/// whose removal changes the error.
fn culprit<T>(table: &toml::Table, keep: &[&str], path: &str, reason: &str) -> Option<String>
where
    T: for<'de> Deserialize<'de>,
{
    table
        .keys()
        .filter(|k| !keep.contains(&k.as_str()))
        .find(|k| {
            let mut without = table.clone();
            without.remove(k.as_str());
            match deserialize_at::<T>(toml::Value::Table(without)) {
                Ok(_) => true,
                Err((p, r)) => p != path || r != reason,
            }
        })
        .cloned()
}

/// Deserialize with the failing key path and a reason, serde's error split in two.
fn deserialize_at<T>(value: toml::Value) -> Result<T, (String, String)>
where
    T: for<'de> Deserialize<'de>,
{
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        // The bare message: the full Display adds an "in `key`" line we show as the path.
        let mut reason = e.inner().message().trim().to_string();
        // serde may report an unknown field at its parent; name the field itself, once.
        if let Some(rest) = reason.strip_prefix("unknown field `")
            && let Some((field, expected)) = rest.split_once('`')
        {
            if path != field && !path.ends_with(&format!(".{field}")) {
                path = join_key(&path, field);
            }
            reason = format!("unknown key{}", expected.replace('`', "\""));
        }
        // Rust type names mean nothing to an operator.
        for (rust, words) in [
            ("expected f64", "expected a number"),
            ("expected u64", "expected a whole number"),
            ("expected u32", "expected a whole number"),
            ("expected i64", "expected a whole number"),
            ("expected a sequence", "expected a list"),
        ] {
            if let Some(head) = reason.strip_suffix(rust) {
                reason = format!("{head}{words}");
            }
        }
        if let Some(rest) = reason.strip_prefix("unknown variant `")
            && let Some((variant, expected)) = rest.split_once('`')
        {
            reason = format!("unknown value \"{variant}\"{}", expected.replace('`', "\""));
        }
        (path, reason)
    })
}

fn join_key(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => parent.to_string(),
        _ => format!("{parent}.{child}"),
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

fn collect_checks(
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

fn parse_check(
    file: &str,
    index: usize,
    value: toml::Value,
    defaults: &DefaultsConfig,
    problems: &mut Problems,
) -> Option<CheckConfig> {
    let toml::Value::Table(mut table) = value else {
        problems.push(file, format!("checks[{index}]"), "must be a table");
        return None;
    };
    let name = table
        .get("name")
        .and_then(|n| n.as_str())
        .map(str::to_string);
    let at = match &name {
        Some(n) => format!("checks.\"{n}\""),
        None => format!("checks[{index}]"),
    };
    let before = problems.errors.len();

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
        None => problems.push(
            file,
            join_key(&at, "name"),
            "missing (every check needs a name)",
        ),
        Some(n) if !valid_name(n) => problems.push(
            file,
            join_key(&at, "name"),
            "use letters, digits, '-', '_' and '.' only (1 to 64 characters)",
        ),
        Some(_) => {}
    }

    let probe = if !table.contains_key("kind") {
        problems.push(file, join_key(&at, "kind"), "missing (e.g. kind = \"tcp\")");
        None
    } else {
        let mut found = Vec::new();
        let probe =
            deserialize_all::<ProbeConfig>(toml::Value::Table(table), &["kind"], &mut found);
        for (path, reason) in found {
            problems.push(file, join_key(&at, &path), reason);
        }
        probe
    };

    let interval = common.interval.unwrap_or(defaults.interval);
    let timeout = common.timeout.unwrap_or(defaults.timeout);
    if timeout >= interval {
        problems.push(
            file,
            join_key(&at, "timeout"),
            format!(
                "must be below the interval ({} is not below {})",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        );
    }
    let failure_threshold = common
        .failure_threshold
        .unwrap_or(defaults.failure_threshold);
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
    let resilience = crate::resilience::Resilience {
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
        resilience,
        probe,
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parse a duration such as `500ms`, `5s`, `2m`, `1h 30m`; a bare integer means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        format!("invalid duration \"{text}\" (use e.g. \"500ms\", \"5s\", \"2m\", \"1h\")")
    })?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Serde helper for `server.listen`: an IP address and port, with a message that says so.
fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid address \"{text}\" (use IP:port, e.g. \"127.0.0.1:9750\" or \"[::1]:9750\")"
        ))
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Text(String),
    Seconds(u64),
}

/// Serde helper for duration fields.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match DurationRepr::deserialize(d)? {
        DurationRepr::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        DurationRepr::Seconds(0) => Err(serde::de::Error::custom("must be greater than zero")),
        DurationRepr::Seconds(s) => Ok(Duration::from_secs(s)),
    }
}

/// Serde helper for optional duration fields.
pub fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
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
    fn durations_parse_and_reject() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
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
    fn env_errors_name_the_variable() {
        let errs = load_str("", &[("HEALTHD_SERVER__LISTEN", "nowhere")]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].file, "environment (HEALTHD_SERVER__LISTEN)");
        assert_eq!(errs[0].key, "server.listen");
    }
}
