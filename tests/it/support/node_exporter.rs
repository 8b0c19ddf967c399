//! Debian's `prometheus-node-exporter`, started by the test on a free loopback port with its
//! default collectors (never the system service the package may have started), and a
//! reader of the Prometheus text format to compare its figures with healthd's.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{
    HOST, START_TIMEOUT, eventually_async, free_port, install_crypto, open_log, wait_for_exit,
};

/// The binary `scripts/test` installs.
const BINARY: &str = "prometheus-node-exporter";

/// A running node_exporter; stopped (by its PID) when dropped.
pub struct NodeExporter {
    child: Child,
    pub url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl NodeExporter {
    /// Start with the default collectors and `args`.
    pub async fn start(args: &[String]) -> NodeExporter {
        install_crypto();
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let (out, err) = open_log(&dir.path().join("node_exporter.log"));
        let child = Command::new(BINARY)
            .arg(format!("--web.listen-address={HOST}:{port}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BINARY} (scripts/test installs it): {e}"));
        let node = NodeExporter {
            child,
            url: format!("http://{HOST}:{port}/metrics"),
            client: reqwest::Client::new(),
            _dir: dir,
        };
        eventually_async("node_exporter answers", START_TIMEOUT, || async {
            node.try_scrape().await
        })
        .await;
        node
    }

    async fn try_scrape(&self) -> Option<String> {
        let r = self.client.get(&self.url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    }

    /// One scrape of `/metrics`.
    pub async fn scrape(&self) -> Exposition {
        let text = tokio::time::timeout(Duration::from_secs(20), self.try_scrape())
            .await
            .ok()
            .flatten()
            .expect("node_exporter scrape");
        Exposition::parse(&text)
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = wait_for_exit(&mut self.child, Duration::from_secs(5));
    }
}

/// A scrape in the Prometheus text format: samples by name, and the families declared.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
    pub families: Vec<String>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some(name) = rest.split(' ').next() {
                    e.families.push(name.to_string());
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            e.samples.push((name.to_string(), labels, value));
        }
        e
    }

    pub fn has_family(&self, name: &str) -> bool {
        self.families.iter().any(|f| f == name)
    }

    /// The value of the series `name` whose labels include every pair of `with`.
    pub fn value(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    /// Every value the label `key` takes on the series `name`.
    pub fn label_values(&self, name: &str, key: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, l, _)| l.get(key).cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// `a="x",b="y"` (values without escaped quotes, which neither exporter writes here).
fn labels(text: &str) -> BTreeMap<String, String> {
    text.split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}
