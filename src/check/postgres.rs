//! `kind = "postgres"`: run a query over one kept connection and judge the answer, the
//! server's role and its replication lag.
//!
//! TLS is rustls through tokio-postgres-rustls, with `sslmode` mapped to what libpq does:
//! `prefer` and `require` encrypt without verifying the certificate (unless `require` has a
//! `ca_file`, then it verifies the chain as libpq does with a root certificate), `verify-ca`
//! verifies the chain but not the host name, `verify-full` verifies both.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use dsn::split_tls_params;
use tls::tls_connector;

use super::session::{PasswordKeys, Reconnect, scrub, warn_inline_password};
use super::{Outcome, Reason, one_line, validate_degraded_after};

mod dsn;
mod tls;

/// How long a dropped connection may take to say goodbye to the server before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Settings of a PostgreSQL check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL (`postgres://user@host:5432/db?sslmode=require`) or key/value DSN
    /// (`host=db user=app dbname=app`), instead of the separate fields. A password in it
    /// works but is warned about: prefer `password_file` or `password_env`. Alias: `dsn`.
    #[serde(alias = "dsn")]
    pub url: Option<String>,
    /// Server host name, IP address, or a directory holding the Unix socket. Default
    /// `localhost`.
    pub host: Option<String>,
    /// Server port. Default 5432.
    #[serde(default, deserialize_with = "super::tcp::de_opt_port")]
    pub port: Option<u16>,
    /// Role to log in as (required without `url`).
    pub user: Option<String>,
    /// Database. Default: the same as `user`.
    pub dbname: Option<String>,
    /// `disable`, `prefer` (default), `require`, `verify-ca` or `verify-full`, as in libpq.
    pub sslmode: Option<SslMode>,
    /// PEM file of CA certificates trusted for `verify-ca` / `verify-full` on top of the
    /// system roots (with `require` it turns on chain verification, as in libpq).
    pub ca_file: Option<PathBuf>,
    /// `application_name` the server shows in `pg_stat_activity`. Default `healthd`.
    pub application_name: Option<String>,
    /// Password, inline. Works, but is logged as a warning: use `password_file` or
    /// `password_env`.
    pub password: Option<String>,
    /// File holding the password (one trailing newline is ignored); read at every connect,
    /// so a rotated password is picked up on the next reconnect.
    pub password_file: Option<PathBuf>,
    /// Name of the environment variable holding the password.
    pub password_env: Option<String>,
    /// Query to run on every check. Default `SELECT 1`.
    #[serde(default = "default_query")]
    pub query: String,
    /// Expected value of the first column of the first row, compared as text.
    pub expect_value: Option<String>,
    /// `primary` or `replica`, from `pg_is_in_recovery()`; anything else fails (`role`).
    pub expect_role: Option<PgRole>,
    /// On a replica, replication lag above this makes the check degraded (`threshold`).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub max_replication_lag: Option<Duration>,
    /// Answering (query and status) slower than this makes the check degraded.
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub degraded_after: Option<Duration>,
}

fn default_query() -> String {
    "SELECT 1".into()
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, without verifying the certificate; plain otherwise.
    Prefer,
    /// TLS or fail; the certificate is not verified unless `ca_file` is set.
    Require,
    /// TLS, certificate chain verified, host name not checked.
    VerifyCa,
    /// TLS, certificate chain and host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The role a server is expected to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PgRole {
    Primary,
    #[serde(alias = "standby")]
    Replica,
}

impl PgRole {
    fn as_str(self) -> &'static str {
        match self {
            PgRole::Primary => "primary",
            PgRole::Replica => "replica",
        }
    }
}

/// The connection settings after `url` and the fields are merged; no password in it.
struct Target {
    config: tokio_postgres::Config,
    sslmode: SslMode,
    ca_file: Option<PathBuf>,
    /// A password found in the URL.
    url_password: Option<String>,
}

impl PostgresConfig {
    fn target(&self) -> Result<Target, String> {
        let mut sslmode = None;
        let mut ca_file = None;
        let mut config = match &self.url {
            Some(url) => {
                let (rest, extracted) = split_tls_params(url)?;
                for (key, value) in extracted {
                    match key.as_str() {
                        "sslmode" => {
                            sslmode = Some(SslMode::parse(&value).ok_or_else(|| {
                                format!("unknown sslmode \"{value}\" in url (use disable, prefer, require, verify-ca or verify-full)")
                            })?)
                        }
                        _ => ca_file = Some(PathBuf::from(value)),
                    }
                }
                tokio_postgres::Config::from_str(&rest)
                    .map_err(|e| format!("bad url: {}", error_chain(&e)))?
            }
            None => {
                let mut c = tokio_postgres::Config::new();
                c.host(self.host.as_deref().unwrap_or("localhost"));
                c.port(self.port.unwrap_or(5432));
                if let Some(u) = &self.user {
                    c.user(u);
                }
                if let Some(d) = &self.dbname {
                    c.dbname(d);
                }
                c
            }
        };
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        let url_password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        if config.get_application_name().is_none() || self.application_name.is_some() {
            config.application_name(self.application_name.as_deref().unwrap_or("healthd"));
        }
        Ok(Target {
            config,
            sslmode: self.sslmode.or(sslmode).unwrap_or(SslMode::Prefer),
            ca_file: self.ca_file.clone().or(ca_file),
            url_password,
        })
    }

    fn passwords(&self) -> PasswordKeys<'_> {
        PasswordKeys {
            inline: &self.password,
            file: &self.password_file,
            env: &self.password_env,
        }
    }

    pub(crate) fn validate(&self, timeout: Duration, problems: &mut Vec<(String, String)>) {
        if self.url.is_some() {
            for (key, set) in [
                ("host", self.host.is_some()),
                ("port", self.port.is_some()),
                ("user", self.user.is_some()),
                ("dbname", self.dbname.is_some()),
            ] {
                if set {
                    problems.push((
                        key.into(),
                        "set either url or host/port/user/dbname, not both".into(),
                    ));
                }
            }
        }
        match self.target() {
            Ok(t) => {
                if t.config.get_user().is_none() {
                    problems.push(("user".into(), "missing (set user, or a user in url)".into()));
                }
                self.passwords()
                    .validate(t.url_password.is_some(), problems);
                if t.url_password.is_some() {
                    warn_inline_password("postgres", &describe(&t.config), "url");
                } else if self.password.is_some() {
                    warn_inline_password("postgres", &describe(&t.config), "password");
                }
                if let Some(path) = &t.ca_file
                    && let Err(e) = std::fs::metadata(path)
                {
                    problems.push((
                        "ca_file".into(),
                        format!("cannot read {}: {e}", path.display()),
                    ));
                }
                if t.ca_file.is_some() && matches!(t.sslmode, SslMode::Disable | SslMode::Prefer) {
                    problems.push((
                        "ca_file".into(),
                        format!(
                            "has no effect with sslmode {} (use require, verify-ca or verify-full)",
                            t.sslmode.as_str()
                        ),
                    ));
                }
            }
            Err(e) => problems.push(("url".into(), e)),
        }
        if self.query.trim().is_empty() {
            problems.push(("query".into(), "must not be empty".into()));
        }
        validate_degraded_after(self.degraded_after, timeout, problems);
        if self.max_replication_lag.is_some() && self.expect_role == Some(PgRole::Primary) {
            problems.push((
                "max_replication_lag".into(),
                "applies to replicas only, but expect_role is primary".into(),
            ));
        }
    }
}

/// `user@host:port/dbname`, for messages (never the password or the raw DSN).
fn describe(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let user = c.get_user().unwrap_or("?");
    let db = c.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

/// One open connection: the client and the task driving its socket.
struct Session {
    client: Option<tokio_postgres::Client>,
    driver: Option<JoinHandle<()>>,
}

impl Drop for Session {
    /// Dropping the client makes the driver send Terminate and close the socket; it gets
    /// [`CLOSE_GRACE`] for that and is then aborted, so no server connection outlives us.
    fn drop(&mut self) {
        drop(self.client.take());
        let Some(mut driver) = self.driver.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if tokio::time::timeout(CLOSE_GRACE, &mut driver)
                        .await
                        .is_err()
                    {
                        driver.abort();
                    }
                });
            }
            Err(_) => driver.abort(),
        }
    }
}

impl Session {
    /// Close a connection whose last run was cut off: first ask the server to cancel the
    /// query that may still be running there (else its backend lives on until the query
    /// ends), then close as usual. Runs in the background, bounded by [`CLOSE_GRACE`].
    fn abandon(self, tls: MakeRustlsConnect) {
        let token = self.client.as_ref().map(|c| c.cancel_token());
        match (token, tokio::runtime::Handle::try_current()) {
            (Some(token), Ok(rt)) => {
                rt.spawn(async move {
                    let _ = tokio::time::timeout(CLOSE_GRACE, token.cancel_query(tls)).await;
                    drop(self);
                });
            }
            _ => drop(self),
        }
    }
}

pub struct PostgresProbe {
    config: tokio_postgres::Config,
    passwords: (Option<String>, Option<PathBuf>, Option<String>),
    url_password: Option<String>,
    tls: MakeRustlsConnect,
    sslmode: SslMode,
    shown: String,
    query: String,
    expect_value: Option<String>,
    expect_role: Option<PgRole>,
    max_replication_lag: Option<Duration>,
    degraded_after: Option<Duration>,
    timeout: Duration,
    session: Option<Session>,
    reconnect: Reconnect,
    /// The password used for the current connection, to scrub it from messages.
    last_password: Option<String>,
}

impl PostgresProbe {
    pub fn new(c: &PostgresConfig, timeout: Duration) -> Result<Self, String> {
        let t = c.target()?;
        let mut config = t.config;
        config.connect_timeout(timeout);
        config.ssl_mode(match t.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = tls_connector(t.sslmode, t.ca_file.as_ref())?;
        Ok(PostgresProbe {
            shown: describe(&config),
            config,
            passwords: (
                c.password.clone(),
                c.password_file.clone(),
                c.password_env.clone(),
            ),
            url_password: t.url_password,
            tls,
            sslmode: t.sslmode,
            query: c.query.clone(),
            expect_value: c.expect_value.clone(),
            expect_role: c.expect_role,
            max_replication_lag: c.max_replication_lag,
            degraded_after: c.degraded_after,
            timeout,
            session: None,
            reconnect: Reconnect::default(),
            last_password: None,
        })
    }

    pub async fn run(&mut self) -> Outcome {
        let outcome = self.run_inner().await;
        self.reconnect.finish();
        let mut secrets: Vec<&str> = Vec::new();
        for s in [&self.passwords.0, &self.url_password, &self.last_password]
            .into_iter()
            .flatten()
        {
            secrets.push(s);
        }
        Outcome {
            message: scrub(&outcome.message, &secrets),
            ..outcome
        }
    }

    async fn run_inner(&mut self) -> Outcome {
        let start = self.reconnect.start(self.timeout);
        if start.cancelled {
            tracing::debug!(target = %self.shown, "Previous run was cut off at the timeout; closing its connection.");
            if let Some(old) = self.session.take() {
                old.abandon(self.tls.clone());
            }
        }
        if let Some(out) = start.backoff {
            return out;
        }
        // A kept connection that broke while idle (server restart, terminated backend) is
        // replaced at once: that is not a failure of the server as it is now.
        if self
            .session
            .as_ref()
            .and_then(|s| s.client.as_ref())
            .is_some_and(|c| c.is_closed())
        {
            self.session = None;
        }
        let reused = self.session.is_some();
        let mut connect_ms = None;
        if !reused && let Err(out) = self.open(&mut connect_ms).await {
            return out;
        }
        let mut out = self.query().await;
        // Closed under us between the check above and the query (a restart, a terminated
        // backend): the same as closed while idle, so once more on a new connection.
        if reused && out.level == super::Level::Failed && self.session_closed() {
            tracing::debug!(target = %self.shown, "Kept connection was closed; reconnecting.");
            self.session = None;
            if let Err(out) = self.open(&mut connect_ms).await {
                return out;
            }
            out = self.query().await;
        }
        if out.level == super::Level::Failed && self.session_closed() {
            self.session = None;
            self.reconnect.failed(out.clone());
        } else {
            self.reconnect.succeeded();
        }
        match connect_ms {
            Some(ms) => out.with_detail("connect_ms", round_ms(ms)),
            None => out,
        }
    }

    /// Connect and keep the session; on failure, count it and return what to report.
    async fn open(&mut self, connect_ms: &mut Option<f64>) -> Result<(), Outcome> {
        let started = Instant::now();
        match self.connect().await {
            Ok(s) => {
                self.session = Some(s);
                *connect_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                Ok(())
            }
            Err(out) => {
                self.reconnect.failed(out.clone());
                Err(out)
            }
        }
    }

    /// No session, or its connection has ended.
    fn session_closed(&self) -> bool {
        self.session
            .as_ref()
            .and_then(|s| s.client.as_ref())
            .is_none_or(|c| c.is_closed())
    }

    async fn connect(&mut self) -> Result<Session, Outcome> {
        let keys = PasswordKeys {
            inline: &self.passwords.0,
            file: &self.passwords.1,
            env: &self.passwords.2,
        };
        let password = keys
            .resolve()
            .map_err(|e| Outcome::failed(Reason::Config, e))?;
        let mut config = self.config.clone();
        if let Some(pw) = &password {
            config.password(pw.as_bytes());
        }
        self.last_password = password.or_else(|| self.url_password.clone());
        let (client, connection) = config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.error_outcome("connect", &e))?;
        let shown = self.shown.clone();
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target = %shown, error = %one_line(&error_chain(&e)), "PostgreSQL connection ended.");
            }
        });
        tracing::debug!(target = %self.shown, sslmode = self.sslmode.as_str(), "Connected to PostgreSQL.");
        Ok(Session {
            client: Some(client),
            driver: Some(driver),
        })
    }

    async fn query(&mut self) -> Outcome {
        let Some(client) = self.session.as_ref().and_then(|s| s.client.as_ref()) else {
            return Outcome::failed(Reason::Internal, "no connection");
        };
        let started = Instant::now();
        let messages = match client.simple_query(&self.query).await {
            Ok(m) => m,
            Err(e) => {
                // A query that opened a transaction and failed inside it would leave the
                // kept connection unusable ("current transaction is aborted").
                if e.as_db_error().is_some() {
                    let _ = client.simple_query("ROLLBACK").await;
                }
                return self.error_outcome("query", &e);
            }
        };
        let query_elapsed = started.elapsed();
        let first = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        });
        let status = match client
            .simple_query(
                "SELECT pg_is_in_recovery()::text, current_setting('server_version'), \
                 CASE WHEN NOT pg_is_in_recovery() THEN NULL \
                 WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN '0' \
                 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::text END",
            )
            .await
        {
            Ok(m) => m,
            Err(e) => return self.error_outcome("status query", &e),
        };
        let elapsed = started.elapsed();
        let row = status.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0).map(str::to_string),
                r.get(1).map(str::to_string),
                r.get(2).map(str::to_string),
            )),
            _ => None,
        });
        let Some((Some(recovery), version, lag)) = row else {
            return Outcome::failed(
                Reason::Protocol,
                format!("{}: unexpected answer to the status query", self.shown),
            );
        };
        let role = if recovery == "true" {
            PgRole::Replica
        } else {
            PgRole::Primary
        };
        let lag: Option<f64> = lag.and_then(|l| l.parse().ok());
        let details = |o: Outcome| {
            let mut o = o
                .with_detail("role", role.as_str())
                .with_detail("query_ms", round_ms(query_elapsed.as_secs_f64() * 1000.0))
                .with_detail("latency_ms", round_ms(elapsed.as_secs_f64() * 1000.0))
                .with_detail("sslmode", self.sslmode.as_str());
            if let Some(v) = &version {
                o = o.with_detail("server_version", v.as_str());
            }
            if let Some(l) = lag {
                o = o.with_detail("replication_lag_s", l);
            }
            o
        };

        if let Some(expected) = &self.expect_value {
            match &first {
                Some(Some(v)) if v == expected => {}
                Some(Some(v)) => {
                    return details(Outcome::failed(
                        Reason::Protocol,
                        format!(
                            "{}: query returned \"{}\", expected \"{}\"",
                            self.shown,
                            one_line(v),
                            one_line(expected)
                        ),
                    ));
                }
                Some(None) => {
                    return details(Outcome::failed(
                        Reason::Protocol,
                        format!(
                            "{}: query returned NULL, expected \"{}\"",
                            self.shown,
                            one_line(expected)
                        ),
                    ));
                }
                None => {
                    return details(Outcome::failed(
                        Reason::Protocol,
                        format!(
                            "{}: query returned no rows, expected \"{}\"",
                            self.shown,
                            one_line(expected)
                        ),
                    ));
                }
            }
        }
        if let Some(expected) = self.expect_role
            && expected != role
        {
            return details(Outcome::failed(
                Reason::Role,
                format!(
                    "{} is a {}, expected a {}",
                    self.shown,
                    role.as_str(),
                    expected.as_str()
                ),
            ));
        }
        if let (Some(max), Some(l)) = (self.max_replication_lag, lag)
            && l > max.as_secs_f64()
        {
            return details(Outcome::degraded(
                Reason::Threshold,
                format!(
                    "{}: replication lag {l:.1}s is above {}",
                    self.shown,
                    humantime::format_duration(max)
                ),
            ));
        }
        if let Some(limit) = self.degraded_after
            && elapsed > limit
        {
            return details(Outcome::degraded(
                Reason::Timeout,
                format!(
                    "{} answered in {} (slower than {})",
                    self.shown,
                    crate::health::fmt_latency(elapsed),
                    humantime::format_duration(limit)
                ),
            ));
        }
        let version = version.as_deref().unwrap_or("?");
        details(Outcome::ok(format!(
            "{} answered ({}, PostgreSQL {version})",
            self.shown,
            role.as_str()
        )))
    }

    /// A failed outcome for an error while `doing` something, with the server's own words.
    fn error_outcome(&self, doing: &str, e: &tokio_postgres::Error) -> Outcome {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            let reason = match code {
                "28P01" | "28000" => Reason::Auth,
                // Too many connections, starting up, shutting down: the server is not usable.
                "53300" | "57P03" | "57P01" | "57P02" => Reason::Connect,
                _ => Reason::Protocol,
            };
            let what = if reason == Reason::Auth {
                "authentication failed"
            } else {
                doing
            };
            return Outcome::failed(
                reason,
                format!(
                    "{}: {what}: {} (SQLSTATE {code})",
                    self.shown,
                    one_line(db.message())
                ),
            )
            .with_detail("sqlstate", code);
        }
        let text = error_chain(e);
        let lower = text.to_lowercase();
        let reason = if lower.contains("failed to lookup address")
            || lower.contains("name or service not known")
            || lower.contains("no address associated")
            || lower.contains("temporary failure in name resolution")
        {
            Reason::Dns
        } else if lower.contains("tls") || lower.contains("certificate") {
            Reason::Tls
        } else if lower.contains("timed out") || lower.contains("timeout") {
            Reason::Timeout
        } else if lower.starts_with("error connecting")
            || lower.starts_with("connection closed")
            || lower.starts_with("error communicating")
            || lower.contains("connection refused")
            || lower.contains("connection reset")
        {
            Reason::Connect
        } else if lower.contains("password") || lower.starts_with("authentication") {
            Reason::Auth
        } else {
            Reason::Protocol
        };
        Outcome::failed(
            reason,
            format!("{}: {doing}: {}", self.shown, one_line(&text)),
        )
    }
}

fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// An error and its causes, `a: b: c`, without repeats.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !chain.iter().any(|c| c.contains(&text)) {
            chain.push(text);
        }
        source = s.source();
    }
    chain.join(": ")
}

#[cfg(test)]
mod tests {
    use super::dsn::parse_key_values;
    use super::*;

    fn cfg(toml_text: &str) -> PostgresConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn url_sslmode_verify_full_is_taken_out_for_tokio_postgres() {
        let (rest, taken) = split_tls_params(
            "postgres://app@db.example:5433/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(rest, "postgres://app@db.example:5433/app?connect_timeout=3");
        assert_eq!(
            taken,
            vec![
                ("sslmode".to_string(), "verify-full".to_string()),
                ("sslrootcert".to_string(), "/etc/ca.pem".to_string())
            ]
        );
        let c = cfg("url = \"postgres://app@db.example:5433/app?sslmode=verify-full\"");
        let t = c.target().unwrap();
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        assert_eq!(describe(&t.config), "app@db.example:5433/app");
        assert_eq!(t.config.get_application_name(), Some("healthd"));
    }

    #[test]
    fn key_value_dsn_with_quotes() {
        let c = cfg(
            r#"dsn = "host=/run/postgresql user=app dbname='my db' sslmode=verify-ca application_name='it\\'s'""#,
        );
        let t = c.target().unwrap();
        assert_eq!(t.sslmode, SslMode::VerifyCa);
        assert_eq!(t.config.get_dbname(), Some("my db"));
        assert_eq!(t.config.get_application_name(), Some("it's"));
        assert!(t.url_password.is_none());
    }

    #[test]
    fn password_in_url_counts_as_inline_and_conflicts_with_a_file() {
        let c = cfg(
            "url = \"postgres://app:hunter2@localhost/app\"\npassword_file = \"/run/credentials/healthd.service/pg\"",
        );
        let mut problems = Vec::new();
        c.validate(Duration::from_secs(2), &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("one way only"), "{problems:?}");
        assert!(!problems[0].1.contains("hunter2"));
    }

    #[test]
    fn fields_need_a_user_and_no_url() {
        let mut problems = Vec::new();
        cfg("host = \"db\"").validate(Duration::from_secs(2), &mut problems);
        assert_eq!(problems[0].0, "user");
        let mut problems = Vec::new();
        cfg("url = \"postgres://a@b/c\"\nhost = \"db\"")
            .validate(Duration::from_secs(2), &mut problems);
        assert_eq!(problems[0].0, "host");
        let bad: Result<PostgresConfig, _> =
            toml::from_str("user = \"a\"\nsslmode = \"sometimes\"");
        assert!(bad.is_err());
    }

    #[test]
    fn malformed_dsn_errors_never_echo_a_stray_word() {
        let e = parse_key_values("host=db s3cretword user=app").unwrap_err();
        assert!(!e.contains("s3cretword"), "{e}");
        let e = parse_key_values("host=db password='s3cret").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
