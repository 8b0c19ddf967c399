//! `[[notify]]`: the receivers notifications go to (Alertmanager, webhooks), which checks
//! each one covers, and how it is reached. Plain data; `notify` builds and runs it. The keys
//! and the webhook payload are documented in `docs/notify.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::telemetry::HeaderSource;
use super::telemetry::resolve::{check_header_name, header_value};

use crate::model::{Group, Status, de_duration, de_opt_duration};

/// Least `repeat_interval`: reminders more often than this are noise.
pub const MIN_REPEAT_INTERVAL: Duration = Duration::from_secs(300);
/// Test-only: a lower bound for `repeat_interval` (e.g. `1s`), read from the daemon's
/// environment, so a test can see reminders without waiting five minutes.
pub const TEST_MIN_REPEAT_VAR: &str = "HEALTHD_TEST_MIN_REPEAT_INTERVAL";
/// The version of the webhook payload (`"version"` in every body).
pub const PAYLOAD_VERSION: u32 = 1;
/// Label names an Alertmanager alert from healthd always carries.
pub const ALERT_LABELS: &[&str] = &[
    "alertname",
    "check",
    "kind",
    "group",
    "instance",
    "severity",
];

/// Where a receiver sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// `POST /api/v2/alerts` to every Alertmanager in `urls`.
    Alertmanager,
    /// `POST` a JSON body to `url`.
    Webhook,
}

/// The least status a receiver is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinStatus {
    /// Only unhealthy checks.
    Unhealthy,
    /// Degraded and unhealthy checks (the default).
    #[default]
    Degraded,
}

impl MinStatus {
    /// Whether a check with this status is failing for the receiver; `None` for `unknown`
    /// (no news: the receiver keeps what it was told).
    pub fn firing(self, status: Status) -> Option<bool> {
        match status {
            Status::Unknown => None,
            Status::Unhealthy => Some(true),
            Status::Degraded => Some(self == MinStatus::Degraded),
            Status::Healthy => Some(false),
        }
    }
}

/// One `[[notify]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name; the `receiver` label of `healthd_notifications_total` and of log lines.
    pub name: String,
    pub kind: ReceiverKind,
    /// Alertmanager: the base URL of every member of the cluster (healthd posts to each).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Webhook: where to `POST`. Never logged (it may carry a token in its path).
    pub url: Option<String>,
    /// Only these checks (with `groups`: checks in either). Default: every check.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Only checks in these groups (with `checks`: checks in either).
    #[serde(default)]
    pub groups: Vec<Group>,
    /// The least status that notifies. Default `degraded`.
    #[serde(default)]
    pub min_status: MinStatus,
    /// Tell the receiver when a check recovers. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Webhook: remind while a check stays failing, this often. Default off; at least 5m.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub repeat_interval: Option<Duration>,
    /// Alertmanager: how often firing alerts are sent again (their `endsAt` is 4 × this
    /// ahead). Default 1m.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub resend_interval: Option<Duration>,
    /// Bound on one request. Default 10s.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Notifications waiting for delivery, per URL; more are dropped and counted. Default 256.
    #[serde(default = "default_queue")]
    pub queue_size: usize,
    /// Extra request headers, as `[telemetry.headers]`: a string, or `{ file = "…" }` /
    /// `{ env = "…" }` with an optional `prefix`; never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderSource>,
    /// Webhook: a minijinja template of the JSON body; values are JSON-escaped.
    pub template: Option<String>,
    /// Alertmanager: extra labels on every alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The `instance` label and the webhook's `host`. Default: the host name.
    pub instance: Option<String>,
    /// Where people reach this healthd (`https://host:9750`), for links in notifications.
    pub external_url: Option<String>,
    /// PEM file with extra CA certificates to trust, on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For testing only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn yes() -> bool {
    true
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_queue() -> usize {
    256
}

/// Default `resend_interval`: what Prometheus does.
pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);

impl ReceiverConfig {
    /// `resend_interval` with its default.
    pub fn resend(&self) -> Duration {
        self.resend_interval.unwrap_or(DEFAULT_RESEND)
    }

    /// Whether this receiver covers a check.
    pub fn covers(&self, check: &str, groups: &[Group]) -> bool {
        (self.checks.is_empty() && self.groups.is_empty())
            || self.checks.iter().any(|c| c == check)
            || self.groups.iter().any(|g| groups.contains(g))
    }

    /// Problems as (key under this entry, reason). `checks` are the names of every check;
    /// `min_repeat` the least `repeat_interval`.
    pub fn validate(
        &self,
        checks: &[&str],
        min_repeat: Duration,
        env: &HashMap<String, String>,
    ) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut p = |k: &str, r: String| problems.push((k.to_string(), r));
        if !super::check::valid_name(&self.name) {
            p(
                "name",
                "use letters, digits, '-', '_' and '.' only (1 to 64 characters)".into(),
            );
        }
        let only = |key: &str, kind: &str| format!("{key} is only for kind = \"{kind}\"");
        match self.kind {
            ReceiverKind::Alertmanager => {
                if self.urls.is_empty() {
                    p("urls", "list at least one Alertmanager URL".into());
                }
                for (i, u) in self.urls.iter().enumerate() {
                    if let Err(e) = http_url(u) {
                        p(&format!("urls[{i}]"), e);
                    }
                }
                for (key, set) in [
                    ("url", self.url.is_some()),
                    ("template", self.template.is_some()),
                ] {
                    if set {
                        p(key, only(key, "webhook"));
                    }
                }
                if self.repeat_interval.is_some() {
                    p(
                        "repeat_interval",
                        "Alertmanager repeats notifications itself (its route's repeat_interval); \
                         use resend_interval for how often healthd re-sends firing alerts"
                            .into(),
                    );
                }
                for name in self.labels.keys() {
                    if ALERT_LABELS.contains(&name.as_str()) {
                        p(
                            &format!("labels.{name}"),
                            "healthd sets this label itself".into(),
                        );
                    } else if !label_name(name) {
                        p(
                            &format!("labels.{name}"),
                            "invalid label name (use [a-zA-Z_][a-zA-Z0-9_]*)".into(),
                        );
                    }
                }
            }
            ReceiverKind::Webhook => {
                match &self.url {
                    None => p("url", "missing (where to POST)".into()),
                    // The reason never repeats the URL: it may carry a token.
                    Some(u) => {
                        if let Err(e) = http_url(u) {
                            p("url", e);
                        }
                    }
                }
                for (key, set) in [
                    ("urls", !self.urls.is_empty()),
                    ("resend_interval", self.resend_interval.is_some()),
                    ("labels", !self.labels.is_empty()),
                ] {
                    if set {
                        p(key, only(key, "alertmanager"));
                    }
                }
                if let Some(t) = &self.template
                    && let Err(e) = render(t, &sample_payload())
                {
                    p("template", e);
                }
            }
        }
        for (i, c) in self.checks.iter().enumerate() {
            if !checks.contains(&c.as_str()) {
                p(&format!("checks[{i}]"), format!("unknown check \"{c}\""));
            }
        }
        if let Some(r) = self.repeat_interval
            && r < min_repeat
        {
            p(
                "repeat_interval",
                format!(
                    "must be at least {} ({} is shorter)",
                    humantime::format_duration(min_repeat),
                    humantime::format_duration(r)
                ),
            );
        }
        if self.queue_size == 0 || self.queue_size > 100_000 {
            p("queue_size", "must be 1 to 100000".into());
        }
        if let Some(u) = &self.external_url
            && let Err(e) = http_url(u)
        {
            p("external_url", e);
        }
        if self
            .instance
            .as_deref()
            .is_some_and(|i| i.trim().is_empty())
        {
            p("instance", "must not be empty".into());
        }
        for (name, source) in &self.headers {
            let key = format!("headers.{name}");
            if let Err(e) = check_header_name(name) {
                p(&key, e);
                continue;
            }
            // The reason never holds the value.
            match header_value(source, env) {
                Err(e) => p(&key, e),
                Ok(_) => {
                    if let HeaderSource::From(f) = source
                        && let Some(path) = &f.file
                    {
                        crate::redact::warn_if_world_readable(path, &format!("notify {key}"));
                    }
                }
            }
        }
        let mut tls = Vec::new();
        crate::check::http::validate_ca_file(&self.ca_file, &mut tls);
        problems.extend(tls);
        problems
    }
}

/// An `http://` or `https://` URL with a host; the reason never repeats the URL.
fn http_url(u: &str) -> Result<(), String> {
    match reqwest::Url::parse(u) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        Ok(u) if u.host_str().is_none() => Err("bad URL: no host".into()),
        Ok(u) => Err(format!(
            "bad URL: scheme \"{}\" (use http or https)",
            u.scheme()
        )),
        Err(e) => Err(format!("bad URL: {e}")),
    }
}

fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Render a webhook body template with the payload's fields as variables. The template is
/// treated as JSON: every value is written as a JSON value (`{{ message }}` becomes a quoted,
/// escaped string), and the result must parse as JSON.
pub fn render(template: &str, payload: &serde_json::Value) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Json);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let body = env
        .render_str(
            template,
            minijinja::Value::from(minijinja::value::Serde(payload)),
        )
        .map_err(|e| format!("template: {}", crate::model::one_line(&e.to_string())))?;
    serde_json::from_str::<serde_json::Value>(&body)
        .map_err(|e| format!("template: the body is not JSON ({e})"))?;
    Ok(body)
}

/// A payload with every field set, to try templates on at validation.
pub fn sample_payload() -> serde_json::Value {
    serde_json::json!({
        "version": PAYLOAD_VERSION,
        "event": "firing",
        "receiver": "sample",
        "check": "api",
        "kind": "http",
        "groups": ["readiness"],
        "critical": true,
        "from": "healthy",
        "to": "unhealthy",
        "reason": "connect",
        "message": "connect to 127.0.0.1:8080: Connection refused",
        "flapping": false,
        "since": "2026-01-01T00:00:00.000Z",
        "at": "2026-01-01T00:00:01.000Z",
        "host": "host",
        "healthd_version": env!("CARGO_PKG_VERSION"),
        "links": { "health": "https://host:9750/health" },
    })
}

/// Names used twice among the receivers, as (index, reason).
pub(crate) fn duplicate_names(receivers: &[ReceiverConfig]) -> Vec<(usize, String)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, r) in receivers.iter().enumerate() {
        if let Some(first) = seen.insert(r.name.as_str(), i) {
            seen.insert(r.name.as_str(), first);
            out.push((
                i,
                format!(
                    "duplicate receiver name \"{}\" (first is notify[{first}])",
                    r.name
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ReceiverConfig {
        toml::from_str(text).unwrap()
    }

    fn keys(r: &ReceiverConfig, checks: &[&str]) -> Vec<String> {
        r.validate(checks, MIN_REPEAT_INTERVAL, &HashMap::new())
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn kind_specific_keys_are_refused_on_the_other_kind() {
        let am = parse(
            "name = \"am\"\nkind = \"alertmanager\"\nurls = [\"http://127.0.0.1:9093\"]\n\
             url = \"http://x\"\nrepeat_interval = \"10m\"\nlabels = { check = \"x\", team = \"a\" }",
        );
        assert_eq!(keys(&am, &[]), ["url", "repeat_interval", "labels.check"]);
        let hook = parse(
            "name = \"h\"\nkind = \"webhook\"\nurls = [\"http://x\"]\nrepeat_interval = \"1m\"\n\
             checks = [\"api\", \"nope\"]",
        );
        assert_eq!(
            keys(&hook, &["api"]),
            ["url", "urls", "checks[1]", "repeat_interval"]
        );
    }

    #[test]
    fn templates_escape_json_and_must_give_json() {
        let mut p = sample_payload();
        p["message"] = "a \"quoted\"\nline".into();
        let body = render("{\"text\": {{ check ~ \": \" ~ message }}}", &p).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], "api: a \"quoted\"\nline");
        assert!(render("{\"text\": \"{{ message }}\"}", &p).is_err());
        assert!(render("{{ nosuchfield }}", &p).is_err());
        assert!(render("{% if %}", &p).is_err());
    }

    #[test]
    fn header_secrets_name_their_source_never_the_value() {
        let r = parse(
            "name = \"h\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n\
             headers = { X-Key = { env = \"NOPE\" }, \"Bad Name\" = \"v\" }",
        );
        let env: HashMap<String, String> = [("HOOK".to_string(), "s3cret".to_string())].into();
        let found = r.validate(&[], MIN_REPEAT_INTERVAL, &env);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "headers.Bad Name");
        assert_eq!(
            found[1],
            (
                "headers.X-Key".to_string(),
                "environment variable NOPE is not set".to_string()
            )
        );
    }

    #[test]
    fn min_status_decides_what_fires() {
        assert_eq!(MinStatus::Unhealthy.firing(Status::Degraded), Some(false));
        assert_eq!(MinStatus::Degraded.firing(Status::Degraded), Some(true));
        assert_eq!(MinStatus::Degraded.firing(Status::Unknown), None);
    }
}
