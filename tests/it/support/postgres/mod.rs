//! Real PostgreSQL servers on loopback ([`PgServer`]).
//!
//! Each `PgServer` gets its own temporary directory and a free port on 127.0.0.1, so tests
//! may run in parallel threads. Every wait is bounded (see [`START_TIMEOUT`] and
//! [`CMD_TIMEOUT`]) and a failed start panics with the tail of the server's log. Dropping a
//! server kills it and removes its directory.
//!
//! All calls are blocking (they run `psql`, `kill` ...). From a `#[tokio::test]` that is
//! fine for setup and assertions; if the code under test must keep running on the runtime
//! meanwhile, use `#[tokio::test(flavor = "multi_thread")]` or `tokio::task::spawn_blocking`.
//!
//! Which binaries, run as which user, from which cached `initdb` template: [`install`].

mod install;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use install::pg_bin_dir;
use install::{chown_to_server_user, copy_tree, pg_command, pg_template};

use super::{
    CMD_TIMEOUT, HOST, POLL, START_TIMEOUT, children_of, eventually, free_port, is_alive, log_tail,
    open_log, output_text, run_with_timeout, send_signal, unique_secret, wait_for_exit,
};

/// Quotes an SQL identifier: `say "hi"` -> `"say ""hi"""`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal: `it's` -> `'it''s'`.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Options for [`PgServer::start_with`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// `max_connections` (default 50).
    pub max_connections: u32,
    /// Superuser password; default: a fresh [`unique_secret`].
    pub superuser_password: Option<String>,
    /// Extra `postgresql.conf` settings, e.g. `("log_connections", "on")`.
    /// Values are written verbatim, so quote strings: `("ssl_cert_file", "'/x.pem'")`.
    pub settings: Vec<(String, String)>,
    /// Listen on this port instead of a free one (no retry if it is taken).
    pub port: Option<u16>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 50,
            superuser_password: None,
            settings: Vec::new(),
            port: None,
        }
    }
}

/// A throwaway PostgreSQL cluster (one primary) on 127.0.0.1.
///
/// TCP connections use scram-sha-256 password auth; the unix socket in the
/// temp dir trusts local users (that is how [`PgServer::psql`] gets in).
pub struct PgServer {
    port: u16,
    password: String,
    child: Option<Child>,
    paused: bool,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Superuser name in every cluster the harness creates.
    pub const SUPERUSER: &'static str = "postgres";

    /// Starts a fresh cluster with default options.
    pub fn start() -> PgServer {
        PgServer::start_with(PgOptions::default())
    }

    /// Starts a fresh cluster (a copy of a cached `initdb` template), sets the
    /// superuser password and returns once it accepts connections on TCP.
    pub fn start_with(opts: PgOptions) -> PgServer {
        let template = pg_template();
        let dir = tempfile::Builder::new()
            .prefix("healthd-pg-")
            .tempdir()
            .expect("create temp dir for PostgreSQL");
        let mut pg = PgServer {
            port: 0,
            password: opts
                .superuser_password
                .clone()
                .unwrap_or_else(|| unique_secret("pgsu")),
            child: None,
            paused: false,
            log: dir.path().join("postgres.log"),
            dir,
        };
        chown_to_server_user(pg.dir.path());
        copy_tree(&template, &pg.data_dir())
            .unwrap_or_else(|e| panic!("copy initdb template {template:?}: {e}"));
        pg.configure(&opts);
        // The port from free_port() may be grabbed by someone else before the
        // server binds it: retry with a new port when that happens.
        let mut last_err = String::new();
        for _ in 0..3 {
            pg.port = opts.port.unwrap_or_else(free_port);
            match pg.spawn_postmaster() {
                Ok(()) => {
                    pg.psql(&format!(
                        "ALTER ROLE {} PASSWORD {}",
                        quote_ident(Self::SUPERUSER),
                        quote_literal(&pg.password)
                    ));
                    // synchronous_commit is off (speed): without a checkpoint, a test that
                    // kills the server with SIGKILL soon after could lose the password while
                    // the WAL writer lags (it did, on a loaded machine), and the restarted
                    // server would refuse it.
                    pg.psql("CHECKPOINT");
                    return pg;
                }
                Err(e) if opts.port.is_none() && pg.log_contents().contains("could not bind") => {
                    last_err = e
                }
                Err(e) => pg.fail(&format!("PostgreSQL failed to start: {e}")),
            }
        }
        pg.fail(&format!(
            "PostgreSQL could not bind a free port: {last_err}"
        ))
    }

    fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n--- {} (last 40 lines) ---\n{}",
            self.log.display(),
            log_tail(&self.log, 40)
        )
    }

    fn pg_command(&self, program: &str) -> Command {
        pg_command(program, self.dir.path())
    }

    /// Appends the harness's settings to the copied `postgresql.conf`.
    fn configure(&self, opts: &PgOptions) {
        let mut conf = format!(
            "\n# healthd test harness\n\
             listen_addresses = '{HOST}'\n\
             unix_socket_directories = '{}'\n\
             max_connections = {}\n\
             shared_buffers = 16MB\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             huge_pages = off\n\
             logging_collector = off\n",
            self.dir.path().display(),
            opts.max_connections,
        );
        for (key, value) in &opts.settings {
            conf.push_str(&format!("{key} = {value}\n"));
        }
        OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .expect("append to postgresql.conf");
    }

    /// Starts the postmaster on `self.port` and waits until it answers.
    fn spawn_postmaster(&mut self) -> Result<(), String> {
        let (out, err) = open_log(&self.log);
        let child = self
            .pg_command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn postgres: {e}"))?;
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
                return Err(format!("postgres exited during startup with {status}"));
            }
            // The unix socket lives in our own dir, so a ready answer there
            // comes from our server, not from another one on a recycled port;
            // it is created only after the TCP listener was bound.
            if self.pg_isready(self.dir.path()) && self.pg_isready(Path::new(HOST)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not accepting connections within {START_TIMEOUT:?}"
                ));
            }
            thread::sleep(POLL);
        }
    }

    fn pg_isready(&self, host: &Path) -> bool {
        let mut cmd = self.pg_command("pg_isready");
        cmd.arg("-q")
            .arg("-h")
            .arg(host)
            .args(["-p", &self.port.to_string(), "-t", "2"]);
        matches!(run_with_timeout(&mut cmd, Duration::from_secs(5)), Ok(out) if out.status.success())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &'static str {
        HOST
    }

    pub fn superuser(&self) -> &'static str {
        Self::SUPERUSER
    }

    /// The superuser's password (TCP connections need it).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Directory holding the server's unix socket (`host=` for a socket connection).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the server has logged so far (all starts).
    pub fn log_contents(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// PID of the running postmaster.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `sql` as the superuser over the unix socket; returns the trimmed
    /// unaligned, tuples-only output (`|` between columns, one row a line).
    /// Panics with psql's stderr on error or after [`CMD_TIMEOUT`].
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql on port {} failed for {sql:?}: {e}", self.port))
    }

    /// [`PgServer::psql`] returning the error instead of panicking.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let mut cmd = self.pg_command("psql");
        cmd.arg("-h").arg(self.dir.path()).args([
            "-p",
            &self.port.to_string(),
            "-U",
            Self::SUPERUSER,
            "-d",
            "postgres",
        ]);
        Self::run_psql(cmd, sql)
    }

    /// Runs `sql` over TCP as `user` with `password`, the way an application
    /// connects: `Err` carries the server's message (e.g. "password
    /// authentication failed for user ...").
    pub fn psql_as(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let mut cmd = self.pg_command("psql");
        cmd.args([
            "-h",
            HOST,
            "-p",
            &self.port.to_string(),
            "-U",
            user,
            "-d",
            "postgres",
            "-w",
        ])
        .env("PGPASSWORD", password);
        Self::run_psql(cmd, sql)
    }

    fn run_psql(mut cmd: Command, sql: &str) -> Result<String, String> {
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10");
        let out = run_with_timeout(&mut cmd, CMD_TIMEOUT)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(output_text(&out))
        }
    }

    /// `CREATE ROLE name LOGIN PASSWORD 'password'` (no other privileges;
    /// it may still connect to the `postgres` database).
    pub fn create_role(&self, name: &str, password: &str) {
        self.psql(&format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            quote_ident(name),
            quote_literal(password)
        ));
    }

    /// `pg_stat_activity` filter: client backends (not background workers,
    /// some of which run as the superuser) of `who`, except our own.
    fn clients_matching(who: &str) -> String {
        let who = quote_literal(who);
        format!(
            "backend_type = 'client backend' AND pid <> pg_backend_pid() \
             AND (application_name = {who} OR usename = {who})"
        )
    }

    /// Client backends whose `application_name` or user name is `who`
    /// (the harness's own psql connection is not counted). Backends linger a
    /// moment after a client disconnects: wrap in [`eventually`] for "dropped
    /// to N" assertions.
    pub fn connections_from(&self, who: &str) -> usize {
        let out = self.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE {}",
            Self::clients_matching(who)
        ));
        out.parse()
            .unwrap_or_else(|e| panic!("connections_from: unexpected output {out:?}: {e}"))
    }

    /// Disconnects (`pg_terminate_backend`) the backends [`PgServer::connections_from`]
    /// would count; returns how many.
    pub fn terminate_connections(&self, who: &str) -> usize {
        let out = self.psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {}",
            Self::clients_matching(who)
        ));
        out.parse()
            .unwrap_or_else(|e| panic!("terminate_connections: unexpected output {out:?}: {e}"))
    }

    /// Fast shutdown (SIGINT: disconnect clients, checkpoint); the data stay
    /// for [`PgServer::start_again`].
    pub fn stop(&mut self) {
        self.resume();
        if let Err(e) = self.shutdown("INT") {
            self.fail(&format!("PostgreSQL did not stop: {e}"));
        }
    }

    /// Starts the stopped (or killed) server again, same port and data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again: server is still running");
        if let Err(e) = self.spawn_postmaster() {
            self.fail(&format!(
                "PostgreSQL failed to start again on port {}: {e}",
                self.port
            ));
        }
    }

    /// Crash: SIGKILL the postmaster and all its children (connections drop
    /// at once, nothing is checkpointed). `start_again` runs crash recovery.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        send_signal(&[pid], "STOP"); // no new backends while we collect them
        let mut pids = children_of(pid);
        pids.push(pid);
        send_signal(&pids, "KILL");
        let _ = child.wait();
        self.paused = false;
        eventually("killed PostgreSQL processes to exit", START_TIMEOUT, || {
            !pids.iter().any(|&p| is_alive(p))
        });
    }

    /// Freezes the server (SIGSTOP to the postmaster and every backend):
    /// TCP connects still complete in the kernel, but nothing answers, so
    /// clients hang until their own timeouts fire.
    pub fn pause(&mut self) {
        let Some(pid) = self.pid() else {
            panic!("pause: server is not running");
        };
        send_signal(&[pid], "STOP"); // first, so it forks nothing new
        send_signal(&children_of(pid), "STOP");
        self.paused = true;
    }

    /// Undoes [`PgServer::pause`]. No-op when not paused.
    pub fn resume(&mut self) {
        if !self.paused {
            return;
        }
        if let Some(pid) = self.pid() {
            send_signal(&children_of(pid), "CONT");
            send_signal(&[pid], "CONT");
        }
        self.paused = false;
    }

    /// Signals the postmaster and waits for it and its children to exit.
    fn shutdown(&mut self, signal: &str) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let children = children_of(pid);
        send_signal(&[pid], signal);
        if wait_for_exit(&mut child, START_TIMEOUT).is_none() {
            send_signal(&children_of(pid), "KILL");
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "postmaster {pid} ignored SIG{signal} for {START_TIMEOUT:?}; killed"
            ));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while children.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.resume();
        // Immediate shutdown; never panic in drop.
        let _ = self.shutdown("QUIT");
    }
}
