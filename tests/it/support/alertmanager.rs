//! A real Alertmanager (Debian's `prometheus-alertmanager`, installed by `scripts/test`) on
//! a free loopback port, with its own config and storage directory and clustering off;
//! killed (by PID) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{Value, json};

use super::daemon::http_get;
use super::{HOST, START_TIMEOUT, eventually, free_port, log_tail, open_log};

const BINARY: &str = "prometheus-alertmanager";

pub struct AlertmanagerServer {
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for AlertmanagerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AlertmanagerServer {
    pub fn start() -> AlertmanagerServer {
        let dir = tempfile::Builder::new()
            .prefix("healthd-alertmanager-")
            .tempdir()
            .expect("temp dir for Alertmanager");
        let config = dir.path().join("alertmanager.yml");
        // One receiver that sends nowhere: the test reads the alerts over the API.
        std::fs::write(
            &config,
            "route:\n  receiver: nowhere\n  group_wait: 0s\nreceivers:\n  - name: nowhere\n",
        )
        .expect("write alertmanager.yml");
        let log = dir.path().join("alertmanager.log");
        let port = free_port();
        let (out, err) = open_log(&log);
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={HOST}:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("run {BINARY} (Debian package prometheus-alertmanager, installed by scripts/test): {e}")
            });
        let mut am = AlertmanagerServer {
            port,
            child,
            log,
            _dir: dir,
        };
        let addr = am.addr();
        let log = am.log.clone();
        let child = &mut am.child;
        eventually(
            &format!("Alertmanager ready on {addr}"),
            START_TIMEOUT,
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("Alertmanager exited ({status}):\n{}", log_tail(&log, 30));
                }
                matches!(http_get(addr, "/-/ready"), Ok((200, _)))
            },
        );
        am
    }

    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// `GET /api/v2/alerts`: the alerts Alertmanager holds (resolved ones are left out).
    pub async fn alerts(&self) -> Vec<Value> {
        let body = reqwest_client()
            .get(format!("{}/api/v2/alerts", self.url()))
            .send()
            .await
            .expect("GET /api/v2/alerts")
            .text()
            .await
            .expect("alerts body");
        serde_json::from_str::<Vec<Value>>(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Create a silence for alerts whose labels equal these, for an hour; its id.
    pub async fn silence(&self, labels: &[(&str, &str)]) -> String {
        let now = std::time::SystemTime::now();
        let matchers: Vec<Value> = labels
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v, "isRegex": false, "isEqual": true}))
            .collect();
        let body = json!({
            "matchers": matchers,
            "startsAt": humantime::format_rfc3339_millis(now).to_string(),
            "endsAt": humantime::format_rfc3339_millis(now + Duration::from_secs(3600)).to_string(),
            "createdBy": "healthd tests",
            "comment": "silence by label",
        });
        let r = reqwest_client()
            .post(format!("{}/api/v2/silences", self.url()))
            .json(&body)
            .send()
            .await
            .expect("POST /api/v2/silences");
        let status = r.status();
        let answer: Value = r.json().await.expect("silence answer");
        assert!(status.is_success(), "silence refused: {answer}");
        answer["silenceID"].as_str().unwrap_or_default().to_string()
    }
}

fn reqwest_client() -> reqwest::Client {
    super::install_crypto();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}
