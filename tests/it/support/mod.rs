//! The one test support module of healthd's integration tests.
//!
//! Why one test binary: every file under `tests/it/` is a module of a single integration
//! test binary (`tests/it/main.rs`, selected with `cargo test --test it [FILTER]`), the way
//! crates.io and linkerd2-proxy run theirs. Helper modules included into many test binaries
//! (one per `tests/*.rs`) are recompiled into each, and a helper that one binary does not use
//! is dead code there, which forced `#![allow(dead_code)]` on every helper module and hid
//! helpers that nothing used at all. Compiled once into one binary, this module needs no
//! such allowance: whatever no test uses is a warning (an error under clippy `-D warnings`)
//! and gets deleted. It also links once instead of twenty times. A `tests/support` path crate
//! would have given the same checks, but with a second `Cargo.toml` and still one link per
//! test file.
//!
//! Sharing one process means sharing process-global state: nothing here sets environment
//! variables or installs a tracing subscriber; the rustls crypto provider is installed once
//! ([`install_crypto`], errors ignored); ports come from [`free_port`] (never the same twice
//! in this process) or are bound for the whole test ([`peers::RefusingPort`]); and no test
//! counts the threads, file descriptors or child processes of the test process itself (the
//! server harness only counts children of the servers it started).
//!
//! What is here:
//! - this file: bounded polling ([`eventually`], [`eventually_async`]), ports, secrets
//!   ([`unique_secret`], [`write_secret`]), subprocesses with timeouts and signals,
//!   `promtool check metrics`, TOML quoting, repository paths;
//! - [`browser`]: headless chromium over the DevTools protocol, for the status page;
//! - [`config`]: [`config::ConfigDir`], a temporary `healthd.toml` + `probes.d/`;
//! - [`daemon`]: healthd in-process ([`daemon::TestDaemon`]) or as a subprocess
//!   ([`daemon::Subprocess`], [`daemon::healthd_check`]), and [`daemon::HealthClient`], the
//!   one way to read and wait on its endpoints;
//! - [`peers`]: real peers on loopback (silent, refusing, switchable TCP and HTTP peers,
//!   accept-and-close listeners, a throwaway PKI);
//! - [`dnsmasq`]: a real DNS server ([`dnsmasq::DnsServer`]) with its own hosts file;
//! - [`grpc`]: gRPC health servers (tonic + tonic-health, a scripted one, and the Python
//!   reference implementation);
//! - [`pki`]: certificates made with rcgen for chosen validity dates, and a rustls server
//!   presenting them ([`pki::TlsPeer`]);
//! - [`nspawn`]: a booted Debian 12 machine with systemd as PID 1 ([`nspawn::Machine`]);
//! - [`postgres`]: real PostgreSQL servers ([`postgres::PgServer`]), and [`redis`]: real
//!   Redis servers ([`redis::RedisServer`]);
//! - [`alertmanager`]: a real Alertmanager ([`alertmanager::AlertmanagerServer`]), and
//!   [`webhook`]: a webhook receiver that counts and scripts its answers.

pub mod alertmanager;
pub mod browser;
pub mod config;
pub mod daemon;
pub mod dnsmasq;
pub mod grpc;
pub mod node_exporter;
pub mod nspawn;
pub mod oom;
pub mod peers;
pub mod pki;
pub mod postgres;
pub mod redis;
pub mod webhook;

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::fs::{self, OpenOptions};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a server (or healthd) may take to start or stop before a test panics.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one `psql` / `redis-cli` / `initdb` invocation may take.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);
/// Loopback address every server listens on.
pub const HOST: &str = "127.0.0.1";

const POLL: Duration = Duration::from_millis(20);

/// A port on 127.0.0.1 that was free a moment ago. Never hands out the same
/// port twice within one test binary, so parallel tests don't collide.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    for _ in 0..100 {
        let port = TcpListener::bind((HOST, 0))
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if handed_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
    panic!("free_port: no unused port after 100 tries");
}

/// A random-looking alphanumeric secret, distinct per call, easy to grep for
/// in logs and endpoint bodies ("must not leak" assertions).
pub fn unique_secret(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{prefix}{:016x}", h.finish())
}

/// Polls `cond` every 20 ms until it is true; panics after `timeout`. The one poller of
/// the suite; [`eventually_async`] is its async twin.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// Runs `cmd` with stdin closed and output captured, killing it after
/// `timeout`. `Err` only when it could not be spawned or timed out.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let status = match wait_for_exit(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not finish within {timeout:?}"));
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child` to exit; `None` if it is still running after `timeout`.
pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `signal` ("STOP", "CONT", "KILL", "INT", ...) to `pids`, ignoring
/// processes that are already gone.
pub fn send_signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        r#"s=$1; shift; kill -s "$s" "$@" 2>/dev/null; true"#,
        "sh",
        signal,
    ]);
    cmd.args(pids.iter().map(u32::to_string));
    let _ = run_with_timeout(&mut cmd, CMD_TIMEOUT);
}

/// `(ppid, state)` of a live process, from `/proc/PID/stat`.
pub fn proc_stat(pid: u32) -> Option<(u32, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Direct children of `parent` that have not exited (zombies excluded).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(
            |&pid| matches!(proc_stat(pid), Some((ppid, state)) if ppid == parent && state != 'Z'),
        )
        .collect()
}

pub fn is_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((_, state)) if state != 'Z')
}

pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {path:?}: {e}>"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn output_text(out: &Output) -> String {
    format!(
        "exit {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

pub fn effective_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                .and_then(|uid| uid.parse().ok())
        })
        .expect("read effective uid from /proc/self/status")
}

pub fn open_log(path: &Path) -> (Stdio, Stdio) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log {path:?}: {e}"));
    let clone = file.try_clone().expect("clone log file handle");
    (Stdio::from(file), Stdio::from(clone))
}

/// Polls `cond` every 20 ms until it yields `Some`; panics after `timeout`. The async twin of
/// [`eventually`], for conditions that await (HTTP requests to the daemon).
pub async fn eventually_async<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
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
        tokio::time::sleep(POLL).await;
    }
}

/// Installs the rustls crypto provider of the process (once; later calls are no-ops).
pub fn install_crypto() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Writes a secret file (mode 0600, `content` and a newline) at `path` and returns it.
pub fn write_secret(path: &Path, content: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, format!("{content}\n")).expect("write secret file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    path.to_path_buf()
}

/// `promtool check metrics` on an exposition: (exit status success, stdout + stderr).
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by scripts/test");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A path inside this repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// TOML for a string value (quoted and escaped).
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// TOML for a path (a quoted string).
pub fn toml_path(p: &Path) -> String {
    toml_str(&p.display().to_string())
}
