//! Notifications against real receivers: a webhook receiver that counts what it gets
//! ([`crate::support::webhook::WebhookPeer`]) and a real Alertmanager
//! ([`crate::support::alertmanager::AlertmanagerServer`]). Checks are push checks, so a test
//! turns a check's status at once, by a request, without waiting on intervals.

mod alertmanager;
mod delivery;
mod dependencies;
mod maintenance;
mod webhook;

use std::time::Duration;

use crate::support::config::ConfigDir;
use crate::support::daemon::TestDaemon;
use crate::support::{toml_path, unique_secret};

/// How long a notification may take when nothing is in its way.
const PROMPT: Duration = Duration::from_secs(5);

/// A daemon with push checks and some more config.
pub struct Setup {
    pub d: TestDaemon,
    token: String,
    token_file: String,
}

/// A push check `name` with more keys; healthd looks for a missing heartbeat every second
/// (its period is far longer than any test) unless `keys` set the interval.
pub fn push_check(name: &str, keys: &str) -> String {
    let interval = if keys.contains("interval") {
        ""
    } else {
        "interval = \"1s\"\ntimeout = \"500ms\"\n"
    };
    format!(
        "[[checks]]\nname = \"{name}\"\nkind = \"push\"\nperiod = \"1h\"\n{interval}token_file = \"TOKEN\"\n{keys}\n"
    )
}

/// The message a failed push shows.
pub fn pushed(message: &str) -> String {
    format!("the job reported a failure: {message}")
}

impl Setup {
    /// `config` holds push checks (from [`push_check`]) and anything else; `env` is the
    /// daemon's whole environment.
    pub async fn start(config: &str, env: &[(&str, &str)]) -> Setup {
        let dir = ConfigDir::new("");
        let token = unique_secret("push-");
        let token_file = toml_path(&dir.secret_file("push.token", &token));
        dir.set_config(&config.replace("\"TOKEN\"", &token_file));
        let d = TestDaemon::start_in_with_env(dir, env).await;
        Setup {
            d,
            token,
            token_file,
        }
    }

    /// Write a new config (push checks as in [`Setup::start`]) and reload.
    pub async fn reload(&mut self, config: &str) {
        self.d
            .dir
            .set_config(&config.replace("\"TOKEN\"", &self.token_file));
        self.d.daemon.reload().await.expect("reload");
    }

    /// `POST /push/CHECK` (a success) or `/push/CHECK/fail`, with a message.
    pub async fn push(&self, check: &str, ok: bool, message: &str) {
        let path = if ok {
            format!("/push/{check}")
        } else {
            format!("/push/{check}/fail")
        };
        let r = self
            .d
            .client
            .post(self.d.url(&path))
            .bearer_auth(&self.token)
            .body(message.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(r.status().as_u16(), 200, "POST {path}");
    }

    /// Push and wait until `/health` shows the status.
    pub async fn set(&self, check: &str, ok: bool, status: &str) {
        self.push(check, ok, "set by the test").await;
        self.d
            .wait_check(check, status, PROMPT, |c| c["status"] == status)
            .await;
    }

    /// A sample of `healthd_notifications_total` from `/metrics`.
    pub async fn counted(&self, receiver: &str, result: &str) -> u64 {
        let (_, text) = self.d.get("/metrics").await;
        let series =
            format!("healthd_notifications_total{{receiver=\"{receiver}\",result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
    }
}

/// Wait a while and make sure nothing more arrives.
pub async fn quiet(for_: Duration) {
    tokio::time::sleep(for_).await;
}
