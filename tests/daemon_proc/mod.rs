//! Runs the real `healthd` binary as a subprocess for lifecycle tests (signals, sd_notify,
//! reload, drain): it listens on `127.0.0.1:0`, logs JSON lines to a file the test reads, and
//! is killed when the guard drops. HTTP is plain HTTP/1.1 over `std::net::TcpStream`.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Generous bound for the daemon to start, answer, or exit when nothing should hold it up.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it holds, panicking after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// A running `healthd run`, killed on drop.
pub struct Healthd {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Healthd {
    /// Start `healthd run --config <config> --listen 127.0.0.1:0` with extra environment, log
    /// to `log`, and wait until it listens.
    pub fn start(config: &Path, envs: &[(&str, &str)], log: &Path) -> Healthd {
        let log_file = File::create(log).expect("create log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_healthd"));
        cmd.args([
            "--log-format",
            "json",
            "--log-level",
            "info",
            "run",
            "--config",
        ])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn healthd");
        let mut h = Healthd {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log.to_path_buf(),
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
            thread::sleep(POLL);
        }
    }

    fn listening_addr(&self) -> Option<SocketAddr> {
        self.log_lines()
            .into_iter()
            .find(|l| l["message"] == "Listening.")
            .and_then(|l| l["address"].as_str()?.parse().ok())
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
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines so far (a partly written last line is skipped).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.logs()))
    }

    /// `/health` as JSON.
    pub fn health(&self) -> serde_json::Value {
        let (code, body) = self.get("/health");
        assert_eq!(code, 200, "/health answered {code}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"))
    }
}

impl Drop for Healthd {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `GET` over a fresh connection: `(status code, body)`.
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

/// A check by name from a `/health` body.
pub fn check<'a>(health: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    health["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

/// A TCP server on 127.0.0.1 that accepts and closes every connection (a healthy `tcp`
/// check target), for the rest of the test process. Accepting matters: an unaccepted
/// backlog fills up after ~128 checks and connections then hang.
pub fn live_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind live listener");
    let port = listener.local_addr().expect("local addr").port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    port
}

/// A port on 127.0.0.1 that refuses connections (bound a moment ago, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
