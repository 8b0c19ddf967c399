//! `kind = "postgres"`: run a query over one kept connection and judge the answer, the
//! server's role and its replication lag.
//!
//! TLS is rustls through tokio-postgres-rustls, with `sslmode` mapped to what libpq does:
//! `prefer` and `require` encrypt without verifying the certificate (unless `require` has a
//! `ca_file`, then it verifies the chain as libpq does with a root certificate), `verify-ca`
//! verifies the chain but not the host name, `verify-full` verifies both.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use dsn::split_tls_params;
use probe::Postgres;
use tls::tls_connector;

use super::Kind;
use super::session::{Passwords, Session, warn_inline_password};
use crate::model::error_chain;

mod dsn;
mod probe;
mod tls;

/// Settings of a PostgreSQL check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL (`postgres://user@host:5432/db?sslmode=require`) or key/value DSN
    /// (`host=db user=app dbname=app`), instead of the separate fields. A password in it
    /// works but is warned about: prefer `password_file` or `password_env`.
    pub url: Option<String>,
    /// The same as `url`, under libpq's other name (messages name the key that was used).
    pub dsn: Option<String>,
    /// Server host name, IP address, or a directory holding the Unix socket. Default
    /// `localhost`.
    pub host: Option<String>,
    /// Server port. Default 5432.
    #[serde(default, deserialize_with = "crate::model::de_opt_port")]
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
    #[serde(default, deserialize_with = "crate::model::de_opt_duration")]
    pub max_replication_lag: Option<Duration>,
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

    pub(crate) fn as_str(self) -> &'static str {
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
    pub(crate) fn as_str(self) -> &'static str {
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
    /// The connection string and the key it was given under (`url` or `dsn`).
    fn connection_string(&self) -> Option<(&'static str, &str)> {
        match (&self.url, &self.dsn) {
            (Some(url), _) => Some(("url", url)),
            (None, Some(dsn)) => Some(("dsn", dsn)),
            (None, None) => None,
        }
    }

    fn target(&self) -> Result<Target, String> {
        let mut sslmode = None;
        let mut ca_file = None;
        let mut config = match self.connection_string() {
            Some((key, text)) => {
                let (rest, extracted) =
                    split_tls_params(text).map_err(|e| format!("bad {key}: {e}"))?;
                for (name, value) in extracted {
                    match name.as_str() {
                        "sslmode" => {
                            sslmode = Some(SslMode::parse(&value).ok_or_else(|| {
                                format!("unknown sslmode \"{value}\" in {key} (use disable, prefer, require, verify-ca or verify-full)")
                            })?)
                        }
                        _ => ca_file = Some(PathBuf::from(value)),
                    }
                }
                tokio_postgres::Config::from_str(&rest)
                    .map_err(|e| format!("bad {key}: {}", error_chain(&e)))?
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

    fn passwords(&self) -> Passwords {
        Passwords {
            inline: self.password.clone(),
            file: self.password_file.clone(),
            env: self.password_env.clone(),
        }
    }
}

impl Kind for PostgresConfig {
    type Probe = Session<Postgres>;

    fn build(&self, timeout: Duration) -> Result<Session<Postgres>, String> {
        let t = self.target()?;
        let mut config = t.config;
        config.connect_timeout(timeout);
        config.ssl_mode(match t.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = tls_connector(t.sslmode, t.ca_file.as_ref())?;
        let postgres = Postgres {
            shown: describe(&config),
            config,
            tls,
            sslmode: t.sslmode,
            query: self.query.clone(),
            expect_value: self.expect_value.clone(),
            expect_role: self.expect_role,
            max_replication_lag: self.max_replication_lag,
        };
        Ok(Session::new(postgres, self.passwords(), t.url_password, timeout))
    }

    fn validate(&self, _timeout: Duration, problems: &mut Vec<(String, String)>) {
        if self.url.is_some() && self.dsn.is_some() {
            problems.push(("dsn".into(), "set either url or dsn, not both".into()));
        }
        let conn_key = self.connection_string().map_or("url", |(key, _)| key);
        if self.connection_string().is_some() {
            for (key, set) in [
                ("host", self.host.is_some()),
                ("port", self.port.is_some()),
                ("user", self.user.is_some()),
                ("dbname", self.dbname.is_some()),
            ] {
                if set {
                    problems.push((
                        key.into(),
                        format!("set either {conn_key} or host/port/user/dbname, not both"),
                    ));
                }
            }
        }
        match self.target() {
            Ok(t) => {
                if t.config.get_user().is_none() {
                    problems.push((
                        "user".into(),
                        format!("missing (set user, or a user in {conn_key})"),
                    ));
                }
                self.passwords()
                    .validate(t.url_password.is_some(), problems);
                if t.url_password.is_some() {
                    warn_inline_password("postgres", &describe(&t.config), conn_key);
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
            Err(e) => problems.push((conn_key.into(), e)),
        }
        if self.query.trim().is_empty() {
            problems.push(("query".into(), "must not be empty".into()));
        }
        if self.max_replication_lag.is_some() && self.expect_role == Some(PgRole::Primary) {
            problems.push((
                "max_replication_lag".into(),
                "applies to replicas only, but expect_role is primary".into(),
            ));
        }
    }
}

/// `user@host:port/dbname`, for messages (never the password or the raw DSN).
pub(crate) fn describe(c: &tokio_postgres::Config) -> String {
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
    fn a_bad_dsn_is_reported_as_dsn() {
        let mut problems = Vec::new();
        cfg("dsn = \"host=db s3cretword\"").validate(Duration::from_secs(2), &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "dsn");
        assert!(problems[0].1.starts_with("bad dsn: "), "{problems:?}");
        let mut problems = Vec::new();
        cfg("dsn = \"host=db user=a\"\nurl = \"postgres://a@b/c\"")
            .validate(Duration::from_secs(2), &mut problems);
        assert_eq!(problems[0].0, "dsn");
    }

    #[test]
    fn malformed_dsn_errors_never_echo_a_stray_word() {
        let e = parse_key_values("host=db s3cretword user=app").unwrap_err();
        assert!(!e.contains("s3cretword"), "{e}");
        let e = parse_key_values("host=db password='s3cret").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
