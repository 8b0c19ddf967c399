//! Driving healthd for the database probe tests: in-process (`Daemon::start` on
//! 127.0.0.1:0) for status assertions, or the binary as a subprocess when its stderr logs
//! and `healthd check` output matter.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use healthd::config::Sources;
use healthd::daemon::Daemon;
use serde_json::Value;

/// A temp dir holding `healthd.toml`, an empty `probes.d/` and any secret files.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(config: &str) -> ConfigDir {
        let dir = tempfile::Builder::new()
            .prefix("healthd-dbtest-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("probes.d")).expect("probes.d");
        std::fs::write(dir.path().join("healthd.toml"), config).expect("write config");
        ConfigDir { dir }
    }

    /// Replace the main config file's text.
    pub fn set_config(&self, config: &str) {
        std::fs::write(self.config_path(), config).expect("write config");
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("healthd.toml")
    }

    pub fn probes_dir(&self) -> PathBuf {
        self.dir.path().join("probes.d")
    }

    /// Write a secret file (mode 0600) and return its path.
    pub fn secret_file(&self, name: &str, content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{content}\n")).expect("write secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod secret");
        path
    }

    pub fn sources(&self) -> Sources {
        Sources {
            config: Some(self.config_path()),
            probes_dir: Some(self.probes_dir()),
            env: Some(Default::default()),
        }
    }
}

/// TOML for a string value (quoted and escaped).
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub fn toml_path(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

/// A TCP listener on loopback that accepts and holds connections, as the target of a
/// `tcp` check that must stay healthy while the database is in trouble.
pub struct Listener {
    pub port: u16,
}

impl Listener {
    pub fn start() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind listener");
        let port = l.local_addr().expect("addr").port();
        thread::spawn(move || {
            for s in l.incoming() {
                drop(s);
            }
        });
        Listener { port }
    }
}

/// An in-process daemon with an HTTP client for its endpoints.
pub struct InProcess {
    pub daemon: Daemon,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: ConfigDir,
}

impl InProcess {
    pub async fn start(dir: ConfigDir) -> InProcess {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let daemon = Daemon::start(dir.sources(), Some(SocketAddr::from(([127, 0, 0, 1], 0))))
            .await
            .unwrap_or_else(|e| panic!("daemon did not start: {e}"));
        let base = format!("http://{}", daemon.local_addr);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("http client");
        InProcess {
            daemon,
            base,
            http,
            dir,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        get(&self.http, &self.base, path).await
    }

    /// The `/health` entry of check `name`.
    pub async fn check(&self, name: &str) -> Value {
        check_of(&self.http, &self.base, name).await
    }

    /// Poll `/health` until check `name` satisfies `cond`; panics with the last view.
    pub async fn wait_check(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_check(&self.http, &self.base, name, what, timeout, cond).await
    }
}

pub async fn get(http: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let r = http
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

/// Every rendering of the snapshot a client can ask for (including `failing`'s own verbose
/// path and `/metrics`), concatenated, for leak checks. Each must answer something.
pub async fn every_surface(http: &reqwest::Client, base: &str, failing: &str) -> String {
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
        let (_, body) = get(http, base, path).await;
        assert!(!body.is_empty(), "{path} answered");
        seen.push_str(&format!("--- {path}\n{body}\n"));
    }
    seen
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

pub async fn check_of(http: &reqwest::Client, base: &str, name: &str) -> Value {
    let (_, body) = get(http, base, "/health").await;
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health: {e}: {body}"));
    v["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no check {name} in /health: {body}"))
}

pub async fn wait_check(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let c = check_of(http, base, name).await;
        if cond(&c) {
            return c;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {name} to be {what}; last: {c:#}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
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

/// Run a blocking harness call without stalling the runtime's other tasks.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// healthd as a subprocess (`run`), with stderr collected; killed on drop.
pub struct Subprocess {
    child: Child,
    pub base: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_healthd")
}

impl Subprocess {
    pub fn run(dir: &ConfigDir, env: &[(&str, &str)]) -> Subprocess {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut cmd = Command::new(binary());
        cmd.args(["--log-level", "debug", "--log-format", "plain", "run"])
            .arg("--config")
            .arg(dir.config_path())
            .arg("--probes-dir")
            .arg(dir.probes_dir())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn healthd");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        let mut proc = Subprocess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("healthd exited with {status}: {}", proc.stderr());
            }
            if Instant::now() >= deadline {
                panic!("healthd did not listen within 15s: {}", proc.stderr());
            }
            thread::sleep(Duration::from_millis(20));
        }
        proc
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Stop with SIGKILL and return everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.stderr()
    }
}

impl Drop for Subprocess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `healthd check` once with `format`; returns (exit code, stdout + stderr).
pub fn healthd_check(dir: &ConfigDir, format: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(binary());
    cmd.args(["--log-level", "debug", "check", "--format", format])
        .arg("--config")
        .arg(dir.config_path())
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

/// A test CA and a server certificate it issued for IP 127.0.0.1 only, made with the
/// `openssl` command (PEM files in a directory).
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    pub fn make(dir: &Path) -> TestCerts {
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=healthd test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(dir, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=healthd test server",
        ]);
        openssl(dir, &csr);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        TestCerts {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

/// Runs `openssl` with `args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
