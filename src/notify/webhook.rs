//! `kind = "webhook"`: one `POST` per notice, with healthd's versioned JSON payload
//! (`docs/notify.md`) or the receiver's own `template` rendered from it.

use std::time::Duration;

use serde_json::{Value, json};

use super::deliver::{Failure, post, rfc3339};
use super::notice::Notice;
use crate::config::notify::{PAYLOAD_VERSION, ReceiverConfig, render};

pub struct Webhook {
    client: reqwest::Client,
    /// Never logged: it may carry a token.
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    timeout: Duration,
    receiver: String,
    host: String,
    template: Option<String>,
    health_link: Option<String>,
}

impl Webhook {
    pub fn new(
        cfg: &ReceiverConfig,
        http: (reqwest::Client, reqwest::header::HeaderMap),
        host: String,
    ) -> Result<Webhook, String> {
        let url = cfg.url.as_deref().unwrap_or_default();
        let url = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        Ok(Webhook {
            client: http.0,
            url,
            headers: http.1,
            timeout: cfg.timeout,
            receiver: cfg.name.clone(),
            host,
            template: cfg.template.clone(),
            health_link: cfg
                .external_url
                .as_ref()
                .map(|u| format!("{}/health", u.trim_end_matches('/'))),
        })
    }

    /// The payload, version [`PAYLOAD_VERSION`]; every field is present (`null` when
    /// unknown), so templates can use any of them.
    pub fn payload(&self, n: &Notice) -> Value {
        json!({
            "version": PAYLOAD_VERSION,
            "event": n.event(),
            "receiver": self.receiver,
            "check": n.check,
            "kind": n.kind,
            "groups": n.groups,
            "critical": n.critical,
            "from": n.from,
            "to": n.to,
            "reason": n.reason,
            "message": n.message,
            "flapping": n.flapping,
            "since": rfc3339(n.since),
            "at": rfc3339(n.at),
            "host": self.host,
            "healthd_version": env!("CARGO_PKG_VERSION"),
            "links": { "health": self.health_link },
        })
    }

    pub async fn send(&self, n: &Notice) -> Result<(), Failure> {
        let payload = self.payload(n);
        let body = match &self.template {
            None => payload.to_string(),
            // Validated at load on a sample; a failure now is healthd's, not the receiver's.
            Some(t) => render(t, &payload).map_err(|e| Failure {
                retry: false,
                status: None,
                detail: e,
            })?,
        };
        post(&self.client, &self.url, &self.headers, body, self.timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::notice::Cause;
    use super::super::notice::tests::notice;
    use super::*;
    use crate::model::Status;

    #[test]
    fn the_payload_has_the_sample_s_fields() {
        let cfg: ReceiverConfig =
            toml::from_str("name = \"h\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"")
                .unwrap();
        let hook = Webhook::new(
            &cfg,
            (
                crate::check::http::client(false, None, false).unwrap(),
                Default::default(),
            ),
            "h1".into(),
        )
        .unwrap();
        let p = hook.payload(&notice(
            Status::Healthy,
            Status::Degraded,
            false,
            true,
            Cause::Change,
        ));
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(keys(&p), keys(&crate::config::notify::sample_payload()));
        assert_eq!(p["event"], "firing");
        assert_eq!(p["to"], "degraded");
        assert_eq!(p["links"]["health"], Value::Null);
    }
}
