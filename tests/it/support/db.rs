//! Real PostgreSQL and Redis servers on loopback.
//!
//! Each `PgServer` / `RedisServer` gets its own temporary directory and a free
//! port on 127.0.0.1, so tests may run in parallel threads. Every wait is
//! bounded (see [`START_TIMEOUT`] and [`CMD_TIMEOUT`]) and a failed start
//! panics with the tail of the server's log. Dropping a server kills it and
//! removes its directory.
//!
//! All calls are blocking (they run `psql`, `redis-cli`, `kill` ...). From a
//! `#[tokio::test]` that is fine for setup and assertions; if the code under
//! test must keep running on the runtime meanwhile, use
//! `#[tokio::test(flavor = "multi_thread")]` or `tokio::task::spawn_blocking`.
//!
//! Binaries: PostgreSQL from `$HEALTHD_TEST_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian), else `pg_config --bindir`;
//! `redis-server` and `redis-cli` from `PATH`. `scripts/test` installs them.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{
    CMD_TIMEOUT, HOST, START_TIMEOUT, children_of, effective_uid, eventually, free_port, is_alive,
    log_tail, open_log, output_text, run_with_timeout, send_signal, unique_secret, wait_for_exit,
};

const POLL: Duration = Duration::from_millis(20);
// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// Unprivileged account the server runs as when the tests run as root
/// (PostgreSQL refuses to run as root).
#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn lookup_id(flag: &str, user: &str) -> Option<u32> {
    let out = run_with_timeout(Command::new("id").args([flag, user]), CMD_TIMEOUT).ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn pg_run_as() -> Option<RunAs> {
    static RUN_AS: OnceLock<Option<RunAs>> = OnceLock::new();
    *RUN_AS.get_or_init(|| {
        if effective_uid() != 0 {
            return None;
        }
        let found = ["postgres", "nobody"].iter().find_map(|user| {
            Some(RunAs {
                uid: lookup_id("-u", user)?,
                gid: lookup_id("-g", user)?,
            })
        });
        Some(found.expect("running as root but neither user `postgres` nor `nobody` exists"))
    })
}

/// Directory holding `initdb`, `postgres`, `pg_isready` and `psql`.
pub fn pg_bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("HEALTHD_TEST_PG_BIN") {
            return PathBuf::from(dir);
        }
        let version_key = |p: &Path| -> Vec<u32> {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.split('.').map(|n| n.parse().unwrap_or(0)).collect()
        };
        let newest = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("bin/postgres").is_file())
            .max_by_key(|p| version_key(p));
        if let Some(dir) = newest {
            return dir.join("bin");
        }
        if let Ok(out) = run_with_timeout(Command::new("pg_config").arg("--bindir"), CMD_TIMEOUT) {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && dir.join("postgres").is_file() {
                return dir;
            }
        }
        panic!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/postgres, \
             no pg_config): run scripts/test, which installs them, or set HEALTHD_TEST_PG_BIN"
        );
    })
    .clone()
}

/// A command for a PostgreSQL binary, run as the server's OS user, in `cwd`.
fn pg_command(program: &str, cwd: &Path) -> Command {
    let path = pg_bin_dir().join(program);
    let mut cmd = match pg_run_as() {
        Some(RunAs { uid, gid }) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .args(["--clear-groups", "--"])
                .arg(path);
            c
        }
        None => Command::new(path),
    };
    for var in PG_ENV {
        cmd.env_remove(var);
    }
    cmd.current_dir(cwd).env("LC_ALL", "C");
    cmd
}

fn chown_to_server_user(path: &Path) {
    if let Some(RunAs { uid, gid }) = pg_run_as() {
        chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {path:?} to {uid}:{gid}: {e}"));
    }
}

/// `cp -a from to` (keeps the server user's ownership when run as root).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let out = run_with_timeout(Command::new("cp").arg("-a").arg(from).arg(to), CMD_TIMEOUT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(output_text(&out))
    }
}

/// A pristine data directory made by `initdb`, cached under cargo's
/// `CARGO_TARGET_TMPDIR` across runs (initdb takes ~1.5 s, a copy ~0.1 s).
/// Each server copies it and then sets its own superuser password.
fn pg_template() -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let bin = pg_bin_dir();
            let key: String = bin
                .to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let cache_root = option_env!("CARGO_TARGET_TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let cached = cache_root.join(format!(
                "healthd-pg-template-v1-uid{}{key}",
                effective_uid()
            ));
            if cached.join("PG_VERSION").is_file() {
                // A cache copied without its ownership (e.g. `cp -r target/`) is unusable
                // by the server user: rebuild it rather than fail every start.
                let owner_ok = match pg_run_as() {
                    Some(RunAs { uid, .. }) => {
                        use std::os::unix::fs::MetadataExt;
                        fs::metadata(cached.join("postgresql.conf")).is_ok_and(|m| m.uid() == uid)
                    }
                    None => true,
                };
                if owner_ok {
                    return cached;
                }
                let _ = fs::remove_dir_all(&cached);
            }
            // initdb where the server user can reach it (the cache may sit
            // below a directory it cannot enter), then publish with an atomic
            // rename so concurrent test binaries never see half a template.
            let work = tempfile::Builder::new()
                .prefix("healthd-pg-initdb-")
                .tempdir()
                .expect("create temp dir for initdb");
            chown_to_server_user(work.path());
            let data = work.path().join("data");
            let out = run_with_timeout(
                pg_command("initdb", work.path())
                    .arg("-D")
                    .arg(&data)
                    .args(["-U", PgServer::SUPERUSER, "-E", "UTF8", "--locale=C"])
                    .args([
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "--no-sync",
                    ]),
                CMD_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("initdb: {e}"));
            if !out.status.success() {
                panic!("initdb failed: {}", output_text(&out));
            }
            let published = fs::create_dir_all(&cache_root)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    let staging = tempfile::Builder::new()
                        .prefix(".healthd-pg-template-")
                        .tempdir_in(&cache_root)
                        .map_err(|e| e.to_string())?;
                    let staged = staging.path().join("data");
                    copy_tree(&data, &staged)?;
                    // Fails if another process published first: use theirs.
                    let _ = fs::rename(&staged, &cached);
                    Ok(())
                });
            if published.is_ok() && cached.join("PG_VERSION").is_file() {
                cached
            } else {
                eprintln!(
                    "harness: cannot cache the initdb template in {cache_root:?}: {published:?}"
                );
                work.keep().join("data")
            }
        })
        .clone()
}

/// Environment variables that would silently redirect `psql` / `pg_isready`.
const PG_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGTARGETSESSIONATTRS",
];

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

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

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
