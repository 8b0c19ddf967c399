//! healthd under test: in-process ([`TestDaemon`], `Daemon::start` on 127.0.0.1:0) for
//! status assertions, or the binary as a subprocess ([`Subprocess`], [`healthd_check`]) when
//! its logs, signals, sd_notify or exit codes matter. Both are read through one
//! [`HealthClient`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use healthd::daemon::{Daemon, RunError};
use healthd::health::Snapshot;
use healthd::server;
use serde_json::Value;

use super::config::ConfigDir;
use super::{START_TIMEOUT, eventually_async, install_crypto};

/// How often the `/health` pollers ask.
const HEALTH_POLL: Duration = Duration::from_millis(25);

/// An HTTP client for one daemon's endpoints (no proxy, 10 s timeout; idle connections are
/// dropped after 500 ms, before a server's header read timeout would close them under a
/// request).
#[derive(Clone)]
pub struct HealthClient {
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl HealthClient {
    pub fn new(addr: SocketAddr) -> HealthClient {
        install_crypto();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_millis(500))
            .no_proxy()
            .build()
            .expect("build client");
        HealthClient {
            client,
            base: format!("http://{addr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let code = r.status().as_u16();
        (code, r.text().await.unwrap_or_default())
    }

    /// `/health` as JSON.
    pub async fn health(&self) -> Value {
        let (code, body) = self.get("/health").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health: {e}: {body}"))
    }

    /// The `/health` entry of check `name`, if there is one.
    pub async fn find_check(&self, name: &str) -> Option<Value> {
        check_in(&self.health().await, name).cloned()
    }

    /// The `/health` entry of check `name`; panics when there is none.
    pub async fn check(&self, name: &str) -> Value {
        let h = self.health().await;
        check_in(&h, name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name} in /health: {h}"))
    }

    /// Poll `/health` until check `name` satisfies `cond`; panics with the last view. A check
    /// not (yet) in `/health` is seen as `null` (the `telemetry` self-check appears with the
    /// first export).
    pub async fn wait_check(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.find_check(name).await.unwrap_or(Value::Null);
            if cond(&c) {
                return c;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {name} to be {what}; last: {c:#}");
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// [`HealthClient::wait_check`] returning how long it took (the fault suites' detect and
    /// recover times).
    pub async fn timed_wait(
        &self,
        name: &str,
        within: Duration,
        what: &str,
        cond: impl Fn(&Value) -> bool,
    ) -> Duration {
        let started = Instant::now();
        self.wait_check(name, what, within, cond).await;
        started.elapsed()
    }

    /// `/livez` and `/readyz` answer the expected codes.
    pub async fn assert_probes(&self, live: u16, ready: u16) {
        let (code, body) = self.get("/livez?verbose").await;
        assert_eq!(code, live, "/livez: {body}");
        let (code, body) = self.get("/readyz?verbose").await;
        assert_eq!(code, ready, "/readyz: {body}");
    }

    /// The `witness` check keeps running (a newer run within `within`) and stays healthy,
    /// and `/livez` answers 200: a fault elsewhere did not disturb the rest of healthd.
    pub async fn assert_undisturbed(&self, witness: &str, within: Duration) {
        let before = last_run(&self.check(witness).await);
        self.wait_check(witness, "updated and healthy", within, |v| {
            v["status"] == "healthy" && last_run(v) != before
        })
        .await;
        assert_eq!(self.get("/livez").await.0, 200, "/livez");
    }

    /// Every rendering of the snapshot a client can ask for (including `failing`'s own
    /// verbose path and `/metrics`), concatenated, for leak checks. Each must answer
    /// something.
    pub async fn every_surface(&self, failing: &str) -> String {
        let single = format!("/readyz/{failing}?verbose");
        let mut seen = String::new();
        for path in [
            "/health",
            "/readyz?verbose",
            "/readyz?verbose&format=json",
            "/livez?verbose",
            "/startupz?verbose",
            single.as_str(),
            "/metrics",
        ] {
            let (_, body) = self.get(path).await;
            assert!(!body.is_empty(), "{path} answered");
            seen.push_str(&format!("--- {path}\n{body}\n"));
        }
        seen
    }
}

/// A check by name from a `/health` body.
pub fn check_in<'a>(health: &'a Value, name: &str) -> Option<&'a Value> {
    health["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

pub fn status(c: &Value) -> &str {
    c["status"].as_str().unwrap_or("")
}

pub fn reason(c: &Value) -> &str {
    c["reason"].as_str().unwrap_or("")
}

pub fn is(c: &Value, st: &str) -> bool {
    status(c) == st
}

/// A condition for the pollers: status `status` and, when given, reason `reason`.
pub fn status_is(status: &'static str, reason: Option<&'static str>) -> impl Fn(&Value) -> bool {
    move |v| v["status"] == status && reason.is_none_or(|r| v["reason"] == r)
}

pub fn last_run(v: &Value) -> String {
    v["last_run"].as_str().unwrap_or_default().to_string()
}

/// Fail if any of `secrets` appears in any of the named texts.
pub fn assert_no_secret(texts: &[(&str, &str)], secrets: &[&str]) {
    for (what, text) in texts {
        for s in secrets {
            assert!(
                !text.contains(s),
                "a password leaked into the {what}:\n{text}"
            );
        }
    }
}

/// healthd started in-process on `127.0.0.1:0` from a config directory, with a
/// [`HealthClient`] for its endpoints (`d.get(...)`, `d.wait_check(...)`).
pub struct TestDaemon {
    pub daemon: Daemon,
    pub addr: SocketAddr,
    pub dir: ConfigDir,
    pub http: HealthClient,
}

impl Deref for TestDaemon {
    type Target = HealthClient;
    fn deref(&self) -> &HealthClient {
        &self.http
    }
}

impl TestDaemon {
    /// Start from the text of `healthd.toml`.
    pub async fn start(main: &str) -> TestDaemon {
        Self::start_in(ConfigDir::new(main)).await
    }

    /// Start from the text of `healthd.toml`, with `env` as the daemon's whole environment
    /// (`HEALTHD_*` / `OTEL_*` variables; the test process's own is never read).
    pub async fn start_with_env(main: &str, env: &[(&str, &str)]) -> TestDaemon {
        Self::launch(ConfigDir::new(main), env).await
    }

    /// Start from a prepared config directory (secret files, drop-ins).
    pub async fn start_in(dir: ConfigDir) -> TestDaemon {
        Self::launch(dir, &[]).await
    }

    /// Start from a prepared config directory with `env` as the daemon's whole environment.
    pub async fn start_in_with_env(dir: ConfigDir, env: &[(&str, &str)]) -> TestDaemon {
        Self::launch(dir, env).await
    }

    async fn launch(dir: ConfigDir, env: &[(&str, &str)]) -> TestDaemon {
        install_crypto();
        let daemon = Daemon::start(
            dir.sources_with_env(env),
            Some("127.0.0.1:0".parse().expect("addr")),
        )
        .await
        .unwrap_or_else(|e| match e {
            RunError::Config(errs) => panic!("bad test config: {errs:#?}"),
            other => panic!("daemon did not start: {other}"),
        });
        let addr = daemon.local_addr;
        TestDaemon {
            daemon,
            addr,
            dir,
            http: HealthClient::new(addr),
        }
    }

    pub fn router(&self) -> axum::Router {
        server::router(self.daemon.state.clone())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.daemon.health.snapshot.load_full()
    }

    /// Wait until `/startupz` passes (every check has reported).
    pub async fn started(&self) {
        eventually_async("startup", START_TIMEOUT, || async {
            (self.get("/startupz").await.0 == 200).then_some(())
        })
        .await;
    }

    /// Wait until the named check has reported at least `runs` times.
    pub async fn wait_runs(&self, check: &str, runs: u64, timeout: Duration) {
        eventually_async(&format!("{runs} runs of {check}"), timeout, || async {
            let snap = self.snapshot();
            let c = snap.check(check)?;
            (c.stats.latency_count >= runs).then_some(())
        })
        .await
    }
}

/// The healthd binary built for this test run.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_healthd")
}

/// A running `healthd run` subprocess listening on `127.0.0.1:0`, logging to a file the test
/// reads; killed on drop.
pub struct Subprocess {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Subprocess {
    /// `healthd --log-format json --log-level info run --config DIR/healthd.toml` (drop-ins
    /// from `DIR/probes.d/`), with extra environment (and no HEALTHD_* / NOTIFY_SOCKET /
    /// WATCHDOG_* / RUST_LOG of the test's own), logging to `DIR/healthd.log`; waits until it
    /// listens.
    pub fn start(dir: &ConfigDir, envs: &[(&str, &str)]) -> Subprocess {
        Self::spawn("info", dir, envs, None)
    }

    /// The same at `--log-level debug`.
    pub fn start_debug(dir: &ConfigDir, envs: &[(&str, &str)]) -> Subprocess {
        Self::spawn("debug", dir, envs, None)
    }

    /// The same with `--log-level SPEC` (e.g. `trace,hyper_util=trace`).
    pub fn start_logging(dir: &ConfigDir, spec: &str) -> Subprocess {
        Self::spawn(spec, dir, &[], None)
    }

    /// The same with `--log-level SPEC` and extra environment.
    pub fn start_logging_with_env(
        dir: &ConfigDir,
        spec: &str,
        envs: &[(&str, &str)],
    ) -> Subprocess {
        Self::spawn(spec, dir, envs, None)
    }

    /// The same with `RLIMIT_NOFILE` set to `soft:hard` (through util-linux's `prlimit`,
    /// which execs healthd, so the PID is healthd's).
    pub fn start_with_nofile(dir: &ConfigDir, soft: u64, hard: u64) -> Subprocess {
        Self::spawn("info", dir, &[], Some((soft, hard)))
    }

    /// The same with another healthd binary than the one built for this run.
    pub fn start_binary(binary: &Path, dir: &ConfigDir) -> Subprocess {
        Self::spawn_binary(binary, "info", dir, &[], None)
    }

    fn spawn(
        level: &str,
        dir: &ConfigDir,
        envs: &[(&str, &str)],
        nofile: Option<(u64, u64)>,
    ) -> Subprocess {
        Self::spawn_binary(Path::new(binary()), level, dir, envs, nofile)
    }

    fn spawn_binary(
        binary: &Path,
        level: &str,
        dir: &ConfigDir,
        envs: &[(&str, &str)],
        nofile: Option<(u64, u64)>,
    ) -> Subprocess {
        let log = dir.dir.path().join("healthd.log");
        let log_file = std::fs::File::create(&log).expect("create log file");
        let mut cmd = match nofile {
            None => Command::new(binary),
            Some((soft, hard)) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={soft}:{hard}")).arg(binary);
                c
            }
        };
        cmd.args([
            "--log-format",
            "json",
            "--log-level",
            level,
            "run",
            "--config",
        ])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
        for (k, _) in std::env::vars() {
            if k.starts_with("HEALTHD_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn healthd");
        let mut h = Subprocess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            exited: None,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = h.listening_addr() {
                h.addr = addr;
                return h;
            }
            if let Some(status) = h.try_exit() {
                panic!("healthd exited at start ({status}); log:\n{}", h.logs());
            }
            if Instant::now() >= deadline {
                panic!(
                    "healthd did not log \"Listening.\" within {START_TIMEOUT:?}; log:\n{}",
                    h.logs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn listening_addr(&self) -> Option<SocketAddr> {
        self.log_lines()
            .into_iter()
            .find(|l| l["message"] == "Listening.")
            .and_then(|l| l["address"].as_str()?.parse().ok())
    }

    /// A [`HealthClient`] for its endpoints.
    pub fn client(&self) -> HealthClient {
        HealthClient::new(self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`HUP`, `TERM`, `USR2`, …) with the shell's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s {name} {}", self.pid()))
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
    }

    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait healthd");
        }
        self.exited
    }

    /// Wait for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        let deadline = Instant::now() + timeout;
        while status.is_none() && Instant::now() < deadline {
            status = self.try_exit();
            if status.is_none() {
                thread::sleep(Duration::from_millis(20));
            }
        }
        status
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines so far (a partly written last line is skipped).
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Stop with SIGKILL and return everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.logs()))
    }

    /// `/health` as JSON.
    pub fn health(&self) -> Value {
        let (code, body) = self.get("/health");
        assert_eq!(code, 200, "/health answered {code}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"))
    }
}

impl Drop for Subprocess {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `healthd check` once with `format` on `dir`; returns (exit code, stdout + stderr).
pub fn healthd_check(dir: &ConfigDir, format: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(binary());
    cmd.args(["--log-level", "debug", "check", "--format", format])
        .arg("--config")
        .arg(dir.path())
        .arg("--probes-dir")
        .arg(dir.probes_dir())
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run healthd check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// One blocking `GET` over a fresh connection (plain HTTP/1.1 over `std::net::TcpStream`):
/// `(status code, body)`.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(format!("unexpected chunked body: {text:?}"));
    }
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code in {head:?}"))?;
    Ok((code, body.to_string()))
}
