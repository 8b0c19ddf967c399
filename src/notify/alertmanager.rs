//! `kind = "alertmanager"`: each notice becomes an alert posted to `/api/v2/alerts`, the
//! way Prometheus sends them. Firing alerts are re-sent every `resend_interval` with
//! `endsAt` four intervals ahead, so Alertmanager resolves them by itself if healthd goes
//! away; a recovery is sent with `endsAt` = now. Alertmanager deduplicates by labels, groups,
//! routes, silences and notifies.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::deliver::{Failure, post, rfc3339};
use super::notice::Notice;
use crate::config::notify::ReceiverConfig;

/// The `alertname` label of every alert healthd sends.
pub const ALERTNAME: &str = "HealthdCheckFailing";

pub struct Alertmanager {
    client: reqwest::Client,
    /// `…/api/v2/alerts` of one member of the cluster.
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    timeout: Duration,
    instance: String,
    labels: BTreeMap<String, String>,
    resend: Duration,
    generator: Option<String>,
}

impl Alertmanager {
    pub fn new(
        cfg: &ReceiverConfig,
        base: &str,
        http: (reqwest::Client, reqwest::header::HeaderMap),
        instance: String,
    ) -> Result<Alertmanager, String> {
        let url = alerts_url(base)?;
        Ok(Alertmanager {
            client: http.0,
            url,
            headers: http.1,
            timeout: cfg.timeout,
            instance,
            labels: cfg.labels.clone(),
            resend: cfg.resend(),
            generator: cfg
                .external_url
                .as_ref()
                .map(|u| format!("{}/health", u.trim_end_matches('/'))),
        })
    }

    /// The alert for a notice, as Alertmanager's `postableAlert`.
    pub fn alert(&self, n: &Notice, now: SystemTime) -> Value {
        let mut labels: BTreeMap<&str, String> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        labels.insert("alertname", ALERTNAME.into());
        labels.insert("check", n.check.clone());
        labels.insert("kind", n.kind.into());
        let groups: Vec<&str> = n.groups.iter().map(|g| g.as_str()).collect();
        labels.insert("group", groups.join(","));
        labels.insert("instance", self.instance.clone());
        labels.insert(
            "severity",
            if n.critical { "critical" } else { "warning" }.into(),
        );
        let reason = n.reason.map(|r| r.as_str()).unwrap_or("");
        let mut annotations = json!({
            "summary": format!("{} is {} on {}", n.check, n.to.as_str(), self.instance),
            "description": n.message,
            "reason": reason,
        });
        if n.flapping {
            annotations["flapping"] = "true".into();
        }
        let ends = if n.firing { now + self.resend * 4 } else { now };
        let mut alert = json!({
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(if n.firing { n.since } else { n.since.min(now) }),
            "endsAt": rfc3339(ends),
        });
        if let Some(g) = &self.generator {
            alert["generatorURL"] = g.clone().into();
        }
        alert
    }

    pub async fn send(&self, batch: &[Notice]) -> Result<(), Failure> {
        let now = SystemTime::now();
        let alerts: Vec<Value> = batch.iter().map(|n| self.alert(n, now)).collect();
        post(
            &self.client,
            &self.url,
            &self.headers,
            Value::Array(alerts).to_string(),
            self.timeout,
        )
        .await
    }
}

/// `…/api/v2/alerts` under a base URL (which may have a path prefix, or be the full URL).
fn alerts_url(base: &str) -> Result<reqwest::Url, String> {
    let trimmed = base.trim_end_matches('/');
    let full = if trimmed.ends_with("/api/v2/alerts") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/api/v2/alerts")
    };
    reqwest::Url::parse(&full).map_err(|e| format!("bad URL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::notice::Cause;
    use super::super::notice::tests::notice;
    use super::*;
    use crate::model::Status;

    #[test]
    fn alerts_carry_the_labels_and_end_ahead_while_firing() {
        let cfg: ReceiverConfig = toml::from_str(
            "name = \"am\"\nkind = \"alertmanager\"\nurls = [\"http://127.0.0.1:9093/\"]\n\
             labels = { team = \"db\" }\nresend_interval = \"30s\"",
        )
        .unwrap();
        let http = (
            crate::check::http::client(false, None, false).unwrap(),
            Default::default(),
        );
        let am = Alertmanager::new(&cfg, &cfg.urls[0], http, "host-1".into()).unwrap();
        assert_eq!(am.url.as_str(), "http://127.0.0.1:9093/api/v2/alerts");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let firing = notice(
            Status::Healthy,
            Status::Unhealthy,
            false,
            true,
            Cause::Change,
        );
        let a = am.alert(&firing, now);
        assert_eq!(a["labels"]["alertname"], ALERTNAME);
        assert_eq!(a["labels"]["severity"], "critical");
        assert_eq!(a["labels"]["group"], "readiness");
        assert_eq!(a["labels"]["instance"], "host-1");
        assert_eq!(a["labels"]["team"], "db");
        assert_eq!(a["endsAt"], "1970-01-01T00:18:40.000Z");
        let resolved = notice(
            Status::Unhealthy,
            Status::Healthy,
            true,
            false,
            Cause::Change,
        );
        assert_eq!(
            am.alert(&resolved, now)["endsAt"],
            "1970-01-01T00:16:40.000Z"
        );
    }
}
