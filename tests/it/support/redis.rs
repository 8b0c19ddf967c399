//! Real Redis servers on loopback ([`RedisServer`]).
//!
//! Each `RedisServer` gets its own temporary directory and a free port on 127.0.0.1, so
//! tests may run in parallel threads. Every wait is bounded (see [`START_TIMEOUT`] and
//! [`CMD_TIMEOUT`]) and a failed start panics with the tail of the server's log. Dropping a
//! server kills it and removes its directory.
//!
//! All calls are blocking (they run `redis-cli`, `kill` ...); see [`super::postgres`] for
//! what that means in a `#[tokio::test]`. `redis-server` and `redis-cli` come from `PATH`;
//! `scripts/test` installs them.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{
    CMD_TIMEOUT, HOST, POLL, START_TIMEOUT, free_port, log_tail, open_log, output_text,
    run_with_timeout, send_signal, wait_for_exit,
};

/// `(major, minor)` of the installed redis-server.
pub fn redis_version() -> (u32, u32) {
    static VERSION: OnceLock<(u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = run_with_timeout(Command::new("redis-server").arg("--version"), CMD_TIMEOUT)
            .unwrap_or_else(|e| {
                panic!("redis-server not usable ({e}): run scripts/test, which installs it")
            });
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // "Redis server v=7.0.15 sha=..."
        let version = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or_else(|| panic!("cannot parse redis-server --version: {text:?}"));
        let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    })
}

/// A throwaway Redis server on 127.0.0.1 (no persistence).
///
/// With a password: `requirepass` protects the `default` user and an ACL
/// user [`RedisServer::APP_USER`] has the same password and all permissions.
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    child: Option<Child>,
    paused: bool,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// ACL user created by [`RedisServer::start_with_password`].
    pub const APP_USER: &'static str = "app";

    /// A server without authentication.
    pub fn start() -> RedisServer {
        RedisServer::start_inner(None, None)
    }

    /// A server without authentication on `port` (no retry if it is taken).
    pub fn start_on(port: u16) -> RedisServer {
        RedisServer::start_inner(None, Some(port))
    }

    /// A server with `requirepass PASSWORD` and ACL user `app` / PASSWORD.
    pub fn start_with_password(password: &str) -> RedisServer {
        RedisServer::start_inner(Some(password.to_string()), None)
    }

    fn start_inner(password: Option<String>, port: Option<u16>) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("healthd-redis-")
            .tempdir()
            .expect("create temp dir for Redis");
        let mut redis = RedisServer {
            port: 0,
            password,
            child: None,
            paused: false,
            log: dir.path().join("redis.log"),
            dir,
        };
        let mut last_err = String::new();
        for _ in 0..3 {
            redis.port = port.unwrap_or_else(free_port);
            match redis.spawn() {
                Ok(()) => return redis,
                Err(e)
                    if port.is_none()
                        && fs::read_to_string(&redis.log)
                            .unwrap_or_default()
                            .contains("Address already in use") =>
                {
                    last_err = e;
                }
                Err(e) => redis.fail(&format!("Redis failed to start: {e}")),
            }
        }
        redis.fail(&format!("Redis could not bind a free port: {last_err}"))
    }

    fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n--- {} (last 40 lines) ---\n{}",
            self.log.display(),
            log_tail(&self.log, 40)
        )
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", HOST])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ])
            .arg("--dir")
            .arg(self.dir.path());
        if redis_version() >= (7, 0) {
            cmd.args(["--enable-debug-command", "local"]);
        }
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
            cmd.args([
                "--user",
                Self::APP_USER,
                "on",
                &format!(">{pw}"),
                "~*",
                "+@all",
            ]);
            if redis_version() >= (6, 2) {
                cmd.arg("&*");
            }
        }
        let (out, err) = open_log(&self.log);
        let child = cmd
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn redis-server (run scripts/test to install it): {e}"))?;
        let pid = child.id();
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("redis-server exited during startup with {status}"));
            }
            // Check the answer comes from our process, not another server
            // that got the same port.
            let mut info = self.cli_command(&["INFO", "server"]);
            if let Ok(out) = run_with_timeout(&mut info, Duration::from_secs(5)) {
                let text = String::from_utf8_lossy(&out.stdout);
                if out.status.success()
                    && text
                        .lines()
                        .any(|l| l.trim() == format!("process_id:{pid}"))
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer to INFO within {START_TIMEOUT:?}"));
            }
            thread::sleep(POLL);
        }
    }

    fn cli_base(&self) -> Command {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-e", "-h", HOST, "-p", &self.port.to_string()])
            .env_remove("REDISCLI_AUTH");
        cmd
    }

    /// `redis-cli` for `args`, authenticated as `default` when there is a password.
    fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.cli_base();
        if let Some(pw) = &self.password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        cmd.args(args);
        cmd
    }

    fn run_cli(mut cmd: Command) -> Result<String, String> {
        let out = run_with_timeout(&mut cmd, CMD_TIMEOUT)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(output_text(&out))
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &'static str {
        HOST
    }

    /// `redis://USER:PASSWORD@127.0.0.1:PORT/` (not percent-encoded).
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@{HOST}:{}/", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs one command with redis-cli (as `default`), returning trimmed raw
    /// output; panics on an error reply, a failed connection or a timeout.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("redis-cli {args:?} on port {} failed: {e}", self.port))
    }

    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        Self::run_cli(self.cli_command(args))
    }

    /// Runs one command authenticated as `user` / `password` (ACL `AUTH user
    /// pass`); `Err` carries e.g. "WRONGPASS ..." / "NOAUTH ...".
    pub fn cli_as(&self, user: &str, password: &str, args: &[&str]) -> Result<String, String> {
        let mut cmd = self.cli_base();
        cmd.args(["--no-auth-warning", "--user", user, "--pass", password]);
        cmd.args(args);
        Self::run_cli(cmd)
    }

    /// Graceful shutdown (SIGTERM); nothing is persisted.
    pub fn stop(&mut self) {
        self.resume();
        let Some(mut child) = self.child.take() else {
            return;
        };
        send_signal(&[child.id()], "TERM");
        if wait_for_exit(&mut child, START_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
            self.fail("redis-server ignored SIGTERM; killed");
        }
    }

    /// Starts the stopped (or killed) server again on the same port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again: server is still running");
        if let Err(e) = self.spawn() {
            self.fail(&format!(
                "Redis failed to start again on port {}: {e}",
                self.port
            ));
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// `CLIENT PAUSE ms ALL`: the server stays up but holds every client's
    /// commands (including this harness's) for `ms` milliseconds.
    pub fn pause_clients(&self, ms: u64) {
        self.cli(&["CLIENT", "PAUSE", &ms.to_string(), "ALL"]);
    }

    /// `DEBUG SLEEP` from a background thread; returns once the command has
    /// been sent (give or take a few ms), while the server is blocked.
    pub fn debug_sleep_in_background(&self, d: Duration) -> JoinHandle<()> {
        let mut cmd = self.cli_command(&["DEBUG", "SLEEP", &format!("{:.3}", d.as_secs_f64())]);
        let handle = thread::spawn(move || {
            let _ = run_with_timeout(&mut cmd, d + CMD_TIMEOUT);
        });
        thread::sleep(Duration::from_millis(100));
        handle
    }

    /// Freezes the process (SIGSTOP): connects complete, nothing answers.
    pub fn pause(&mut self) {
        let pid = self.pid().expect("pause: server is not running");
        send_signal(&[pid], "STOP");
        self.paused = true;
    }

    /// Undoes [`RedisServer::pause`]. No-op when not paused.
    pub fn resume(&mut self) {
        if self.paused {
            if let Some(pid) = self.pid() {
                send_signal(&[pid], "CONT");
            }
            self.paused = false;
        }
    }

    /// `CLIENT LIST` lines, without the harness's own connection.
    pub fn clients(&self) -> Vec<String> {
        self.cli(&["CLIENT", "LIST"])
            .lines()
            .filter(|l| !l.contains("cmd=client|list") && !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `CLIENT KILL TYPE normal`: drops every client connection except the
    /// harness's own; returns how many.
    pub fn kill_clients(&self) -> usize {
        let out = self.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        out.parse()
            .unwrap_or_else(|e| panic!("kill_clients: unexpected output {out:?}: {e}"))
    }

    /// Number of connected clients, not counting the harness's own.
    pub fn client_count(&self) -> usize {
        self.clients().len()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
    }
}
