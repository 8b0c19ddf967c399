//! Helpers for the core integration tests: real peers on loopback (a listener that accepts
//! and never answers, a bound port that refuses), configs written to temporary files, an
//! in-process daemon, and async polling with a deadline.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use healthd::config::{self, CheckConfig, Config, ConfigError, Sources};
use healthd::daemon::Daemon;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// A temporary directory holding `healthd.toml` and (optionally) `probes.d/`.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(main: &str) -> ConfigDir {
        let dir = tempfile::tempdir().expect("create temp dir");
        std::fs::write(dir.path().join("healthd.toml"), main).expect("write healthd.toml");
        ConfigDir { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("healthd.toml")
    }

    pub fn probes_dir(&self) -> PathBuf {
        self.dir.path().join("probes.d")
    }

    /// Add a drop-in file `probes.d/<name>`.
    pub fn drop_in(&self, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(self.probes_dir()).expect("create probes.d");
        let p = self.probes_dir().join(name);
        std::fs::write(&p, text).expect("write drop-in");
        p
    }

    /// Sources with an empty environment (the process environment is not read).
    pub fn sources(&self) -> Sources {
        self.sources_with_env(&[])
    }

    pub fn sources_with_env(&self, env: &[(&str, &str)]) -> Sources {
        Sources {
            config: Some(self.path()),
            probes_dir: None,
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>(),
            ),
        }
    }

    pub fn load(&self) -> Result<Config, Vec<ConfigError>> {
        config::load(&self.sources())
    }
}

/// Parse a config and return its only check; panics with every error on a bad config.
pub fn one_check(toml: &str) -> CheckConfig {
    let dir = ConfigDir::new(toml);
    let cfg = dir
        .load()
        .unwrap_or_else(|errs| panic!("config should be valid: {errs:#?}\n{toml}"));
    assert_eq!(cfg.checks.len(), 1, "expected exactly one check");
    cfg.checks.into_iter().next().expect("one check")
}

/// A peer that accepts connections, reads and discards what it is sent, and never answers.
/// Connections stay open until the peer is dropped.
pub struct SilentPeer {
    pub addr: std::net::SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl SilentPeer {
    pub async fn start() -> SilentPeer {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> SilentPeer {
        let listener = TcpListener::bind(addr).await.expect("bind silent peer");
        let addr = listener.local_addr().expect("local addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                held.push(tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    // Drain what the client sends; never write; keep the socket open.
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                    std::future::pending::<()>().await;
                }));
            }
        });
        SilentPeer {
            addr,
            accepted,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port that is bound (so nobody else takes it) but not listening: connecting is refused.
pub struct RefusingPort {
    pub socket: TcpSocket,
    pub port: u16,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind without listening");
        let port = socket.local_addr().expect("local addr").port();
        RefusingPort { socket, port }
    }
}

impl Default for RefusingPort {
    fn default() -> Self {
        Self::new()
    }
}

/// Poll `cond` every 20 ms until it yields `Some`; panic after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A daemon started in-process on `127.0.0.1:0` from a config text.
pub struct TestDaemon {
    pub daemon: Option<Daemon>,
    pub addr: std::net::SocketAddr,
    pub dir: ConfigDir,
}

impl TestDaemon {
    pub async fn start(main: &str) -> TestDaemon {
        Self::start_in(ConfigDir::new(main)).await
    }

    pub async fn start_in(dir: ConfigDir) -> TestDaemon {
        let daemon = Daemon::start(dir.sources(), Some("127.0.0.1:0".parse().expect("addr")))
            .await
            .unwrap_or_else(|e| match e {
                healthd::daemon::RunError::Config(errs) => panic!("bad test config: {errs:#?}"),
                other => panic!("daemon did not start: {other}"),
            });
        let addr = daemon.local_addr;
        TestDaemon {
            daemon: Some(daemon),
            addr,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn router(&self) -> axum::Router {
        healthd::server::router(self.daemon.as_ref().expect("running").state.clone())
    }

    pub fn snapshot(&self) -> Arc<healthd::health::Snapshot> {
        self.daemon
            .as_ref()
            .expect("running")
            .health
            .snapshot
            .load_full()
    }

    /// Wait until the named check has reported at least `runs` times.
    pub async fn wait_runs(&self, check: &str, runs: u64, timeout: Duration) {
        wait_for(&format!("{runs} runs of {check}"), timeout, || async {
            let snap = self.snapshot();
            let c = snap.check(check)?;
            (c.stats.latency_count >= runs).then_some(())
        })
        .await
    }
}

/// A reqwest client for talking to the daemon (no proxy, short timeout).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build client")
}

/// A path inside this repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The registered kinds as config errors list them (`"tcp", "http", …`), read from the
/// error for an unknown kind, so fixtures need not change when a kind is added. Stands for
/// `$KINDS` in `tests/fixtures/*.expected`.
pub fn kinds_list() -> String {
    let errors = ConfigDir::new("[[checks]]\nname = \"x\"\nkind = \"no-such-kind\"\n")
        .load()
        .expect_err("unknown kind");
    let reason = &errors[0].reason;
    let list = reason
        .split_once("expected one of ")
        .map(|(_, l)| l.to_string())
        .unwrap_or_else(|| panic!("no kind list in {reason}"));
    for core in ["\"tcp\"", "\"http\"", "\"cpu\"", "\"memory\"", "\"disk\""] {
        assert!(list.contains(core), "{core} missing from {list}");
    }
    list
}
